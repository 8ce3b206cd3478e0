"""Grade a test log against a task's FAIL_TO_PASS / PASS_TO_PASS lists as the task's benchmark does.

A task is resolved iff every FAIL_TO_PASS test passes and every PASS_TO_PASS test still passes;
swebench's ``get_resolution_status`` decides that from a per-list report, made by the rule of the
task's source (``Task.metadata["grading"]``, :func:`oec.tasks.rows.grading_of`):

- ``swebench`` (SWE-bench, SWE-Gym, the embedded tasks): swebench 5.x's ``get_eval_tests_report``,
  strict: a listed test that the log does not mention failed (a skipped FAIL_TO_PASS test failed too).
- ``swesmith`` (SWE-smith rows): SWE-smith's own rule, written out here because swesmith cannot be
  installed next to swebench 5.x: a listed test the log does not mention *passed* (SWE-smith's
  harness runs only part of a suite), only an explicit ``FAILED`` / ``ERROR`` fails, and a skipped
  test counts as neither.

So our numbers are comparable with each benchmark's own. Logs come in two layouts and both are
accepted: swebench's eval logs, where the test output sits between its start/end markers (and may
carry the test command's exit status), and raw pytest output.

Parser choice: an explicit name wins; otherwise a task row's ``metadata["log_parser"]`` (the field
swebench 5.x instances carry), then swebench's parser for a known SWE-bench repository, then
``pytest``. The ``pytest`` parser reads pytest's ``-rA`` summary with swebench's
``parse_log_pytest_v2`` (it keeps test ids that contain spaces) and, below it, the verbose progress
lines (``path::test PASSED [ 10%]``) that SWE-smith's harness writes and swebench has no parser for.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from swebench.harness.constants import (
    APPLY_PATCH_FAIL,
    END_TEST_OUTPUT,
    FAIL_TO_FAIL,
    FAIL_TO_PASS,
    PASS_TO_FAIL,
    PASS_TO_PASS,
    RESET_FAILED,
    START_TEST_OUTPUT,
    TESTS_ERROR,
    TESTS_TIMEOUT,
    EvalType,
    ResolvedStatus,
    TestStatus,
)
from swebench.harness.grading import get_eval_tests_report, get_resolution_status, parse_test_exit_code
from swebench.harness.log_parsers import PARSER_REGISTRY
from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY, parse_log_pytest_v2
from swebench.types import TestSpec

from oec.tasks.rows import grading_of
from oec.types import Task, Verdict

DEFAULT_PARSER = "pytest"
MISSING = "MISSING"
"""Per-test status of a listed test that the log does not mention (a failure under the ``swebench``
rule, a pass under the ``swesmith`` rule)."""

_BAD_LOG_MARKERS = (APPLY_PATCH_FAIL, RESET_FAILED, TESTS_ERROR, TESTS_TIMEOUT)
_FAILING = {TestStatus.FAILED.value, TestStatus.ERROR.value}
_PROGRESS_LINE = re.compile(
    r"^(?P<test>\S+::\S+)\s+(?P<status>" + "|".join(s.value for s in TestStatus) + r")\b",
    re.MULTILINE,
)

LogParser = Callable[[str], dict[str, str]]


def parse_pytest_log(log: str) -> dict[str, str]:
    """Test id -> status from pytest output: ``-rA`` summary lines override verbose progress lines."""
    statuses = {m.group("test"): m.group("status") for m in _PROGRESS_LINE.finditer(log)}
    # parse_log_pytest_v2 never reads its test_spec argument.
    statuses.update(parse_log_pytest_v2(log, None))  # type: ignore[arg-type]
    return statuses


def _test_spec(task: Task, parser_name: str) -> TestSpec:
    return TestSpec(
        instance_id=task.instance_id,
        image="",
        eval_script_list=[],
        repo=task.repo,
        version=task.version or "",
        FAIL_TO_PASS=task.FAIL_TO_PASS,
        PASS_TO_PASS=task.PASS_TO_PASS,
        log_parser=parser_name,
        eval_type=_eval_type(task).value,
    )


def _eval_type(task: Task) -> EvalType:
    value = task.metadata.get("eval_type") or EvalType.PASS_AND_FAIL.value
    try:
        return EvalType(value)
    except ValueError:
        choices = [e.value for e in EvalType]
        raise ValueError(
            f"task {task.instance_id!r}: metadata 'eval_type' must be one of {choices}, got {value!r}"
        ) from None


def parser_name_for(task: Task, name: str | None = None) -> str:
    """The parser :func:`select_parser` uses for ``task`` (see the module docstring for the order)."""
    if name:
        return name
    if task.metadata.get("log_parser"):
        return str(task.metadata["log_parser"])
    if task.repo in MAP_REPO_TO_PARSER_PY:
        return MAP_REPO_TO_PARSER_PY[task.repo].__name__
    return DEFAULT_PARSER


def select_parser(task: Task, name: str | None = None) -> LogParser:
    """Return the log parser for ``task``: ``pytest`` or any name in swebench's ``PARSER_REGISTRY``."""
    chosen = parser_name_for(task, name)
    if chosen == DEFAULT_PARSER:
        return parse_pytest_log
    if chosen not in PARSER_REGISTRY:
        choices = ", ".join([DEFAULT_PARSER, *sorted(PARSER_REGISTRY)])
        raise ValueError(f"task {task.instance_id!r}: unknown log parser {chosen!r} (choices: {choices})")
    swebench_parser = PARSER_REGISTRY[chosen]
    spec = _test_spec(task, chosen)
    return lambda log: swebench_parser(log, spec)


def extract_test_output(log: str) -> tuple[str, str | None]:
    """The test-output part of ``log`` and, when the log says the run is invalid, why.

    Mirrors swebench's ``get_logs_eval``: a log carrying one of its failure markers is invalid; a
    marked log is cut to the text between the start and end markers; an unmarked log is raw output.
    """
    bad = [marker for marker in _BAD_LOG_MARKERS if marker in log]
    if bad:
        return "", f"the log reports {bad[0]!r}"
    if START_TEST_OUTPUT in log and END_TEST_OUTPUT in log:
        return log.split(START_TEST_OUTPUT, 1)[1].split(END_TEST_OUTPUT, 1)[0], None
    return log, None


def parse_test_log(task: Task, log: str, parser: str | None = None) -> tuple[dict[str, str], str | None]:
    """Status map (test id -> swebench status) of ``log`` and an error when the log is unusable."""
    parse = select_parser(task, parser)
    section, error = extract_test_output(log)
    if error:
        return {}, error
    status_map = parse(section)
    if not status_map and section is not log:
        # Like swebench: some runners print results outside the markers.
        status_map = parse(log)
    if not status_map:
        return {}, "no test results found in the log (did the tests run?)"
    exit_code = parse_test_exit_code(log)
    if exit_code not in (None, 0) and not _FAILING.intersection(status_map.values()):
        # swebench's guard against a patch that prints its own PASSED lines.
        return {}, f"the test command exited with status {exit_code} but the log reports no failure"
    return status_map, None


def per_test_status(task: Task, status_map: dict[str, str]) -> dict[str, str]:
    """Status of every FAIL_TO_PASS and PASS_TO_PASS test, :data:`MISSING` when not in the log."""
    return {test: status_map.get(test, MISSING) for test in [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]}


def truncate_log(log: str, max_chars: int) -> str:
    """Keep the head (setup, errors) and the longer tail (pytest's summary) of a long log."""
    if len(log) <= max_chars:
        return log
    head = max_chars // 4
    tail = max_chars - head
    omitted = len(log) - head - tail
    return f"{log[:head]}\n[... {omitted} characters omitted ...]\n{log[-tail:]}"


def swesmith_tests_report(
    status_map: dict[str, str], gold: dict[str, list[str]]
) -> dict[str, dict[str, list[str]]]:
    """SWE-smith's ``get_eval_tests_report``: a test missing from ``status_map`` passed; only an
    explicit failure or error failed; any other status (skipped) lands in neither list. The
    FAIL_TO_FAIL / PASS_TO_FAIL lists are empty, as SWE-smith (and swebench) report them."""
    passing = {TestStatus.PASSED.value, TestStatus.XFAIL.value}
    report = {key: {"success": [], "failure": []} for key in (FAIL_TO_FAIL, PASS_TO_FAIL)}
    for key in (FAIL_TO_PASS, PASS_TO_PASS):
        statuses = [(test, status_map.get(test)) for test in gold[key]]
        report[key] = {
            "success": [test for test, status in statuses if status is None or status in passing],
            "failure": [test for test, status in statuses if status in _FAILING],
        }
    return report


def tests_report(task: Task, status_map: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """The per-list report of ``status_map`` by the rule of ``task``'s source (module docstring)."""
    gold = {FAIL_TO_PASS: task.FAIL_TO_PASS, PASS_TO_PASS: task.PASS_TO_PASS}
    if grading_of(task) == "swesmith":
        return swesmith_tests_report(status_map, gold)
    return get_eval_tests_report(status_map, gold, eval_type=_eval_type(task))


def grade_status_map(
    task: Task, status_map: dict[str, str], error: str | None = None, log: str | None = None
) -> Verdict:
    """Grade a status map by the task's rule; an ``error`` (unusable log) is never resolved."""
    report = tests_report(task, status_map)
    resolved = error is None and get_resolution_status(report) == ResolvedStatus.FULL.value
    return Verdict(resolved=resolved, tests_status=report, error=error, log=log)


def grade_log(task: Task, log: str, parser: str | None = None, max_log_chars: int = 50_000) -> Verdict:
    """Parse and grade ``log`` for ``task``; the verdict keeps the log, truncated to ``max_log_chars``."""
    status_map, error = parse_test_log(task, log, parser)
    if error:
        error = f"{task.instance_id}: {error}"
    return grade_status_map(task, status_map, error, truncate_log(log, max_log_chars))
