"""Grading rules chosen by the task source, on a real SWE-smith test log (../shared/fixtures, MIT):
swebench's strict rule for SWE-bench / SWE-Gym rows, SWE-smith's own for SWE-smith rows, and the
log parser named by a row's ``log_parser``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT

from oec.tasks.rows import grading_of, task_from_row
from oec.types import Task
from oec.verify.__main__ import main as verify_main
from oec.verify.grade import grade_log, parser_name_for

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "swesmith"
    / "getmoto__moto.694ce1f4.pr_7331"
)
"""The public fixtures live outside the checkout, in ../shared/fixtures."""
BUG = """diff --git a/moto/cognitoidp/models.py b/moto/cognitoidp/models.py
--- a/moto/cognitoidp/models.py
+++ b/moto/cognitoidp/models.py
@@ -1,3 +1,3 @@
 import json
-import os
+import sys
 import time
"""


def smith_row() -> dict:
    """The fixture's instance as a SWE-smith row; skips the calling test when the fixture is absent."""
    if not FIXTURE.exists():
        pytest.skip(
            f"the SWE-smith fixture {FIXTURE} is absent (it comes with ../shared, beside the checkout)"
        )
    tests = json.loads((FIXTURE / "report.json").read_text())["tests_status"]
    return {
        "instance_id": FIXTURE.name,
        "repo": "swesmith/getmoto__moto.694ce1f4",
        "patch": BUG,
        "FAIL_TO_PASS": tests["FAIL_TO_PASS"]["success"] + tests["FAIL_TO_PASS"]["failure"],
        "PASS_TO_PASS": tests["PASS_TO_PASS"]["success"] + tests["PASS_TO_PASS"]["failure"],
        "image_name": "jyangballin/swesmith.x86_64.getmoto_1776_moto.694ce1f4",
        "problem_statement": "Cognito: forgot_password and confirm_sign_up fail",
    }


def as_swebench_task(row: dict) -> Task:
    """The same instance graded as a SWE-bench row would be (swebench's strict rule)."""
    return task_from_row(
        {**row, "repo": "getmoto/moto", "base_commit": "694ce1f4", "test_patch": ""}, row_format="swe-bench"
    )


@pytest.fixture
def log() -> str:
    smith_row()
    return (FIXTURE / "test_output.txt").read_text()


def without(log: str, test: str) -> str:
    """``log`` as if ``test`` had not run (SWE-smith's harness runs only part of a suite)."""
    lines = [line for line in log.splitlines(keepends=True) if not line.startswith(f"{test} ")]
    assert len(lines) == len(log.splitlines()) - 1
    return "".join(lines)


def test_the_rule_follows_the_source() -> None:
    row = smith_row()
    assert grading_of(task_from_row(row, row_format="swe-smith")) == "swesmith"
    assert grading_of(task_from_row(row)) == "swesmith"  # the file source infers the layout
    assert grading_of(as_swebench_task(row)) == "swebench"
    gym = {**row, "repo": "getmoto/moto", "base_commit": "694ce1f4", "test_patch": ""}
    assert grading_of(task_from_row(gym, row_format="swe-gym")) == "swebench"


def test_both_rules_resolve_the_real_log_like_swesmiths_report(log: str) -> None:
    report = json.loads((FIXTURE / "report.json").read_text())
    for task in (task_from_row(smith_row(), row_format="swe-smith"), as_swebench_task(smith_row())):
        verdict = grade_log(task, log)
        assert verdict.resolved is report["resolved"] is True
        assert verdict.tests_status == report["tests_status"]


def test_a_missing_test_passes_for_swesmith_and_fails_for_swebench(log: str) -> None:
    row = smith_row()
    missing_f2p, missing_p2p = row["FAIL_TO_PASS"][2], row["PASS_TO_PASS"][5]
    partial = without(without(log, missing_f2p), missing_p2p)

    smith = grade_log(task_from_row(row, row_format="swe-smith"), partial)
    assert smith.resolved and smith.error is None
    assert missing_f2p in smith.tests_status["FAIL_TO_PASS"]["success"]
    assert missing_p2p in smith.tests_status["PASS_TO_PASS"]["success"]

    strict = grade_log(as_swebench_task(row), partial)
    assert not strict.resolved
    assert strict.tests_status["FAIL_TO_PASS"]["failure"] == [missing_f2p]
    assert strict.tests_status["PASS_TO_PASS"]["failure"] == [missing_p2p]


def test_swesmith_fails_on_an_explicit_failure_and_ignores_a_skip(log: str) -> None:
    row = smith_row()
    task = task_from_row(row, row_format="swe-smith")
    failed, skipped = row["FAIL_TO_PASS"][0], row["FAIL_TO_PASS"][1]
    verdict = grade_log(task, log.replace(f"{failed} PASSED", f"{failed} FAILED"))
    assert not verdict.resolved and verdict.tests_status["FAIL_TO_PASS"]["failure"] == [failed]
    # SWE-smith's rule: a skipped test is neither a success nor a failure, so it does not block.
    verdict = grade_log(task, log.replace(f"{skipped} PASSED", f"{skipped} SKIPPED"))
    assert verdict.resolved
    assert (
        skipped
        not in verdict.tests_status["FAIL_TO_PASS"]["success"]
        + verdict.tests_status["FAIL_TO_PASS"]["failure"]
    )
    # swebench's rule: a skipped FAIL_TO_PASS test did not pass.
    strict = grade_log(as_swebench_task(row), log.replace(f"{skipped} PASSED", f"{skipped} SKIPPED"))
    assert not strict.resolved and strict.tests_status["FAIL_TO_PASS"]["failure"] == [skipped]


def test_an_unusable_log_fails_under_both_rules(log: str) -> None:
    raw = log.split(START_TEST_OUTPUT, 1)[1].split(END_TEST_OUTPUT, 1)[0]
    no_results = log.replace(raw, "\nImportError: cannot import name 'mock_aws'\n")
    for task in (task_from_row(smith_row(), row_format="swe-smith"), as_swebench_task(smith_row())):
        verdict = grade_log(task, no_results)
        assert not verdict.resolved
        assert "no test results" in (verdict.error or "")


def test_the_rows_log_parser_reads_the_log(log: str) -> None:
    """A swebench 5.x row names its parser; the verbose progress lines of this log are not the
    ``-rA`` summary that swebench's ``parse_log_pytest`` reads, so with it nothing is found."""
    row = {**smith_row(), "repo": "getmoto/moto", "base_commit": "694ce1f4", "test_patch": ""}
    named = task_from_row({**row, "log_parser": "parse_log_pytest"}, row_format="swe-bench")
    assert parser_name_for(named) == "parse_log_pytest"
    assert "no test results" in (grade_log(named, log).error or "")
    summary = "".join(f"PASSED {test}\n" for test in [*named.FAIL_TO_PASS, *named.PASS_TO_PASS])
    assert grade_log(named, f"{START_TEST_OUTPUT}\n{summary}{END_TEST_OUTPUT}\n").resolved
    # Without a row parser, a SWE-bench repository gets swebench's parser for it, others pytest's.
    assert (
        parser_name_for(task_from_row({**row, "repo": "django/django"}, row_format="swe-bench"))
        == "parse_log_django"
    )
    assert parser_name_for(task_from_row(row, row_format="swe-bench")) == "pytest"


def test_the_cli_grades_a_row_by_its_sources_rule(
    tmp_path: Path, log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    row = smith_row()
    instance, partial = tmp_path / "instance.json", tmp_path / "log.txt"
    instance.write_text(json.dumps(row))
    partial.write_text(without(log, row["FAIL_TO_PASS"][0]))
    assert verify_main(["grade", "--instance", str(instance), "--log", str(partial)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["grading"], result["resolved"], result["per_test"][row["FAIL_TO_PASS"][0]]) == (
        "swesmith",
        True,
        "MISSING",
    )
    instance.write_text(
        json.dumps({**row, "repo": "getmoto/moto", "base_commit": "694ce1f4", "test_patch": ""})
    )
    assert (
        verify_main(["grade", "--instance", str(instance), "--log", str(partial), "--source", "swe_bench"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["grading"], result["resolved"]) == ("swebench", False)
    instance.write_text(json.dumps({**row, "patch": ""}))
    assert (
        verify_main(["grade", "--instance", str(instance), "--log", str(partial), "--source", "swe_smith"])
        == 2
    )
    assert "field 'patch' (the bug patch)" in capsys.readouterr().err
