"""Feedback for long rollout loops: a live progress bar and the end-of-run summary table.

Rollouts whose verdict is not ``graded`` (a ``task_error``: the task's test patch does not apply)
are counted apart, as ``ungraded``: they are neither resolved nor failures of the agent.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oec.eval_report import ungraded_counts
from oec.types import Trajectory

console = Console(stderr=True)
# Tables go to stdout. A pipe gets rich's 80 columns by default, which folds them; logs are read wide.
stdout_console = Console(width=None if sys.stdout.isatty() else 160)


class RolloutProgress:
    """A progress bar whose label keeps running counts of resolved and accepted rollouts."""

    def __init__(self, total: int, mode: str) -> None:
        self.mode = mode
        self.counts: Counter[str] = Counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(mode, total=total, stats=self._stats())

    def _stats(self) -> str:
        c = self.counts
        text = f"resolved {c['resolved']}  accepted {c['accepted']}"
        text += f"  [yellow]ungraded {c['ungraded']}[/yellow]" if c["ungraded"] else ""
        text += f"  skipped {c['skipped']}" if c["skipped"] else ""
        return text + (f"  [red]failed {c['failed']}" if c["failed"] else "")

    def advance(self, trajectory: Trajectory) -> None:
        self.counts["resolved"] += trajectory.resolved
        self.counts["ungraded"] += trajectory.ungraded
        self.counts["accepted"] += trajectory.accepted
        self._progress.update(self._task, advance=1, stats=self._stats())

    def skipped(self) -> None:
        """A pair another writer of the store was running or had stored."""
        self.counts["skipped"] += 1
        self._progress.update(self._task, advance=1, stats=self._stats())

    def failed(self) -> None:
        self.counts["failed"] += 1
        self._progress.update(self._task, advance=1, stats=self._stats())

    def __enter__(self) -> RolloutProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def switch_histogram(steps: Iterable[int | None], width: int = 5) -> str:
    """Compact histogram of switch steps in buckets of ``width`` calls, e.g. ``0-4:3 5-9:1``."""
    buckets: Counter[str] = Counter()
    for step in steps:
        if step is None:
            buckets["never"] += 1
        else:
            lo = step // width * width
            buckets[f"{lo}-{lo + width - 1}"] += 1
    order = sorted(buckets, key=lambda b: (b == "never", int(b.split("-")[0]) if b != "never" else 0))
    return " ".join(f"{b}:{buckets[b]}" for b in order) or "-"


def summary_rows(trajectories: list[Trajectory]) -> list[dict[str, object]]:
    rows = []
    for mode in sorted({t.mode for t in trajectories}):
        group = [t for t in trajectories if t.mode == mode]
        reasons = Counter(reason for t in group for reason in t.filter_reasons)
        rows.append(
            {
                "mode": mode,
                "rollouts": len(group),
                "ungraded": " ".join(f"{s}:{n}" for s, n in sorted(ungraded_counts(group).items())) or "-",
                "resolved": sum(t.resolved for t in group),
                "filtered": " ".join(f"{r}:{n}" for r, n in sorted(reasons.items())) or "-",
                "accepted": sum(t.accepted for t in group),
                "mean_turns": sum(t.num_turns for t in group) / len(group),
                "handed_over": sum(t.handover_turn is not None for t in group),
                "switch_steps": switch_histogram(t.switch_step for t in group),
            }
        )
    return rows


def print_collection_summary(trajectories: list[Trajectory], title: str) -> None:
    table = Table(title=title)
    for column in (
        "mode",
        "rollouts",
        "ungraded",
        "resolved",
        "filtered",
        "accepted",
        "mean turns",
        "handed over",
        "switch steps",
    ):
        table.add_column(
            column, justify="left" if column in ("mode", "ungraded", "filtered", "switch steps") else "right"
        )
    for row in summary_rows(trajectories):
        table.add_row(
            str(row["mode"]),
            str(row["rollouts"]),
            str(row["ungraded"]),
            str(row["resolved"]),
            str(row["filtered"]),
            str(row["accepted"]),
            f"{row['mean_turns']:.1f}",
            str(row["handed_over"]),
            str(row["switch_steps"]),
        )
    stdout_console.print(table)
