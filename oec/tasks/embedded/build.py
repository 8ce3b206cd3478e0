"""Build embedded tasks from the specs: base commit, patches and test lists computed by running them.

For each task the clean project is copied, the bug is injected and committed (the base commit), the
hidden tests are added (their diff is ``test_patch``) and pytest runs on the buggy source; then the
clean source is restored (its diff is the gold ``patch``) and pytest runs again. FAIL_TO_PASS is
what fails before and passes after, PASS_TO_PASS what passes on both sides. Nothing here is taken
on trust from the spec: its FAIL_TO_PASS must be a subset of the computed one, and every test must
pass on the clean source.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from oec.tasks.embedded.materialize import commit_base, copy_project
from oec.tasks.embedded.spec import ProjectSpec, SpecError, TaskSpec, inject, load_spec
from oec.tasks.gitrepo import diff, git
from oec.tasks.pytest_run import PytestRun, run_pytest
from oec.types import Task


class BuildError(RuntimeError):
    """A task could not be built; the message names the spec file and the task id."""


@dataclass(frozen=True)
class BuildResult:
    project: str
    task_id: str
    task: Task | None
    error: str | None
    seconds: float


def _inject(repo: Path, spec_task: TaskSpec, where: str) -> dict[str, str]:
    """Apply the bug edits in ``repo``; return the clean text of every edited file."""
    clean = {edit.file: (repo / edit.file).read_text(encoding="utf-8") for edit in spec_task.bug}
    for file, text in inject(clean, spec_task, where).items():
        (repo / file).write_text(text, encoding="utf-8")
    return clean


def _add_tests(repo: Path, spec_task: TaskSpec) -> None:
    for addition in spec_task.tests:
        path = repo / addition.file
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text + addition.append, encoding="utf-8")


def _failing(run: PytestRun) -> list[str]:
    return sorted(t for t in run.status if not run.passed(t))


def build_task(spec: ProjectSpec, spec_task: TaskSpec, workdir: Path) -> Task:
    """Build one task in ``workdir`` (an empty scratch directory) and return its row."""
    instance_id = spec.instance_id(spec_task)
    where = f"{spec.path.name}: task {spec_task.id!r} ({instance_id})"
    repo = workdir / spec.project
    copy_project(spec.project_dir, repo)
    clean = _inject(repo, spec_task, where)
    base_commit = commit_base(repo, spec.project)

    _add_tests(repo, spec_task)
    git(repo, "add", "-A")
    test_patch = diff(repo, cached=True)
    before = run_pytest(repo)

    for file, text in clean.items():
        (repo / file).write_text(text, encoding="utf-8")
    patch = diff(repo, paths=sorted(clean))
    after = run_pytest(repo)

    if not after.status:
        raise BuildError(f"{where}: pytest collected no tests on the clean source:\n{after.log[-3000:]}")
    if failing := _failing(after):
        raise BuildError(
            f"{where}: tests fail on the clean source (with the hidden tests added): {failing}\n"
            f"{after.log[-3000:]}"
        )
    fail_to_pass = sorted(t for t in after.status if not before.passed(t))
    pass_to_pass = sorted(t for t in after.status if before.passed(t))
    if not fail_to_pass:
        raise BuildError(f"{where}: FAIL_TO_PASS is empty: every test passes on the buggy source")
    if missing := sorted(set(spec_task.fail_to_pass) - set(fail_to_pass)):
        state = {t: before.status.get(t, after.status.get(t, "not collected")) for t in missing}
        raise BuildError(
            f"{where}: spec FAIL_TO_PASS tests do not fail before / pass after the fix: {state} "
            f"(computed FAIL_TO_PASS: {fail_to_pass})"
        )
    return Task(
        instance_id=instance_id,
        repo=spec.repo,
        base_commit=base_commit,
        problem_statement=spec_task.problem_statement,
        patch=patch,
        test_patch=test_patch,
        FAIL_TO_PASS=fail_to_pass,
        PASS_TO_PASS=pass_to_pass,
        split=spec_task.split,
        metadata={"project": spec.project, "spec": f"specs/{spec.path.name}"},
    )


def _build_one(spec: ProjectSpec, spec_task: TaskSpec) -> BuildResult:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oec-build-") as tmp:
        try:
            task, error = build_task(spec, spec_task, Path(tmp)), None
        except (RuntimeError, OSError, SpecError) as exc:  # BuildError and GitError are RuntimeErrors
            task, error = None, str(exc)
    return BuildResult(spec.project, spec_task.id, task, error, time.perf_counter() - start)


def build_specs(
    specs: Iterable[ProjectSpec],
    *,
    workers: int = 2,
    on_result: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build every task of ``specs`` on ``workers`` threads (the work is in git/pytest subprocesses)."""
    jobs = [(spec, task) for spec in specs for task in spec.tasks]
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(lambda job: _build_one(*job), jobs):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def load_specs(specs_dir: Path, projects_dir: Path, project: str | None = None) -> list[ProjectSpec]:
    """Parse ``specs_dir/*.yaml`` (or only ``<project>.yaml``)."""
    paths = sorted(specs_dir.glob("*.yaml"))
    if project is not None:
        paths = [p for p in paths if p.stem == project]
        if not paths:
            raise SpecError(f"no spec file {specs_dir / (project + '.yaml')}")
    return [load_spec(path, projects_dir) for path in paths]


def read_rows(tasks_file: Path) -> list[dict]:
    if not tasks_file.exists():
        return []
    return [json.loads(line) for line in tasks_file.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_tasks(tasks_file: Path, tasks: Iterable[Task], keep_rows: Iterable[dict] = ()) -> int:
    """Write rows sorted by instance_id (plus ``keep_rows`` from other projects); return the count."""
    rows = {row["instance_id"]: row for row in keep_rows}
    rows.update({task.instance_id: task.to_dict() for task in tasks})
    lines = [json.dumps(rows[key], ensure_ascii=False) for key in sorted(rows)]
    tasks_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
