"""Run a task's tests against a model patch in a fresh sandbox and grade the log.

The steps follow swebench's evaluation harness: apply the model patch (``git apply``, then
``git apply --3way``, ``--reject`` and ``patch --fuzz``, from a pristine tree each time), then

- for a task with an ``eval_script`` (swebench 5.x rows): run that script as swebench's harness does
  (``set -uxo pipefail``, the test command's exit status recorded after the end marker); it resets
  the test files, applies the test patch and runs the tests itself;
- otherwise: restore the files the test patch touches to the base commit (so edits to tests cannot
  mask a failure), apply the test patch, run FAIL_TO_PASS and PASS_TO_PASS with pytest, and
  assemble the log in swebench's eval-log layout (start/end markers, test exit code);

and grade with :mod:`oec.verify.grade` (the task's log parser and grading rule).

Only :meth:`Sandbox.run` is used, files travel through stdin, and everything but the repository
changes lives in the sandbox's ``tool_dir``, so any sandbox runtime works. Test ids travel through
stdin too (read with ``mapfile``), which keeps ids with brackets, spaces or ``$`` intact and long id
lists clear of command-length limits. Pytest's output goes to a file that is read back with
:func:`oec.env.files.read_file`, so a sandbox that truncates command output cannot cut off pytest's
summary.

A model patch that does not apply and a timeout give a graded, unresolved verdict with an
``error`` naming the task: the agent failed. A test patch that does not apply gives a ``task_error``
verdict: the task cannot be verified whatever the agent did (the files it touches were restored to
the base commit first), so it is kept out of resolve rates and never accepted. An empty test patch
(SWE-smith rows: the tests live in the repository) is not applied; a sandbox that cannot start because
the task's bug patch does not apply (:class:`oec.tasks.swesmith.BugPatchError`) is a ``task_error`` too.

Environment breakage is neither: when the sandbox itself fails (:class:`oec.env.base.SandboxInfraError`:
the container died or could not start, its image is missing, the runtime failed) the verification is
retried once from a fresh sandbox, and a second failure gives an ``infra_error`` verdict naming both,
which resolve rates leave out and reports count apart. Only the verification is retried here; a
sandbox that breaks during the agent's episode ends the rollout with the exception (the runner's).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from swebench.harness.constants import APPLY_PATCH_PASS, END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE
from swebench.harness.run_evaluation import GIT_APPLY_CMDS
from swebench.harness.utils import parse_eval_script, record_test_exit_code

from oec.env.base import Sandbox, SandboxInfraError
from oec.env.files import read_file
from oec.tasks.swesmith import BugPatchError
from oec.types import Task, Verdict, VerdictStatus
from oec.verify.grade import DEFAULT_PARSER, grade_log, truncate_log

DEFAULT_TEST_COMMAND = "python -m pytest -rA -p no:cacheprovider --color=no --tb=short"
_PYTEST_USAGE_ERROR = 4  # e.g. "ERROR: not found: <test id>": pytest then runs nothing at all
_PATCH_PATH = re.compile(r"^(?:--- a|\+\+\+ b)/(.+?)\t?$", re.MULTILINE)

SandboxFactory = Callable[[], Sandbox]


class _Unverifiable(Exception):
    """A step before the tests failed; the message becomes the verdict's error."""

    def __init__(self, message: str, status: VerdictStatus = "graded") -> None:
        super().__init__(message)
        self.status: VerdictStatus = status


def _write(sandbox: Sandbox, path: str, text: str, timeout: float) -> None:
    result = sandbox.run(f"cat > {shlex.quote(path)}", timeout=timeout, stdin=text)
    if result.exit_code != 0:
        raise SandboxInfraError(f"cannot write {path} in the sandbox: {result.output.strip()}")


def _as_patch_text(patch: str) -> str:
    return patch if patch.endswith("\n") else patch + "\n"


def _apply_model_patch(sandbox: Sandbox, task: Task, path: str, timeout: float) -> str:
    outputs = []
    for attempt, command in enumerate(GIT_APPLY_CMDS):
        if attempt:
            # A failed attempt (notably --reject) leaves partial state behind.
            sandbox.run("git reset -q --hard && git clean -fdq", timeout=timeout)
        result = sandbox.run(f"{command} {shlex.quote(path)}", timeout=timeout)
        if result.exit_code == 0:
            return f"{APPLY_PATCH_PASS} ({command})\n{result.output}"
        outputs.append(f"$ {command}\n{result.output.strip()}")
    raise _Unverifiable(
        f"model patch does not apply for {task.instance_id}: " + truncate_log("\n".join(outputs), 2_000)
    )


def _apply_test_patch(sandbox: Sandbox, task: Task, path: str, timeout: float) -> str:
    files = sorted(set(_PATCH_PATH.findall(task.test_patch)))
    restore = " ".join(
        f"{{ git checkout -q {shlex.quote(task.base_commit)} -- {q} 2>/dev/null || rm -f -- {q}; }};"
        for q in map(shlex.quote, files)
    )
    if restore:
        sandbox.run(restore, timeout=timeout)
    result = sandbox.run(f"git apply --verbose {shlex.quote(path)}", timeout=timeout)
    if result.exit_code != 0:
        raise _Unverifiable(
            f"test patch does not apply for {task.instance_id}: {truncate_log(result.output.strip(), 2_000)}",
            status="task_error",
        )
    return f"{APPLY_PATCH_PASS} (test patch)\n{result.output}"


def _run_tests(
    sandbox: Sandbox, tests: list[str], test_command: str, log_path: str, timeout: float
) -> tuple[int, bool]:
    """Run ``test_command`` on ``tests`` with output to ``log_path``: (exit code, timed out)."""
    quoted = shlex.quote(log_path)
    result = sandbox.run(
        f': > {quoted}; mapfile -t ids; {{ {test_command} "${{ids[@]}}"; }} > {quoted} 2>&1',
        timeout=timeout,
        stdin="".join(f"{test}\n" for test in tests),
    )
    return result.exit_code, result.timed_out


def eval_script_text(script: str) -> str:
    """A row's ``eval_script`` as swebench's harness runs it (``TestSpec.eval_script``)."""
    lines = record_test_exit_code(parse_eval_script(script))
    return "\n".join(["#!/bin/bash", "set -uxo pipefail", *lines]) + "\n"


def verify(
    task: Task,
    patch: str,
    sandbox_factory: SandboxFactory,
    timeout_s: float = 1800.0,
    *,
    test_command: str = DEFAULT_TEST_COMMAND,
    parser: str | None = None,
    apply_timeout_s: float = 120.0,
    max_log_chars: int = 50_000,
    read_chunk_bytes: int = 48_000,
    max_read_bytes: int = 16_000_000,
    infra_attempts: int = 2,
) -> Verdict:
    """Grade ``patch`` on ``task`` in a fresh sandbox from ``sandbox_factory``.

    ``timeout_s`` bounds the test run; ``test_command`` gets the test ids appended as arguments
    (tasks without an ``eval_script``); the log is parsed with ``parser``, by default pytest's for
    our test command and the task's own for its eval script (:func:`oec.verify.grade.select_parser`).
    ``infra_attempts`` sandboxes are tried before a :class:`SandboxInfraError` becomes an
    ``infra_error`` verdict.
    """
    failures: list[str] = []
    for _ in range(infra_attempts):
        try:
            return _verify_in_sandbox(
                task,
                patch,
                sandbox_factory,
                timeout_s,
                test_command=test_command,
                parser=parser,
                apply_timeout_s=apply_timeout_s,
                max_log_chars=max_log_chars,
                read_chunk_bytes=read_chunk_bytes,
                max_read_bytes=max_read_bytes,
            )
        except SandboxInfraError as exc:
            failures.append(str(exc))
        except BugPatchError as exc:
            return Verdict(resolved=False, error=str(exc), log=str(exc), status="task_error")
    error = f"{task.instance_id}: the sandbox failed {len(failures)} times: " + " | ".join(failures)
    return Verdict(resolved=False, error=truncate_log(error, 4_000), status="infra_error")


def _verify_in_sandbox(
    task: Task,
    patch: str,
    sandbox_factory: SandboxFactory,
    timeout_s: float,
    *,
    test_command: str,
    parser: str | None,
    apply_timeout_s: float,
    max_log_chars: int,
    read_chunk_bytes: int,
    max_read_bytes: int,
) -> Verdict:
    tests = list(dict.fromkeys([*task.FAIL_TO_PASS, *task.PASS_TO_PASS]))
    eval_script = task.metadata.get("eval_script")
    with sandbox_factory() as sandbox:
        scratch = f"{sandbox.tool_dir}/verify"
        model_patch, test_patch, log_path, script_path = (
            f"{scratch}/{n}" for n in ("model.diff", "test.diff", "pytest.log", "eval.sh")
        )
        sandbox.run(f"mkdir -p {shlex.quote(scratch)}", timeout=apply_timeout_s)
        header = []
        try:
            if patch.strip():
                _write(sandbox, model_patch, _as_patch_text(patch), apply_timeout_s)
                header.append(_apply_model_patch(sandbox, task, model_patch, apply_timeout_s))
            if eval_script:
                _write(sandbox, script_path, eval_script_text(eval_script), apply_timeout_s)
            elif task.test_patch.strip():
                _write(sandbox, test_patch, _as_patch_text(task.test_patch), apply_timeout_s)
                header.append(_apply_test_patch(sandbox, task, test_patch, apply_timeout_s))
        except _Unverifiable as exc:
            log = "\n".join([*header, str(exc)])
            return Verdict(resolved=False, error=str(exc), log=log, status=exc.status)
        if eval_script:
            script = f"bash {shlex.quote(script_path)}"
            exit_code, timed_out = _run_tests(sandbox, [], script, log_path, timeout_s)
        else:
            exit_code, timed_out = _run_tests(sandbox, tests, test_command, log_path, timeout_s)
        if exit_code == _PYTEST_USAGE_ERROR and not timed_out and not eval_script:
            # Some listed id does not exist (e.g. a test the patch deleted): run whole files instead,
            # as swebench does, so the other tests still get a status and the missing one fails.
            files = list(dict.fromkeys(test.split("::", 1)[0] for test in tests))
            header.append(f"test ids not collectable (pytest exit {exit_code}); running files: {files}")
            exit_code, timed_out = _run_tests(sandbox, files, test_command, log_path, timeout_s)
        output = read_file(
            sandbox, log_path, max_bytes=max_read_bytes, timeout=apply_timeout_s, chunk_bytes=read_chunk_bytes
        )
    if timed_out:
        error = f"tests timed out after {timeout_s:g}s for {task.instance_id}"
        log = "\n".join([*header, output, error])
        return Verdict(resolved=False, error=error, log=truncate_log(log, max_log_chars))
    if eval_script:  # the script prints its own markers and exit status; the task's parser reads it
        return grade_log(task, "\n".join([*header, output]), parser, max_log_chars)
    log = "\n".join([*header, START_TEST_OUTPUT, output, END_TEST_OUTPUT, f"{TEST_EXIT_CODE}: {exit_code}"])
    return grade_log(task, log, parser or DEFAULT_PARSER, max_log_chars)
