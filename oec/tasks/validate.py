"""Check that tasks are solvable and graded correctly, the way a rollout will see them.

For each task, in a fresh clone of its snapshot at ``base_commit`` (with a SWE-smith task's bug patch
applied, as its sandboxes apply it: :mod:`oec.tasks.swesmith`): the ``test_patch`` is applied and
the FAIL_TO_PASS + PASS_TO_PASS tests run (every FAIL_TO_PASS test must fail, every PASS_TO_PASS
test must pass); then the gold ``patch`` is applied and the same tests must resolve the task by
swebench's own grading (``get_eval_tests_report`` / ``get_resolution_status``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, ResolvedStatus
from swebench.harness.grading import get_eval_tests_report, get_resolution_status, test_failed, test_passed

from oec.tasks.gitrepo import GitError, apply_patch, clone
from oec.tasks.pytest_run import run_pytest
from oec.tasks.rows import bug_patch_of
from oec.types import Task


@dataclass(frozen=True)
class ValidationResult:
    instance_id: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _check(task: Task, workdir: Path, timeout: float) -> list[str]:
    if task.snapshot is None:
        return ["task has no snapshot (load it with a source that sets one)"]
    repo = workdir / "repo"
    try:
        clone(task.snapshot, repo, task.base_commit)
    except GitError as exc:
        return [f"cannot check out base_commit: {exc}"]
    if bug := bug_patch_of(task):
        try:
            apply_patch(repo, bug)
        except GitError as exc:
            return [f"bug patch does not apply to the clean repository: {exc}"]
    tests = [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]
    problems = []
    try:
        apply_patch(repo, task.test_patch)
    except GitError as exc:
        return [f"test_patch does not apply: {exc}"]
    before = run_pytest(repo, tests, timeout=timeout).status
    if passing := [t for t in task.FAIL_TO_PASS if not test_failed(t, before)]:
        problems.append(f"FAIL_TO_PASS tests pass before the gold patch: {passing}")
    if failing := [t for t in task.PASS_TO_PASS if not test_passed(t, before)]:
        problems.append(f"PASS_TO_PASS tests fail before the gold patch: {failing}")
    try:
        apply_patch(repo, task.patch)
    except GitError as exc:
        return [*problems, f"gold patch does not apply: {exc}"]
    after = run_pytest(repo, tests, timeout=timeout).status
    report = get_eval_tests_report(after, {FAIL_TO_PASS: task.FAIL_TO_PASS, PASS_TO_PASS: task.PASS_TO_PASS})
    if get_resolution_status(report) != ResolvedStatus.FULL.value:
        problems.append(
            "gold patch does not resolve the task: failing FAIL_TO_PASS "
            f"{report[FAIL_TO_PASS]['failure']}, failing PASS_TO_PASS {report[PASS_TO_PASS]['failure']}"
        )
    return problems


def validate_task(task: Task, *, timeout: float = 300.0) -> ValidationResult:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oec-validate-") as tmp:
        try:
            problems = _check(task, Path(tmp), timeout)
        except TimeoutError as exc:
            problems = [str(exc)]
    return ValidationResult(task.instance_id, problems, time.perf_counter() - start)


def validate_tasks(
    tasks: Sequence[Task],
    *,
    workers: int = 2,
    timeout: float = 300.0,
    on_result: Callable[[ValidationResult], None] | None = None,
) -> list[ValidationResult]:
    """Validate ``tasks`` on ``workers`` threads (the work is in git/pytest subprocesses), in order."""
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(lambda task: validate_task(task, timeout=timeout), tasks):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
