"""Task loading: config validation, row mapping (SWE-bench / SWE-Gym / SWE-smith), per-row errors,
JSONL and parquet files, filters, the Hydra group and the validate CLI."""

from __future__ import annotations

import datetime
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir

from oec.config import ConfigError, parse
from oec.tasks import EmbeddedTasks, FileTasks, TasksConfig, load_tasks, task_from_row
from oec.tasks.__main__ import CONF_DIR, main
from oec.types import SchemaError

SWEBENCH_ROW = {
    "repo": "astropy/astropy",
    "instance_id": "astropy__astropy-12907",
    "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
    "patch": "diff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py\n",
    "test_patch": "diff --git a/astropy/modeling/tests/test_separable.py b/astropy/modeling/tests/test_separable.py\n",  # noqa: E501
    "problem_statement": "`separability_matrix` does not compute separability correctly for nested models",
    "hints_text": "",
    "created_at": "2022-03-03T15:14:54Z",
    "version": "4.3",
    "FAIL_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]',
    "PASS_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_coord_matrix"]',
    "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
}

SWESMITH_ROW = {
    "instance_id": "getmoto__moto.694ce1f4.pr_7331",
    "repo": "swesmith/getmoto__moto.694ce1f4",
    "patch": "diff --git a/moto/core/responses.py b/moto/core/responses.py\n",
    "FAIL_TO_PASS": ["tests/test_cognitoidp/test_cognitoidp.py::test_forgot_password"],
    "PASS_TO_PASS": ["tests/test_cognitoidp/test_cognitoidp.py::test_create_user_pool"],
    "image_name": "swebench/swesmith.x86_64.getmoto_1776_moto.694ce1f4",
    "problem_statement": "Cognito forgot_password fails",
}


def row(instance_id: str, **changes) -> dict:
    return {**SWEBENCH_ROW, "instance_id": instance_id, **changes}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_swebench_row_mapping():
    task = task_from_row(SWEBENCH_ROW, default_split="test")
    tests = "astropy/modeling/tests/test_separable.py"
    assert [f"{tests}::test_separable[compound_model6-result6]"] == task.FAIL_TO_PASS
    assert [f"{tests}::test_coord_matrix"] == task.PASS_TO_PASS
    assert task.version == "4.3" and task.split == "test" and task.snapshot is None
    assert task.metadata == {
        "hints_text": "",
        "created_at": "2022-03-03T15:14:54Z",
        "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
        "row_format": "swe-bench",
        "grading": "swebench",
        "workdir": "/testbed",
    }
    assert task_from_row({**SWEBENCH_ROW, "split": "train"}, default_split="test").split == "train"


def test_swesmith_row_mapping():
    task = task_from_row(SWESMITH_ROW)
    assert task.base_commit == "HEAD"  # the clean repository of the image, where the bug patch goes
    assert task.test_patch == ""
    assert task.metadata["image_name"].startswith("swebench/swesmith")
    assert task.metadata["row_format"] == "swe-smith"
    pinned = task_from_row({**SWESMITH_ROW, "base_commit": "abc123"})
    assert (pinned.base_commit, pinned.metadata["instance_commit"]) == ("HEAD", "abc123")


def test_repos_dir_sets_snapshot(tmp_path):
    (tmp_path / "astropy__astropy" / ".git").mkdir(parents=True)
    (tmp_path / "getmoto__moto.694ce1f4" / ".git").mkdir(parents=True)
    swebench = task_from_row(SWEBENCH_ROW, repos_dir=tmp_path)
    swesmith = task_from_row(SWESMITH_ROW, repos_dir=tmp_path)
    assert swebench.snapshot == str(tmp_path / "astropy__astropy")
    assert swesmith.snapshot == str(tmp_path / "getmoto__moto.694ce1f4")
    assert task_from_row(row("x", repo="other/repo"), repos_dir=tmp_path).snapshot is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({k: v for k, v in SWEBENCH_ROW.items() if k != "repo"}, "missing field 'repo'"),
        ({**SWEBENCH_ROW, "FAIL_TO_PASS": "[]"}, "'FAIL_TO_PASS' is empty"),
        ({**SWEBENCH_ROW, "PASS_TO_PASS": "not json"}, "'PASS_TO_PASS' is not a JSON list"),
        ([1, 2], "row must be an object"),
    ],
)
def test_bad_rows_raise_schema_errors(bad, message):
    with pytest.raises(SchemaError, match=message):
        task_from_row(bad)


def test_jsonl_errors_are_reported_per_row_and_skipped(tmp_path):
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            row("a__a-1"),
            "{not json",
            {k: v for k, v in row("b__b-2").items() if k != "base_commit"},
            "",
            row("a__a-1"),
            '"just a string"',
            row("c__c-3"),
        ],
    )
    result = load_tasks("file", path=str(path))
    assert [t.instance_id for t in result.tasks] == ["a__a-1", "c__c-3"]
    messages = [str(e) for e in result.errors]
    assert messages[0].startswith("row 2: invalid JSON")
    assert messages[1] == "row 3, instance 'b__b-2': task 'b__b-2': missing field 'base_commit'"
    assert messages[2] == "row 5, instance 'a__a-1': duplicate instance_id (first row kept)"
    assert messages[3].startswith("row 6: row must be an object")
    assert len(messages) == 4


def test_parquet_round_trip_matches_jsonl(tmp_path):
    rows = [row("a__a-1", split=None), row("b__b-2", split="train"), row("c__c-3", split=None)]
    for r in rows:
        r["FAIL_TO_PASS"] = json.loads(r["FAIL_TO_PASS"])
        r["PASS_TO_PASS"] = json.loads(r["PASS_TO_PASS"])
        r["created_at"] = datetime.datetime(2022, 3, 3, 15, 14, 54)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "rows.parquet")
    from_parquet = load_tasks("file", path=str(tmp_path / "rows.parquet"), split="test")
    for r in rows:
        r["created_at"] = r["created_at"].isoformat()
    from_jsonl = load_tasks("file", path=str(write_jsonl(tmp_path / "rows.jsonl", rows)), split="test")
    assert from_parquet.errors == [] and from_jsonl.errors == []
    assert from_parquet.tasks == from_jsonl.tasks
    assert [t.instance_id for t in from_parquet.tasks] == ["a__a-1", "c__c-3"]
    assert from_parquet.tasks[0].metadata["created_at"] == "2022-03-03T15:14:54"


def test_filters(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [row(f"r__r-{i}") for i in range(5)])
    ids = ["r__r-3", "r__r-1", "missing__x-0"]
    result = load_tasks("file", path=str(path), instance_ids=ids)
    assert [t.instance_id for t in result.tasks] == ["r__r-1", "r__r-3"]
    assert [str(e) for e in result.errors] == ["instance 'missing__x-0': requested instance id not found"]
    assert len(load_tasks("file", path=str(path), limit=2).tasks) == 2


def test_a_missing_or_unreadable_tasks_file_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=rf"^tasks\.path: tasks file not found: {re.escape(str(missing))}$"):
        load_tasks("file", path=str(missing))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ConfigError, match=r"^tasks\.path: .*dir\.jsonl is not a file$"):
        load_tasks("file", path=str(tmp_path / "dir.jsonl"))
    (tmp_path / "rows.parquet").write_text('{"not": "parquet"}\n')
    with pytest.raises(ConfigError, match=r"^tasks\.path: cannot read .*rows\.parquet as parquet: "):
        load_tasks("file", path=str(tmp_path / "rows.parquet"))


def test_a_line_that_is_not_utf8_is_a_row_error(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [row("a__a-1"), row("b__b-2")])
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b'{"instance_id": "\xff"}\n' + lines[1])
    result = load_tasks("file", path=str(path))
    assert [t.instance_id for t in result.tasks] == ["a__a-1", "b__b-2"]
    assert [(e.row, e.message.split(":")[0]) for e in result.errors] == [(2, "not UTF-8")]


def test_embedded_source_without_materialising():
    train = load_tasks("embedded", split="train", materialize_snapshots=False)
    test = load_tasks("embedded", split="test", materialize_snapshots=False)
    assert train.errors == [] and test.errors == []
    ledger = [t for t in train.tasks + test.tasks if t.repo == "oec-embedded/ledger"]
    assert len(ledger) >= 11 and {t.split for t in ledger} == {"train", "test"}
    assert all(t.snapshot is None and t.metadata["project"] == "ledger" for t in ledger)
    assert len(load_tasks("embedded", limit=3, materialize_snapshots=False).tasks) == 3


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"source": "hub"}, "tasks.source"),
        ({}, "tasks.source"),
        ({"source": "embedded", "split": "dev"}, "tasks.split"),
        ({"source": "embedded", "limit": 0}, "tasks.limit"),
        ({"source": "embedded", "limit": True}, "tasks.limit"),
        ({"source": "embedded", "instance_ids": "a__a-1"}, "tasks.instance_ids"),
        ({"source": "file"}, "tasks.path"),
        ({"source": "file", "path": "???"}, "tasks.path"),
        ({"source": "file", "path": "rows.csv"}, "tasks.format"),
        ({"source": "file", "path": "rows.jsonl", "format": "csv"}, "tasks.format"),
        ({"source": "embedded", "path": "rows.jsonl"}, "tasks.path"),
        ({"source": "embedded", "repos_dir": "/mirrors"}, "tasks.repos_dir"),
        ({"source": "file", "path": "rows.jsonl", "cache_dir": "/c"}, "tasks.cache_dir"),
    ],
)
def test_config_errors_name_the_key(fields, key):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: "):
        parse(TasksConfig, fields, "tasks")


def test_config_variants():
    config = parse(TasksConfig, {"source": "file", "path": "x.parquet", "instance_ids": ["a"]}, "tasks")
    assert isinstance(config, FileTasks)
    assert config.file_format == "parquet" and config.instance_ids == ("a",)
    assert isinstance(parse(TasksConfig, {"source": "embedded"}, "tasks"), EmbeddedTasks)
    with pytest.raises(ConfigError, match=r"^tasks\.splt: unknown key"):
        parse(TasksConfig, {"source": "embedded", "splt": "train"}, "tasks")
    with pytest.raises(ConfigError, match=r"^tasks\.repos_dir: belongs to source='file'"):
        parse(TasksConfig, {"source": "embedded", "repos_dir": "/m"}, "tasks")


@pytest.mark.parametrize("option", ["embedded", "file"])
def test_hydra_group_matches_the_dataclass(option):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        extra = ["tasks.path=rows.jsonl"] if option == "file" else []
        cfg = compose(overrides=[f"+tasks={option}", *extra])
    config = parse(TasksConfig, cfg.tasks, "tasks")
    assert config.source == option


@pytest.fixture
def config_dir(tmp_path):
    """A primary config holding only the tasks group, so the CLI test does not depend on other groups."""
    shutil.copytree(CONF_DIR / "tasks", tmp_path / "tasks")
    (tmp_path / "config.yaml").write_text("defaults:\n  - tasks: embedded\n  - _self_\n")
    return tmp_path


@pytest.mark.slow
def test_validate_cli(config_dir, tmp_path, capsys):
    overrides = ["tasks=embedded", "tasks.split=null", "tasks.instance_ids=[oec-embedded__ledger-008]"]
    overrides.append(f"tasks.cache_dir={tmp_path / 'cache'}")
    code = main(["validate", *overrides, "--config-dir", str(config_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1/1 tasks valid" in out
    assert main(["validate", "tasks=file", "--config-dir", str(config_dir)]) == 2
    assert "tasks.path" in capsys.readouterr().out


def test_validate_cli_reports_a_missing_tasks_file_as_a_config_error(config_dir, tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert main(["validate", "tasks=file", f"tasks.path={missing}", "--config-dir", str(config_dir)]) == 2
    out = "".join(capsys.readouterr().out.split())  # rich wraps long lines, even inside a path
    assert "".join(f"config error: tasks.path: tasks file not found: {missing}".split()) in out
