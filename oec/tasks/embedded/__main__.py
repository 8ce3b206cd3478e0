"""``python -m oec.tasks.embedded build [--project NAME]``: regenerate tasks.jsonl from the specs.

Rows of other projects are kept when one project is rebuilt; a full build drops rows whose spec is
gone. Nothing is written when any task fails, so tasks.jsonl never silently loses tasks.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oec.tasks.embedded import PROJECTS_DIR, SPECS_DIR, TASKS_FILE
from oec.tasks.embedded.build import BuildResult, build_specs, load_specs, read_rows, write_tasks
from oec.tasks.embedded.spec import SpecError


def _summary(results: list[BuildResult]) -> Table:
    table = Table(title="embedded tasks")
    for column in ("project", "tasks", "train", "test", "F2P (mean)", "P2P (mean)", "failed", "seconds"):
        table.add_column(column, justify="left" if column == "project" else "right")
    for project in sorted({r.project for r in results}):
        rows = [r for r in results if r.project == project]
        tasks = [r.task for r in rows if r.task is not None]
        splits = Counter(t.split for t in tasks)
        n = max(len(tasks), 1)
        table.add_row(
            project,
            str(len(tasks)),
            str(splits["train"]),
            str(splits["test"]),
            f"{sum(len(t.FAIL_TO_PASS) for t in tasks) / n:.1f}",
            f"{sum(len(t.PASS_TO_PASS) for t in tasks) / n:.1f}",
            str(len(rows) - len(tasks)),
            f"{sum(r.seconds for r in rows):.1f}",
        )
    return table


def build(project: str | None, workers: int, output: Path, console: Console) -> int:
    try:
        specs = load_specs(SPECS_DIR, PROJECTS_DIR, project)
    except SpecError as exc:
        console.print(f"[red]spec error:[/red] {exc}")
        return 1
    if not specs:
        console.print(f"[red]no spec files in {SPECS_DIR}[/red]")
        return 1
    start = time.perf_counter()

    def report(result: BuildResult) -> None:
        mark = "[green]ok[/green]" if result.error is None else "[red]FAILED[/red]"
        console.print(f"{mark} {result.project}-{result.task_id} ({result.seconds:.1f}s)")

    results = build_specs(specs, workers=workers, on_result=report)
    console.print(_summary(results))
    failures = [r for r in results if r.error is not None]
    for failure in failures:
        console.print(f"[red]{failure.project}-{failure.task_id}:[/red] {escape(failure.error or '')}")
    if failures:
        console.print(f"[red]{len(failures)} task(s) failed; {output} left unchanged[/red]")
        return 1
    built = {spec.project for spec in specs}
    keep = [
        row for row in read_rows(output) if project is not None and row["metadata"]["project"] not in built
    ]
    count = write_tasks(output, [r.task for r in results if r.task is not None], keep)
    console.print(f"wrote {count} tasks to {output} in {time.perf_counter() - start:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oec.tasks.embedded", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build tasks.jsonl from specs/*.yaml and projects/")
    build_cmd.add_argument("--project", help="build only this project (other rows are kept)")
    build_cmd.add_argument("--workers", type=int, default=2, help="tasks built in parallel")
    build_cmd.add_argument("--output", type=Path, default=TASKS_FILE, help="the tasks.jsonl to write")
    args = parser.parse_args(argv)
    return build(args.project, args.workers, args.output, Console())


if __name__ == "__main__":
    sys.exit(main())
