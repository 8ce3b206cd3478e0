"""Embedded tasks: spec checks, deterministic builds, materialised snapshots and validation.

Builds use a tiny throwaway project (real git, real pytest) so they stay fast; validation runs on
two committed ``ledger`` tasks.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from oec.tasks import load_tasks
from oec.tasks.embedded import SPECS_DIR, TASKS_FILE, MaterializeError, materialize
from oec.tasks.embedded.build import BuildError, build_specs, build_task, load_specs, write_tasks
from oec.tasks.embedded.spec import SpecError, load_spec, locate
from oec.tasks.gitrepo import git, head
from oec.tasks.validate import validate_tasks

OPS = '''\
"""Arithmetic helpers."""


def clamp(value, low, high):
    """Limit value to [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def mean(values):
    """Average of a non-empty list."""
    return sum(values) / len(values)
'''

VISIBLE_TESTS = """\
from calc.ops import clamp, mean


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5


def test_mean():
    assert mean([1, 2, 3]) == 2
"""

SPEC = """\
project: calc
repo: oec-embedded/calc
tasks:
  - id: "001"
    split: train
    problem_statement: clamp(11, 0, 10) returns 11.
    bug:
      - file: calc/ops.py
        fixed: |
          if value > high:
              return high
        buggy: |
          if value > high + 1:
              return high
    tests:
      - file: tests/test_ops.py
        append: |

          def test_clamp_above():
              assert clamp(11, 0, 10) == 10
    FAIL_TO_PASS:
      - tests/test_ops.py::test_clamp_above
  - id: "002"
    split: test
    problem_statement: mean([1, 2]) is wrong.
    bug:
      - file: calc/ops.py
        fixed: |
          return sum(values) / len(values)
        buggy: |
          return sum(values) // len(values)
    tests:
      - file: tests/test_more.py
        append: |
          from calc.ops import mean


          def test_mean_fraction():
              assert mean([1, 2]) == 1.5
    FAIL_TO_PASS:
      - tests/test_more.py::test_mean_fraction
"""


def write_project(root: Path, spec: str = SPEC) -> tuple[Path, Path]:
    projects, specs = root / "projects", root / "specs"
    package = projects / "calc" / "calc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""calc."""\n')
    (package / "ops.py").write_text(OPS)
    (projects / "calc" / "tests").mkdir()
    (projects / "calc" / "tests" / "test_ops.py").write_text(VISIBLE_TESTS)
    specs.mkdir()
    (specs / "calc.yaml").write_text(spec)
    return projects, specs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    projects, specs = write_project(root)
    results = build_specs(load_specs(specs, projects), workers=2)
    assert [r.error for r in results] == [None, None]
    return projects, specs, [r.task for r in results]


def test_build_computes_patches_and_test_lists(built):
    _, _, (first, second) = built
    assert first.instance_id == "oec-embedded__calc-001"
    assert first.FAIL_TO_PASS == ["tests/test_ops.py::test_clamp_above"]
    assert first.PASS_TO_PASS == ["tests/test_ops.py::test_clamp_inside", "tests/test_ops.py::test_mean"]
    # The indented two-line snippet was matched and re-indented.
    assert "-    if value > high + 1:\n+    if value > high:" in first.patch
    assert "tests/test_ops.py" in first.test_patch and "calc/ops.py" not in first.test_patch
    assert second.split == "test" and "new file mode" in second.test_patch
    assert second.metadata == {"project": "calc", "spec": "specs/calc.yaml"}


@pytest.mark.slow
def test_build_is_deterministic(built, tmp_path):
    projects, specs, tasks = built
    spec = load_specs(specs, projects)[0]
    again = build_task(spec, spec.tasks[0], tmp_path / "work")
    assert again == tasks[0]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_tasks(first, tasks)
    write_tasks(second, [tasks[1], again])
    assert first.read_bytes() == second.read_bytes()
    assert [json.loads(line)["instance_id"] for line in first.read_text().splitlines()] == [
        "oec-embedded__calc-001",
        "oec-embedded__calc-002",
    ]


def test_materialize_reproduces_base_commit_and_caches(built, tmp_path):
    projects, _, (task, _) = built
    repo = materialize(task, tmp_path, projects)
    assert repo == tmp_path / task.instance_id and head(repo) == task.base_commit
    assert "value > high + 1" in (repo / "calc" / "ops.py").read_text()
    assert "test_clamp_above" not in (repo / "tests" / "test_ops.py").read_text()
    assert git(repo, "status", "--porcelain") == ""
    marker = repo / ".git" / "cached-marker"
    marker.write_text("")
    assert materialize(task, tmp_path, projects) == repo and marker.exists()

    (repo / "calc" / "ops.py").write_text("stale\n")
    git(repo, "commit", "-qam", "stale")
    assert head(materialize(task, tmp_path, projects)) == task.base_commit


def test_materialize_is_safe_under_concurrent_callers(built, tmp_path):
    projects, _, (_, task) = built
    paths, errors = [], []

    def call() -> None:
        try:
            paths.append(materialize(task, tmp_path, projects))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(paths)) == 1
    assert head(paths[0]) == task.base_commit
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [task.instance_id]


def test_materialize_detects_source_drift(built, tmp_path):
    projects, _, (task, _) = built
    drifted = dataclasses.replace(task, base_commit="0" * 40)
    with pytest.raises(MaterializeError, match=r"oec-embedded__calc-001.*oec\.tasks\.embedded build"):
        materialize(drifted, tmp_path, projects)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('id: "001"', "id: 001", "must be a quoted string"),
        ("split: test", "split: dev", "'split' must be one of"),
        ("return sum(values) / len(values)", "return 42", "snippet not found"),
        ("- file: calc/ops.py", "- file: tests/test_ops.py", "is a test file"),
        ('  - id: "002"', '  - id: "001"', "appears twice"),
        ("    FAIL_TO_PASS:\n      - tests/test_more.py::test_mean_fraction\n", "", "missing key"),
    ],
)
def test_spec_errors_name_the_file_and_task(tmp_path, old, new, message):
    assert old in SPEC
    projects, specs = write_project(tmp_path, SPEC.replace(old, new, 1))
    with pytest.raises(SpecError, match=message) as info:
        load_spec(specs / "calc.yaml", projects)
    assert "calc.yaml" in str(info.value)


def test_locate_rejects_ambiguous_snippets():
    with pytest.raises(SpecError, match="occurs 2 times"):
        locate("x = 1\nx = 1\n", "x = 1\n", "spec: task '001'")
    source = "def f():\n    a\n    b\n"
    assert locate(source, "a\nb\n", "w") == (len("def f():\n"), len(source), "    ")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("return sum(values) // len(values)", "return sum(values) / len(values) ", "FAIL_TO_PASS is empty"),
        ("assert mean([1, 2]) == 1.5", "assert mean([1, 2]) == 7", "fail on the clean source"),
    ],
)
def test_build_errors_name_the_task(tmp_path, old, new, message):
    projects, specs = write_project(tmp_path, SPEC.replace(old, new, 1))
    spec = load_spec(specs / "calc.yaml", projects)
    with pytest.raises(BuildError, match=message) as info:
        build_task(spec, spec.tasks[1], tmp_path / "work")
    assert "calc.yaml: task '002' (oec-embedded__calc-002)" in str(info.value)


def test_committed_tasks_cover_every_spec():
    specs = {spec.project: spec for spec in load_specs(SPECS_DIR, SPECS_DIR.parent / "projects")}
    rows = [json.loads(line) for line in TASKS_FILE.read_text().splitlines()]
    expected = {spec.instance_id(task) for spec in specs.values() for task in spec.tasks}
    assert {row["instance_id"] for row in rows} == expected
    assert [row["instance_id"] for row in rows] == sorted(row["instance_id"] for row in rows)


@pytest.mark.slow
def test_validate_ledger_tasks(tmp_path):
    ids = ["oec-embedded__ledger-004", "oec-embedded__ledger-011"]
    loaded = load_tasks("embedded", instance_ids=ids, cache_dir=str(tmp_path))
    assert loaded.errors == [] and [t.instance_id for t in loaded.tasks] == ids
    broken = dataclasses.replace(loaded.tasks[0], instance_id="broken", patch="")
    results = validate_tasks([*loaded.tasks, broken], workers=2)
    assert [(r.instance_id, r.ok) for r in results] == [(ids[0], True), (ids[1], True), ("broken", False)]
    assert "gold patch does not resolve" in results[2].problems[0]
