"""Verification: grading logs with swebench (SWE-smith fixture, CLI) and running tests in a sandbox.

The sandbox here is a minimal implementation of the Sandbox protocol (a git clone, commands via
bash) so the verifier is exercised against the protocol only, with real git and real pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from swebench.harness.constants import APPLY_PATCH_FAIL, END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE

from oec.env import SandboxConfig, make_sandbox
from oec.env.base import ExecResult, Sandbox
from oec.tasks.gitrepo import clone, commit_all, diff, git, git_env
from oec.types import SchemaError, Task, Verdict
from oec.verify.__main__ import main as verify_main
from oec.verify.grade import (
    MISSING,
    grade_log,
    parse_pytest_log,
    parse_test_log,
    parser_name_for,
    select_parser,
)
from oec.verify.run_tests import DEFAULT_TEST_COMMAND, verify

SWESMITH = "swesmith/getmoto__moto.694ce1f4.pr_7331"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
"""The public fixtures live outside the checkout, in ../shared/fixtures."""
FIXTURE = FIXTURES / SWESMITH


# --------------------------------------------------------------------------- grading from logs


def fixture_row() -> dict:
    """The fixture's task row; skips the calling test when the fixture is absent."""
    if not FIXTURE.exists():
        pytest.skip(
            f"the SWE-smith fixture {FIXTURE} is absent (it comes with ../shared, beside the checkout)"
        )
    report = json.loads((FIXTURE / "report.json").read_text())["tests_status"]
    return {
        "instance_id": FIXTURE.name,
        "repo": "getmoto/moto",
        "base_commit": "694ce1f4",
        "problem_statement": "",
        "patch": "",
        "test_patch": "",
        "FAIL_TO_PASS": report["FAIL_TO_PASS"]["success"] + report["FAIL_TO_PASS"]["failure"],
        "PASS_TO_PASS": report["PASS_TO_PASS"]["success"] + report["PASS_TO_PASS"]["failure"],
    }


@pytest.fixture
def fixture_task() -> Task:
    return Task.from_dict(fixture_row())


def test_fixture_log_grades_like_swesmith_report(fixture_task: Task) -> None:
    report = json.loads((FIXTURE / "report.json").read_text())
    verdict = grade_log(fixture_task, (FIXTURE / "test_output.txt").read_text())
    assert verdict.resolved is report["resolved"] is True
    assert verdict.error is None
    assert verdict.tests_status == report["tests_status"]


def test_fixture_raw_pytest_output_without_markers(fixture_task: Task) -> None:
    log = (FIXTURE / "test_output.txt").read_text()
    raw = log.split(START_TEST_OUTPUT, 1)[1].split(END_TEST_OUTPUT, 1)[0]
    assert grade_log(fixture_task, raw).resolved


def test_one_failing_fail_to_pass_test_is_unresolved(fixture_task: Task) -> None:
    test = fixture_task.FAIL_TO_PASS[1]
    log = (FIXTURE / "test_output.txt").read_text().replace(f"{test} PASSED", f"{test} FAILED")
    verdict = grade_log(fixture_task, log)
    assert not verdict.resolved
    assert verdict.tests_status["FAIL_TO_PASS"]["failure"] == [test]
    assert len(verdict.tests_status["PASS_TO_PASS"]["success"]) == len(fixture_task.PASS_TO_PASS)


@pytest.mark.slow
def test_cli_on_fixture(tmp_path: Path) -> None:
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(fixture_row()))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "oec.verify",
            "grade",
            "--instance",
            str(instance),
            "--log",
            str(FIXTURE / "test_output.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result["instance_id"] == FIXTURE.name
    assert result["resolved"] is True
    assert result["parser"] == "pytest"
    assert len(result["per_test"]) == 210
    assert set(result["per_test"].values()) == {"PASSED"}


def test_cli_negative_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = fixture_row()
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(row))
    failing = row["FAIL_TO_PASS"][0]
    log = tmp_path / "log.txt"
    log.write_text(
        (FIXTURE / "test_output.txt").read_text().replace(f"{failing} PASSED", f"{failing} FAILED")
    )
    assert verify_main(["grade", "--instance", str(instance), "--log", str(log)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["resolved"] is False
    assert result["per_test"][failing] == "FAILED"
    assert result["tests_status"]["FAIL_TO_PASS"]["failure"] == [failing]

    assert verify_main(["grade", "--instance", str(tmp_path / "nope.json"), "--log", str(log)]) == 2
    assert "nope.json" in capsys.readouterr().err
    del row["FAIL_TO_PASS"]
    instance.write_text(json.dumps(row))
    assert verify_main(["grade", "--instance", str(instance), "--log", str(log)]) == 2
    assert "FAIL_TO_PASS" in capsys.readouterr().err


def test_invalid_logs_are_errors(fixture_task: Task) -> None:
    log = (FIXTURE / "test_output.txt").read_text()
    verdict = grade_log(fixture_task, f"{APPLY_PATCH_FAIL}\n{log}")
    assert not verdict.resolved and APPLY_PATCH_FAIL in verdict.error and FIXTURE.name in verdict.error
    # swebench's guard: a non-zero test exit status with no failure in the log is not trusted
    verdict = grade_log(fixture_task, f"{log}\n{TEST_EXIT_CODE}: 1\n")
    assert not verdict.resolved and "exited with status 1" in verdict.error
    verdict = grade_log(fixture_task, "collected 0 items\n")
    assert not verdict.resolved and "no test results" in verdict.error


def test_pytest_parser_keeps_ids_with_spaces() -> None:
    log = "\n".join(
        [
            "tests/t.py::test_a[x y] PASSED                       [ 50%]",
            "=========================== short test summary info ============================",
            "PASSED tests/t.py::test_a[x y]",
            "FAILED tests/t.py::test_b[1] - assert 1 == 2",
            "SKIPPED [1] tests/t.py:9: no reason",
        ]
    )
    assert parse_pytest_log(log) == {"tests/t.py::test_a[x y]": "PASSED", "tests/t.py::test_b[1]": "FAILED"}


def test_parser_choice(fixture_task: Task) -> None:
    django = Task.from_dict({**fixture_row(), "repo": "django/django"})
    assert parser_name_for(django) == "parse_log_django"
    assert parser_name_for(fixture_task) == "pytest"
    chosen = Task.from_dict({**fixture_row(), "metadata": {"log_parser": "parse_log_pytest"}})
    assert parser_name_for(chosen) == "parse_log_pytest"
    assert parser_name_for(chosen, "parse_log_sympy") == "parse_log_sympy"
    with pytest.raises(ValueError, match=f"{FIXTURE.name}.*unknown log parser 'nope'"):
        select_parser(fixture_task, "nope")
    status_map, error = parse_test_log(
        fixture_task, (FIXTURE / "test_output.txt").read_text(), "parse_log_seaborn"
    )
    assert error is None and len(status_map) == 210


# --------------------------------------------------------------------------- running tests in a sandbox


class GitSandbox:
    """The Sandbox protocol over a git clone; ``max_output`` mimics a runtime that truncates output."""

    def __init__(self, source: Path, base_commit: str, root: Path, max_output: int | None = None) -> None:
        root.mkdir(parents=True)
        self.workdir = str(root / "repo")
        self.tool_dir = str(root / "tools")
        self.base_commit = base_commit
        self.max_output = max_output
        os.makedirs(self.tool_dir)
        clone(source, Path(self.workdir), base_commit)
        self.env = {
            **{k: v for k, v in git_env().items() if k != "PYTEST_ADDOPTS"},
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONDONTWRITEBYTECODE": "1",
            # The task repo needs no plugins; loading the venv's (hydra, lightning...) costs ~1 s a run.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return ExecResult(output, -9, timed_out=True)
        if self.max_output is not None and len(output) > self.max_output:
            return ExecResult(output[: self.max_output], proc.returncode, truncated=True)
        return ExecResult(output, proc.returncode)

    def close(self) -> None:
        pass

    def __enter__(self) -> GitSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CALC = "# calculator\n\n\ndef add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = """import pytest

from calc import add, mul


def test_mul():
    assert mul(2, 3) == 6


@pytest.mark.parametrize("a,b", [(1, 2), (3, 4)], ids=["small ints", "big $x"])
def test_mul_params(a, b):
    assert mul(a, b) == a * b
"""
NEW_TEST = "\n\ndef test_add():\n    assert add(2, 3) == 5\n"
F2P = ["tests/test_calc.py::test_add"]
P2P = [
    "tests/test_calc.py::test_mul",
    "tests/test_calc.py::test_mul_params[small ints]",
    "tests/test_calc.py::test_mul_params[big $x]",
]


def diff_for(repo: Path, edits: dict[str, str]) -> str:
    """The diff that ``edits`` (path -> new content) make to the base commit."""
    for path, content in edits.items():
        (repo / path).write_text(content)
    patch = diff(repo)
    git(repo, "checkout", "-q", "--", ".")
    return patch


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Task]:
    repo = tmp_path_factory.mktemp("calc")
    (repo / "tests").mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    (repo / "pytest.ini").write_text("[pytest]\n")
    base = commit_all(repo, "base")
    task = Task(
        instance_id="demo__calc-1",
        repo="demo/calc",
        base_commit=base,
        problem_statement="add() subtracts",
        patch=diff_for(repo, {"calc.py": CALC.replace("a - b", "a + b")}),
        test_patch=diff_for(repo, {"tests/test_calc.py": TESTS + NEW_TEST}),
        FAIL_TO_PASS=F2P,
        PASS_TO_PASS=P2P,
    )
    return repo, task


def factory(project: tuple[Path, Task], tmp_path: Path, **kwargs: object):
    repo, task = project
    count = iter(range(100))
    return lambda: GitSandbox(repo, task.base_commit, tmp_path / f"sandbox{next(count)}", **kwargs)


def test_gold_patch_resolves(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    verdict = verify(task, task.patch, factory(project, tmp_path))
    assert verdict.error is None, verdict.log
    assert verdict.resolved
    assert verdict.tests_status["FAIL_TO_PASS"] == {"success": F2P, "failure": []}
    assert verdict.tests_status["PASS_TO_PASS"] == {"success": P2P, "failure": []}
    assert START_TEST_OUTPUT in verdict.log and f"{TEST_EXIT_CODE}: 0" in verdict.log


def test_empty_patch_is_unresolved(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    verdict = verify(task, "", factory(project, tmp_path))
    assert not verdict.resolved and verdict.error is None
    assert verdict.tests_status["FAIL_TO_PASS"]["failure"] == F2P
    assert verdict.tests_status["PASS_TO_PASS"]["success"] == P2P


def test_edits_to_test_files_are_reset_before_the_test_patch(
    project: tuple[Path, Task], tmp_path: Path
) -> None:
    repo, task = project
    cheat = diff_for(repo, {"tests/test_calc.py": TESTS + "\n\ndef test_add():\n    pass\n"})
    verdict = verify(task, cheat, factory(project, tmp_path))
    assert verdict.error is None, verdict.log
    assert not verdict.resolved
    fix_and_touch_tests = diff_for(
        repo, {"calc.py": CALC.replace("a - b", "a + b"), "tests/test_calc.py": TESTS.replace("2, 3", "3, 2")}
    )
    assert verify(task, fix_and_touch_tests, factory(project, tmp_path / "b")).resolved


def test_fuzzy_patch_applies_with_the_patch_fallback(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    drifted = task.patch.replace(
        " def mul(a, b):", " def mul(x, y):"
    )  # a context line that no longer matches
    assert drifted != task.patch
    verdict = verify(task, drifted, factory(project, tmp_path))
    assert verdict.resolved, verdict.log
    assert "patch --batch" in verdict.log


def test_patch_that_does_not_apply(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    bad = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n-nothing like this\n-at all\n+x\n+y\n"
    verdict = verify(task, bad, factory(project, tmp_path))
    assert not verdict.resolved
    assert verdict.error.startswith("model patch does not apply for demo__calc-1")
    assert verdict.status == "graded", "a model patch that does not apply is the agent's failure"


def test_test_patch_that_does_not_apply_is_a_task_error(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    stale = task.test_patch.replace(" def test_mul_params(a, b):", " def nope(a, b):")  # context not in repo
    broken = Task.from_dict({**task.to_dict(), "test_patch": stale})
    verdict = verify(broken, task.patch, factory(project, tmp_path))
    assert not verdict.resolved
    assert verdict.status == "task_error"
    assert verdict.error.startswith("test patch does not apply for demo__calc-1")
    # the next task goes on as usual
    assert verify(task, task.patch, factory(project, tmp_path / "next")).resolved


def test_an_empty_test_patch_is_not_applied(project: tuple[Path, Task], tmp_path: Path) -> None:
    """SWE-smith rows have no test patch: their tests are already in the repository."""
    _, task = project
    in_repo = Task.from_dict(
        {**task.to_dict(), "test_patch": "", "FAIL_TO_PASS": P2P[:1], "PASS_TO_PASS": P2P[1:]}
    )
    verdict = verify(in_repo, task.patch, factory(project, tmp_path))
    assert verdict.resolved and verdict.status == "graded", verdict.log


def test_missing_test_id_falls_back_to_test_files(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    gone = "tests/test_calc.py::test_gone"
    with_gone = Task.from_dict({**task.to_dict(), "PASS_TO_PASS": [*P2P, gone]})
    verdict = verify(with_gone, task.patch, factory(project, tmp_path))
    assert not verdict.resolved
    assert verdict.tests_status["PASS_TO_PASS"] == {"success": P2P, "failure": [gone]}
    assert "running files" in verdict.log
    status_map, _ = parse_test_log(with_gone, verdict.log)
    assert status_map.get(gone, MISSING) == MISSING


def test_timeout_is_an_error(project: tuple[Path, Task], tmp_path: Path) -> None:
    _, task = project
    verdict = verify(
        task, task.patch, factory(project, tmp_path), 0.5, test_command=f"sleep 5; {DEFAULT_TEST_COMMAND}"
    )
    assert not verdict.resolved
    assert verdict.error == "tests timed out after 0.5s for demo__calc-1"


def test_long_id_lists_and_a_truncating_sandbox(project: tuple[Path, Task], tmp_path: Path) -> None:
    repo, task = project
    many = "\n\n@pytest.mark.parametrize('i', range(300))\ndef test_many(i):\n    assert add(i, 1) == i + 1\n"
    ids = [f"tests/test_calc.py::test_many[{i}]" for i in range(300)]
    big = Task.from_dict(
        {
            **task.to_dict(),
            "test_patch": diff_for(repo, {"tests/test_calc.py": TESTS + many}),
            "FAIL_TO_PASS": ids,
        }
    )
    # every command's output is cut at 1,500 characters, far less than pytest's summary
    verdict = verify(big, task.patch, factory(project, tmp_path, max_output=1500), read_chunk_bytes=8192)
    assert verdict.error is None, verdict.log[-2000:]
    assert verdict.resolved
    assert len(verdict.tests_status["FAIL_TO_PASS"]["success"]) == 300


def test_with_the_local_sandbox(project: tuple[Path, Task], tmp_path: Path) -> None:
    """The real local runtime, with an output cap far below pytest's log (middle-cut truncation)."""
    repo, task = project
    local = Task.from_dict({**task.to_dict(), "snapshot": str(repo)})
    config = SandboxConfig(max_output_chars=1500, parent_dir=str(tmp_path))
    # The local runtime's clean environment would load the venv's pytest plugins (~1 s); skip them.
    command = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {DEFAULT_TEST_COMMAND}"

    def sandbox() -> Sandbox:
        return make_sandbox(config, local)

    verdict = verify(local, local.patch, sandbox, 120, test_command=command, read_chunk_bytes=4096)
    assert verdict.error is None, verdict.log
    assert verdict.resolved
    assert not verify(local, "", sandbox, 120, test_command=command).resolved


def test_verdict_status_round_trips_and_older_records_are_graded() -> None:
    error = Verdict(resolved=False, error="test patch does not apply", status="task_error")
    assert Verdict.from_dict(error.to_dict()) == error
    older = {"resolved": True, "tests_status": {}, "error": None, "log": None}  # schema 1 and 2
    assert Verdict.from_dict(older).status == "graded"
    with pytest.raises(SchemaError, match="cannot be resolved"):
        Verdict(resolved=True, status="task_error")
    with pytest.raises(SchemaError, match="field 'status' must be one of"):
        Verdict.from_dict({**older, "status": "flaky"})
