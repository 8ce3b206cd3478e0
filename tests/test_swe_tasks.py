"""Real SWE task sources: SWE-bench (classic and swebench 5.x), SWE-Gym and SWE-smith rows from JSONL,
parquet and saved ``datasets`` folders; image names; the SWE-smith bug patch in a real sandbox; a 5.x
eval script; infra_error verdicts and their accounting; swebench's harness files and run report.

Rows follow the published layouts (SWE-bench/SWE-bench_Verified, SWE-Gym/SWE-Gym,
SWE-bench/SWE-smith); repositories are small real git repositories, tests run with real pytest in
the local sandbox, and swebench's own code reads what we write for its harness.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict
from hydra import compose, initialize_config_dir
from swebench.harness.constants import APPLY_PATCH_FAIL, LOG_INSTANCE, LOG_REPORT, RUN_EVALUATION_LOG_DIR
from swebench.harness.grading import get_eval_report
from swebench.harness.reporting import make_run_report
from swebench.harness.run_evaluation import get_dataset_from_preds
from swebench.harness.utils import get_predictions_from_file, load_swebench_dataset, make_test_spec

from oec.config import ConfigError, parse
from oec.env import SandboxConfig, make_sandbox
from oec.env.base import ExecResult, Sandbox, SandboxInfraError
from oec.eval_report import evaluation_report, write_predictions
from oec.progress import summary_rows
from oec.tasks import TasksConfig, image_of, load_tasks, workdir_of
from oec.tasks.__main__ import CONF_DIR
from oec.tasks.gitrepo import commit_all, diff, git
from oec.tasks.rows import bug_patch_of, reverse_patch, task_from_row
from oec.tasks.swesmith import BugPatchError, apply_bug_patch
from oec.tasks.validate import validate_task
from oec.types import Message, Task, Trajectory, Verdict
from oec.verify.run_tests import DEFAULT_TEST_COMMAND, verify
from oec.verify.swebench_harness import (
    HarnessUnavailable,
    grade_with_harness,
    harness_command,
    instance_row,
    read_run_report,
    run_report_path,
    unavailable_reason,
    write_instances,
)

ASTROPY = {  # SWE-bench_Verified, classic columns (test lists as JSON strings, as on the hub)
    "repo": "astropy/astropy",
    "instance_id": "astropy__astropy-12907",
    "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
    "patch": "diff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py\n",
    "test_patch": "diff --git a/astropy/modeling/tests/test_separable.py b/astropy/modeling/tests/test_separable.py\n",  # noqa: E501
    "problem_statement": "Modeling's `separability_matrix` does not compute separability correctly",
    "hints_text": "",
    "created_at": "2022-03-03T15:14:54Z",
    "version": "4.3",
    "FAIL_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]',
    "PASS_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_coord_matrix"]',
    "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
    "difficulty": "15 min - 1 hour",
}
DJANGO_5X = {  # a swebench 5.x row: the harness reads image, eval_script and log_parser from it
    **ASTROPY,
    "repo": "django/django",
    "instance_id": "django__django-11099",
    "version": "3.0",
    "FAIL_TO_PASS": '["test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)"]',
    "PASS_TO_PASS": "[]",
    "image": "swebench/sweb.eval.x86_64.django_1776_django-11099:latest",
    "eval_script": "#!/bin/bash\nset -uxo pipefail\ncd /testbed\n: '>>>>> Start Test Output'\n"
    "./tests/runtests.py --verbosity 2 auth_tests.test_validators\n: '>>>>> End Test Output'\n",
    "log_parser": "parse_log_django",
    "eval_type": "pass_and_fail",
}
GYM = {  # SWE-Gym: SWE-bench's columns, test lists as lists
    **ASTROPY,
    "repo": "getmoto/moto",
    "instance_id": "getmoto__moto-5752",
    "base_commit": "b2300f1eae1323e3e8bc45f97e530ce129dff12e",
    "version": "4.0",
    "FAIL_TO_PASS": ["tests/test_ssm/test_ssm_boto3.py::test_describe_parameters__multiple_tags"],
    "PASS_TO_PASS": ["tests/test_ssm/test_ssm_boto3.py::test_delete_parameter"],
}
SMITH = {  # SWE-bench/SWE-smith: `patch` introduces the bug, `image_name` is the clean repository's
    "instance_id": "getmoto__moto.694ce1f4.pr_7331",
    "repo": "swesmith/getmoto__moto.694ce1f4",
    "patch": "diff --git a/moto/core/responses.py b/moto/core/responses.py\n"
    "--- a/moto/core/responses.py\n+++ b/moto/core/responses.py\n@@ -1 +1 @@\n-a\n+b\n",
    "FAIL_TO_PASS": ["tests/test_cognitoidp/test_cognitoidp.py::test_forgot_password"],
    "PASS_TO_PASS": ["tests/test_cognitoidp/test_cognitoidp.py::test_create_user_pool"],
    "created_at": "2025-03-17T10:12:44.123456",
    "image_name": "jyangballin/swesmith.x86_64.getmoto_1776_moto.694ce1f4",
    "problem_statement": "Cognito forgot_password fails",
}


def write_rows(path: Path, rows: list[dict], file_format: str) -> Path:
    """Write ``rows`` as a JSONL file, a parquet file or a saved ``datasets`` folder; in the columnar
    formats every row has every column (null where a row lacks it), as in a published dataset."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if file_format != "jsonl":
        rows = [{key: row.get(key) for key in columns} for row in rows]
    if file_format == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif file_format == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        Dataset.from_list(rows).save_to_disk(str(path))
    return path


# --------------------------------------------------------------------------- loading and image names


@pytest.mark.parametrize(
    ("suffix", "file_format"), [(".jsonl", "jsonl"), (".parquet", "parquet"), ("", "datasets")]
)
def test_swe_bench_rows_from_every_format(tmp_path: Path, suffix: str, file_format: str) -> None:
    path = write_rows(tmp_path / f"verified{suffix}", [ASTROPY, DJANGO_5X], file_format)
    loaded = load_tasks("swe_bench", path=str(path), split="test")
    assert loaded.errors == []
    classic, modern = loaded.tasks
    assert image_of(classic) == "swebench/sweb.eval.x86_64.astropy_1776_astropy-12907"
    assert image_of(modern) == DJANGO_5X["image"]  # the row's own name, never recomputed
    assert workdir_of(classic) == workdir_of(modern) == "/testbed"
    assert modern.metadata["eval_script"] == DJANGO_5X["eval_script"]
    assert modern.metadata["log_parser"] == "parse_log_django"
    assert classic.metadata["grading"] == modern.metadata["grading"] == "swebench"
    assert classic.split == "test" and classic.FAIL_TO_PASS[0].endswith("[compound_model6-result6]")
    assert classic.metadata["difficulty"] == "15 min - 1 hour"


def test_swe_gym_and_swe_smith_image_names(tmp_path: Path) -> None:
    gym = load_tasks("swe_gym", path=str(write_rows(tmp_path / "gym.parquet", [GYM], "parquet"))).tasks
    assert image_of(gym[0]) == "xingyaoww/sweb.eval.x86_64.getmoto_s_moto-5752"
    unnamed = {k: v for k, v in SMITH.items() if k != "image_name"}
    rows = [SMITH, {**unnamed, "instance_id": "getmoto__moto.694ce1f4.func_pm_op_swap__1"}]
    smith = load_tasks("swe_smith", path=str(write_rows(tmp_path / "smith.jsonl", rows, "jsonl")))
    assert [image_of(t) for t in smith.tasks] == [SMITH["image_name"]] * 2
    templated = load_tasks(
        "swe_smith",
        path=str(tmp_path / "smith.jsonl"),
        image_template="registry.local/{owner}_{name}:{commit8}",
        workdir="/work/repo",
    ).tasks
    assert [image_of(t) for t in templated] == [SMITH["image_name"], "registry.local/getmoto_moto:694ce1f4"]
    assert workdir_of(templated[0]) == "/work/repo"
    # The generic source infers each row's layout and names no image a row does not carry.
    rows = load_tasks("file", path=str(write_rows(tmp_path / "mixed.jsonl", [SMITH, ASTROPY], "jsonl"))).tasks
    assert [image_of(t) for t in rows] == [SMITH["image_name"], None]
    assert [t.metadata["row_format"] for t in rows] == ["swe-smith", "swe-bench"]


def test_a_saved_datasetdict_gives_its_split_names(tmp_path: Path) -> None:
    folder = tmp_path / "gym"
    DatasetDict(
        {"train": Dataset.from_list([GYM]), "test": Dataset.from_list([{**GYM, "instance_id": "a__b-1"}])}
    ).save_to_disk(str(folder))
    loaded = load_tasks("swe_gym", path=str(folder))
    assert {t.instance_id: t.split for t in loaded.tasks} == {"a__b-1": "test", "getmoto__moto-5752": "train"}
    assert [t.instance_id for t in load_tasks("swe_gym", path=str(folder), split="train").tasks] == [
        "getmoto__moto-5752"
    ]


def test_swe_smith_rows_carry_the_bug_and_its_reverse_as_gold() -> None:
    [task] = load_tasks_from_rows([SMITH], "swe_smith")
    assert bug_patch_of(task) == SMITH["patch"]
    assert task.patch == reverse_patch(SMITH["patch"])
    assert "\n+a\n" in task.patch and "\n-b\n" in task.patch
    assert task.test_patch == "" and task.base_commit == "HEAD"
    assert task.metadata["grading"] == "swesmith" and task.metadata["created_at"] == SMITH["created_at"]


def load_tasks_from_rows(rows: list[dict], source: str) -> list[Task]:
    """``rows`` mapped as the task source ``source`` maps them (no file in between)."""
    row_format = {"swe_bench": "swe-bench", "swe_gym": "swe-gym", "swe_smith": "swe-smith"}[source]
    return [task_from_row(row, row_format=row_format) for row in rows]


def test_bad_rows_are_skipped_with_the_row_and_field_named(tmp_path: Path) -> None:
    rows = [
        SMITH,
        {**SMITH, "instance_id": "no_patch", "patch": None},
        {**SMITH, "instance_id": "bad_image", "image_name": 7},
        {k: v for k, v in SMITH.items() if k != "image_name"} | {"instance_id": "bad_repo", "repo": "moto"},
        {k: v for k, v in SMITH.items() if k != "FAIL_TO_PASS"} | {"instance_id": "no_tests"},
        {**SMITH, "instance_id": "binary", "patch": "diff --git a/x b/x\nGIT binary patch\nliteral 1\n"},
    ]
    loaded = load_tasks("swe_smith", path=str(write_rows(tmp_path / "rows.jsonl", rows, "jsonl")))
    assert [t.instance_id for t in loaded.tasks] == [SMITH["instance_id"]]
    errors = {e.instance_id: (e.row, str(e)) for e in loaded.errors}
    assert errors["no_patch"][0] == 2 and "field 'patch'" in errors["no_patch"][1]
    assert "field 'image_name'" in errors["bad_image"][1]
    assert "field 'repo' must name a SWE-smith mirror" in errors["bad_repo"][1]
    assert "field 'FAIL_TO_PASS'" in errors["no_tests"][1]
    assert "field 'patch': a binary patch" in errors["binary"][1]
    assert str(loaded.errors[0]).startswith("row 2, instance 'no_patch': ")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"source": "swe_bench", "path": "rows.jsonl", "image_template": "x/{repo}"},
            "tasks.image_template: unknown field {repo}",
        ),
        (
            {"source": "swe_gym", "path": "rows.jsonl", "workdir": "testbed"},
            "tasks.workdir: must be an absolute path",
        ),
        ({"source": "swe_smith", "path": "rows.csv"}, "tasks.format: cannot infer"),
        (
            {"source": "swe_smith", "path": "rows", "cache_dir": "/c"},
            "tasks.cache_dir: belongs to source='embedded'",
        ),
    ],
)
def test_config_errors_name_the_key(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(TasksConfig, fields, "tasks")


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tasks\.path: tasks file not found"):
        load_tasks("swe_bench", path=str(tmp_path / "verified"))
    (tmp_path / "rows").mkdir()
    with pytest.raises(ConfigError, match=r"^tasks\.path: cannot read .* as datasets"):
        load_tasks("swe_bench", path=str(tmp_path / "rows"))


@pytest.mark.parametrize("option", ["swe_bench", "swe_gym", "swe_smith"])
def test_hydra_groups_match_the_dataclasses(option: str) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=[f"+tasks={option}", "tasks.path=rows.parquet"])
    config = parse(TasksConfig, cfg.tasks, "tasks")
    assert config.source == option and config.file_format == "parquet" and config.workdir == "/testbed"


# --------------------------------------------------------------------------- a small real project

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = (
    "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n"
)
F2P, P2P = ["tests/test_calc.py::test_add"], ["tests/test_calc.py::test_mul"]
# The local runtime's clean environment would load the venv's pytest plugins (~1 s); skip them.
COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {DEFAULT_TEST_COMMAND}"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A clean repository named like a SWE-smith mirror, its commit and a bug patch for it."""
    repos = tmp_path_factory.mktemp("repos")
    repo = repos / "swesmith__calc.0123abcd"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    (repo / "pytest.ini").write_text("[pytest]\n")
    clean = commit_all(repo, "clean")
    (repo / "calc.py").write_text(CALC.replace("a + b", "a - b"))
    (repo / "notes.txt").write_text("a file the bug adds\n")
    git(repo, "add", "-A")
    bug = git(repo, "diff", "--cached", "--no-color")
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-fdq")
    return repo, clean, bug


def smith_task(mirror: tuple[Path, str, str], **changes: object) -> Task:
    repo, clean, bug = mirror
    row = {
        **SMITH,
        "instance_id": "swesmith__calc.0123abcd.func_pm_op_swap__7",
        "repo": "swesmith/swesmith__calc.0123abcd",
        "base_commit": clean,
        "patch": bug,
        "FAIL_TO_PASS": F2P,
        "PASS_TO_PASS": P2P,
        "image_name": "jyangballin/swesmith.x86_64.swesmith_1776_calc.0123abcd",
        **changes,
    }
    [task] = load_tasks(
        "swe_smith",
        path=str(write_rows(repo.parent / "rows.jsonl", [row], "jsonl")),
        repos_dir=str(repo.parent),
    ).tasks
    assert task.snapshot == str(repo)
    return task


def sandbox_factory(task: Task, tmp_path: Path, infra_failures: int = 0):
    """Local sandboxes of a SWE-smith task (``make_sandbox`` applies and commits the bug patch on the
    clean repository); the first ``infra_failures`` fail to start."""
    config = SandboxConfig(parent_dir=str(tmp_path))
    started = iter(range(1000))

    def make() -> Sandbox:
        if next(started) < infra_failures:
            raise SandboxInfraError("container oec-verify-1 exited with status 137 before it was ready")
        return make_sandbox(config, task)

    return make


def test_reverse_patch_undoes_the_bug_with_real_git(mirror: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, _, bug = mirror
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    git(work, "apply", "-", stdin=bug)
    assert (work / "notes.txt").exists()
    git(work, "apply", "-", stdin=reverse_patch(bug))
    assert diff(work) == "" and not (work / "notes.txt").exists()
    assert reverse_patch(reverse_patch(bug)) == bug


@pytest.mark.slow
def test_the_bug_patch_is_the_agents_base_and_the_gold_patch_resolves(
    mirror: tuple[Path, str, str], tmp_path: Path
) -> None:
    task = smith_task(mirror)
    make = sandbox_factory(task, tmp_path)
    with make() as sandbox:
        clean = mirror[1]
        assert sandbox.base_commit != clean
        assert sandbox.run("git rev-parse HEAD~1").output.strip() == clean
        assert "a - b" in sandbox.run("cat calc.py").output
        assert sandbox.run("git status --porcelain").output == ""  # the bug is committed: diffs start clean
        assert apply_bug_patch(sandbox, task) == sandbox.base_commit  # already there: left alone
    gold = verify(task, task.patch, make, 120, test_command=COMMAND)
    assert gold.resolved and gold.status == "graded", gold.log
    empty = verify(task, "", make, 120, test_command=COMMAND)
    assert not empty.resolved and empty.tests_status["FAIL_TO_PASS"]["failure"] == F2P


def test_a_bug_patch_that_does_not_apply_is_a_task_error(
    mirror: tuple[Path, str, str], tmp_path: Path
) -> None:
    task = smith_task(mirror, patch=SMITH["patch"])  # a patch for another repository
    with pytest.raises(BugPatchError, match="does not apply to the clean repository"):
        sandbox_factory(task, tmp_path)()
    verdict = verify(task, task.patch, sandbox_factory(task, tmp_path), 60, test_command=COMMAND)
    assert (verdict.status, verdict.resolved) == ("task_error", False)


# --------------------------------------------------------------------------- infra_error


@pytest.mark.slow
def test_a_sandbox_that_fails_once_is_retried(mirror: tuple[Path, str, str], tmp_path: Path) -> None:
    task = smith_task(mirror)
    verdict = verify(
        task, task.patch, sandbox_factory(task, tmp_path, infra_failures=1), 120, test_command=COMMAND
    )
    assert verdict.resolved and verdict.status == "graded"


def test_a_sandbox_that_fails_twice_is_an_infra_error(mirror: tuple[Path, str, str], tmp_path: Path) -> None:
    task = smith_task(mirror)
    verdict = verify(
        task, task.patch, sandbox_factory(task, tmp_path, infra_failures=2), 120, test_command=COMMAND
    )
    assert (verdict.status, verdict.resolved) == ("infra_error", False)
    assert verdict.error.count("exited with status 137") == 2 and task.instance_id in verdict.error


class DyingSandbox:
    """A sandbox whose container dies after ``commands`` commands, as a runtime reports it."""

    def __init__(self, sandbox: Sandbox, commands: int) -> None:
        self.sandbox, self.left = sandbox, commands
        self.workdir, self.tool_dir, self.base_commit = sandbox.workdir, sandbox.tool_dir, sandbox.base_commit

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        self.left -= 1
        if self.left < 0:
            raise SandboxInfraError("container oec-verify-2 is not running (OOM-killed by the daemon)")
        return self.sandbox.run(command, timeout, stdin)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> DyingSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_container_dying_mid_verification_is_an_infra_error(
    mirror: tuple[Path, str, str], tmp_path: Path
) -> None:
    task = smith_task(mirror)
    make = sandbox_factory(task, tmp_path)
    verdict = verify(task, task.patch, lambda: DyingSandbox(make(), commands=3), 120, test_command=COMMAND)
    assert verdict.status == "infra_error" and "OOM-killed" in verdict.error


def rollout(instance_id: str, resolved: bool, status: str = "graded") -> Trajectory:
    messages = [Message(role="assistant", content="submit", author="student", turn=0)]
    return Trajectory(
        instance_id=instance_id,
        sample_index=0,
        mode="on_policy",
        seed=0,
        messages=messages,
        models={"student": "tiny"},
        exit_status="submitted",
        patch=f"diff for {instance_id}\n",
        verdict=Verdict(resolved=resolved, status=status, error=None if status == "graded" else status),
    )


def test_infra_errors_are_out_of_the_resolve_rate_and_counted() -> None:
    trajectories = [
        rollout("a", True),
        rollout("b", False),
        rollout("c", False, "infra_error"),
        rollout("d", False, "task_error"),
    ]
    report = evaluation_report(trajectories, "tiny")
    assert (report["resolved"], report["unresolved"], report["infra_error"], report["graded"]) == (1, 1, 1, 2)
    assert report["resolve_rate"] == 0.5 and report["ungraded"] == {"infra_error": 1, "task_error": 1}
    [row] = summary_rows(trajectories)  # the collect summary
    assert row["ungraded"] == "infra_error:1 task_error:1"


# --------------------------------------------------------------------------- a swebench 5.x eval script


def test_a_rows_eval_script_runs_as_swebenchs_harness_runs_it(
    mirror: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A 5.x row's eval script (reset test files, apply the test patch, run between the markers)
    on a SWE-bench-style task, graded with the parser the row names (swebench's ``parse_log_pytest``)."""
    repo, clean, _ = mirror
    test_patch = diff_of(
        repo, {"tests/test_calc.py": TESTS + "\n\ndef test_mul_zero():\n    assert mul(0, 3) == 0\n"}
    )
    script = "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            f"git checkout {clean} tests/test_calc.py",
            "git apply -v - <<'EOF_114329324912'",
            test_patch.rstrip("\n"),
            "EOF_114329324912",
            ": '>>>>> Start Test Output'",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider tests/test_calc.py",
            ": '>>>>> End Test Output'",
            f"git checkout {clean} tests/test_calc.py",
        ]
    )
    row = {
        **ASTROPY,
        "instance_id": "demo__calc-2",
        "repo": "demo/calc",
        "base_commit": clean,
        "patch": "",
        "test_patch": test_patch,
        "FAIL_TO_PASS": ["tests/test_calc.py::test_mul_zero"],
        "PASS_TO_PASS": ["tests/test_calc.py::test_add"],
        "image": "swebench/sweb.eval.x86_64.demo_1776_calc-2:latest",
        "eval_script": script,
        "log_parser": "parse_log_pytest",
        "snapshot": str(repo),
    }
    [task] = load_tasks_from_rows([row], "swe_bench")
    config = SandboxConfig(parent_dir=str(tmp_path))
    verdict = verify(task, "", lambda: make_sandbox(config, task), 120)
    assert verdict.resolved, verdict.log
    assert (
        ">>>>> Test Exit Code: 0" in verdict.log and "PASSED tests/test_calc.py::test_mul_zero" in verdict.log
    )
    broken = diff_of(repo, {"calc.py": CALC.replace("a * b", "a * b + 1")})
    verdict = verify(task, broken, lambda: make_sandbox(config, task), 120)
    assert not verdict.resolved and verdict.tests_status["FAIL_TO_PASS"]["failure"] == [
        "tests/test_calc.py::test_mul_zero"
    ]


def diff_of(repo: Path, edits: dict[str, str]) -> str:
    for path, content in edits.items():
        (repo / path).write_text(content)
    patch = diff(repo)
    git(repo, "checkout", "-q", "--", ".")
    return patch


# --------------------------------------------------------------------------- swebench's harness


def test_the_harness_reads_our_instances_and_predictions(tmp_path: Path) -> None:
    [task] = load_tasks_from_rows([DJANGO_5X], "swe_bench")
    instances = write_instances([task], tmp_path)
    [row] = load_swebench_dataset(str(instances), "test")
    spec = make_test_spec(row)  # what the harness builds for each instance
    assert (spec.image, spec.log_parser, spec.eval_type) == (
        DJANGO_5X["image"],
        "parse_log_django",
        "pass_and_fail",
    )
    assert json.loads(DJANGO_5X["FAIL_TO_PASS"]) == spec.FAIL_TO_PASS and "runtests.py" in spec.eval_script
    predictions = write_predictions([rollout(task.instance_id, False)], "org/student", tmp_path)
    loaded = get_predictions_from_file(str(predictions), str(instances), "test")
    assert loaded == [
        {
            "instance_id": task.instance_id,
            "model_name_or_path": "org/student",
            "model_patch": f"diff for {task.instance_id}\n",
        }
    ]
    by_id = {p["instance_id"]: p for p in loaded}
    assert [
        d["instance_id"] for d in get_dataset_from_preds(str(instances), "test", None, by_id, "r1", False)
    ] == [task.instance_id]


def test_classic_rows_and_a_missing_daemon_or_image_keep_our_verdicts() -> None:
    [classic] = load_tasks_from_rows([ASTROPY], "swe_bench")
    with pytest.raises(HarnessUnavailable, match="has no 'eval_script', 'log_parser'"):
        instance_row(classic)
    assert "has no 'eval_script', 'log_parser'" in unavailable_reason([classic])
    [modern] = load_tasks_from_rows([DJANGO_5X], "swe_bench")
    reason = unavailable_reason([modern])  # no SWE-bench image is present on a test machine
    assert reason is not None and (
        "docker daemon is not reachable" in reason or "not present locally" in reason
    )


def test_harness_command_and_report_path(tmp_path: Path) -> None:
    command = harness_command(tmp_path / "i.jsonl", tmp_path / "p.jsonl", "r1", 2, 900, python="python")
    assert command[:3] == ["python", "-m", "swebench.harness.run_evaluation"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options == {
        "--dataset_name": str(tmp_path / "i.jsonl"),
        "--predictions_path": str(tmp_path / "p.jsonl"),
        "--run_id": "r1",
        "--max_workers": "2",
        "--timeout": "900",
        "--report_dir": ".",
    }
    assert run_report_path(tmp_path, "org/student", "r1") == tmp_path / "org__student.r1.json"


@pytest.mark.slow
def test_every_option_we_pass_is_one_of_the_harness(tmp_path: Path) -> None:
    command = harness_command(tmp_path / "i.jsonl", tmp_path / "p.jsonl", "r1", 2, 900)
    usage = subprocess.run(
        [sys.executable, "-m", "swebench.harness.run_evaluation", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in command[3::2]:
        assert option in usage


def test_the_harness_run_report_in_our_categories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-instance reports and the run report made by swebench's own code, from logs laid out as its
    harness writes them: resolved, failing tests, a patch that did not apply, a container that never
    started, an environment failure its classifier flags, and an empty patch."""
    monkeypatch.chdir(tmp_path)
    model, run_id = "org/student", "r1"
    ids = ["resolved__1", "failing__2", "noapply__3", "nostart__4", "daemon__5", "empty__6"]
    tests = ["tests/test_a.py::test_one"]
    dataset = [
        {
            **DJANGO_5X,
            "instance_id": i,
            "FAIL_TO_PASS": tests,
            "PASS_TO_PASS": [],
            "log_parser": "parse_log_pytest",
        }
        for i in ids
    ]
    predictions = {
        i: {"instance_id": i, "model_name_or_path": model, "model_patch": "" if i == "empty__6" else "diff\n"}
        for i in ids
    }
    start, end = ">>>>> Start Test Output\n", ">>>>> End Test Output\n"
    logs = {
        "resolved__1": f"{start}PASSED tests/test_a.py::test_one\n{end}",
        "failing__2": f"{start}FAILED tests/test_a.py::test_one - assert 0\n{end}",
        "daemon__5": "Error response from daemon: container is not running\n",
    }
    for instance_id, log in logs.items():
        folder = RUN_EVALUATION_LOG_DIR / run_id / "org__student" / instance_id
        folder.mkdir(parents=True)
        (folder / "test_output.txt").write_text(log)
        spec = make_test_spec(next(d for d in dataset if d["instance_id"] == instance_id))
        report = get_eval_report(spec, predictions[instance_id], str(folder / "test_output.txt"), True)
        (folder / LOG_REPORT).write_text(json.dumps(report))
    for instance_id, log in {
        "noapply__3": f"{APPLY_PATCH_FAIL}:\nerror: patch failed\n",
        "nostart__4": "Error creating container\n",
    }.items():
        folder = RUN_EVALUATION_LOG_DIR / run_id / "org__student" / instance_id
        folder.mkdir(parents=True)
        (folder / LOG_INSTANCE).write_text(log)
    path = make_run_report(predictions, dataset, run_id, None, ".")
    assert Path(path).resolve() == run_report_path(tmp_path, model, run_id)
    outcome = read_run_report(run_report_path(tmp_path, model, run_id), model, run_id)
    assert outcome.resolved == ["resolved__1"]
    assert outcome.unresolved == ["empty__6", "failing__2", "noapply__3"]
    assert outcome.infra_error == ["daemon__5", "nostart__4"]
    counts = outcome.counts()
    assert (counts["harness"], counts["graded"], counts["infra_error"]) == ("swebench", 4, 2)
    assert counts["resolve_rate"] == 0.25


def embedded_image(instance_id: str) -> str | None:
    """The local image of an embedded task (``make images``: ``oec-embedded/<project>-<n>:<tag>``)."""
    try:
        listed = subprocess.run(
            [
                "docker",
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                f"oec-embedded/{instance_id.split('__')[1]}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return listed.stdout.split()[0] if listed.returncode == 0 and listed.stdout.strip() else None


def swebench_eval_script(task: Task) -> str:
    """An eval script shaped like swebench 5.x's: reset the test files, apply the test patch, run the
    listed tests between the markers, reset again."""
    files = " ".join(sorted(set(re.findall(r"^\+\+\+ b/(.+)$", task.test_patch, re.MULTILINE))))
    tests = " ".join(f"'{test}'" for test in [*task.FAIL_TO_PASS, *task.PASS_TO_PASS])
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            f"git checkout {task.base_commit} {files}",
            "git apply -v - <<'EOF_114329324912'",
            task.test_patch.rstrip("\n"),
            "EOF_114329324912",
            ": '>>>>> Start Test Output'",
            f"python -m pytest -rA -p no:cacheprovider {tests}",
            ": '>>>>> End Test Output'",
            f"git checkout {task.base_commit} {files}",
        ]
    )


@pytest.mark.slow
def test_swebenchs_harness_end_to_end_on_local_images(tmp_path: Path) -> None:
    """swebench's real harness in docker on two embedded tasks in their images, as 5.x rows: the gold
    patch resolves, a patch that does not apply is unresolved, a missing image is an infra_error."""
    ids = ["oec-embedded__ledger-008", "oec-embedded__ledger-009", "oec-embedded__ledger-010"]
    tasks = load_tasks("embedded", instance_ids=ids, materialize_snapshots=False).tasks
    images = [embedded_image(ids[0]), embedded_image(ids[1]), "oec-embedded/no-such-image:none"]
    if None in images:
        pytest.skip("needs the docker daemon and the embedded tasks' images (make images)")
    rows = [
        dataclasses.replace(
            task,
            metadata={
                **task.metadata,
                "image": image,
                "eval_script": swebench_eval_script(task),
                "log_parser": "parse_log_pytest",
            },
        )
        for task, image in zip(tasks, images, strict=True)
    ]
    assert unavailable_reason(rows[:2]) is None
    assert "not present locally, e.g. oec-embedded/no-such-image:none" in unavailable_reason(rows)
    patches = [rows[0].patch, SMITH["patch"], rows[2].patch]
    trajectories = [rollout(task.instance_id, False) for task in rows]
    for trajectory, patch in zip(trajectories, patches, strict=True):
        trajectory.patch = patch
    predictions = write_predictions(trajectories, "org/student", tmp_path)
    outcome = grade_with_harness(rows, predictions, "org/student", "test", 2, 300)
    assert (outcome.resolved, outcome.unresolved, outcome.infra_error) == ([ids[0]], [ids[1]], [ids[2]])


@pytest.mark.slow
def test_validate_applies_the_bug_patch_first(mirror: tuple[Path, str, str]) -> None:
    task = smith_task(mirror)
    assert validate_task(task, timeout=120).problems == []
    broken = smith_task(mirror, patch=SMITH["patch"])
    assert validate_task(broken, timeout=120).problems[0].startswith("bug patch does not apply")
