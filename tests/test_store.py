"""Trajectory store: append-only shards, manifest, resume, torn tails, config checks, SIGKILL safety."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from oec.data.render import render
from oec.store import (
    MANIFEST,
    QUARANTINE,
    SHARDS,
    StoreError,
    TaskSource,
    TrajectoryStore,
    check_store,
    config_differences,
    config_hash,
    load_manifest,
    main,
    read_trajectories,
)
from oec.types import SCHEMA_VERSION, Message, SchemaError, Trajectory, Verdict

CONFIG = {"seed": 0, "switch": {"schedule": "uniform", "max_step": 30}, "collect": {"num_workers": 1}}


def make(
    instance: str, sample: int = 0, *, resolved: bool = True, reasons: tuple[str, ...] = ()
) -> Trajectory:
    return Trajectory(
        instance_id=instance,
        sample_index=sample,
        mode="oec",
        seed=sample,
        messages=[
            Message("system", "sys", "system", -1),
            Message("user", "issue ünïcode\nline", "user", -1),
            Message("assistant", "<function=submit>\n</function>", "expert", 0),
        ],
        models={"expert": "scripted"},
        exit_status="submitted",
        patch="diff --git a/x b/x\n",
        switch_step=0,
        handover_turn=0,
        verdict=Verdict(resolved=resolved),
        filter_reasons=list(reasons),
        accepted=resolved and not reasons,
    )


def shard_files(root: Path) -> list[Path]:
    return sorted((root / SHARDS).glob("shard-*.jsonl"))


def test_append_read_and_manifest(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("a"))
        store.append(make("b", resolved=False, reasons=("unresolved",)))
        store.append(make("a", 1, reasons=("repetition:ngram",)))
        assert store.done_keys() == {("a", 0), ("b", 0), ("a", 1)}
        with pytest.raises(StoreError, match=r"\('a', 0\) is already stored"):
            store.append(make("a"))
    assert [t.key for t in store.read()] == [("a", 0), ("b", 0), ("a", 1)]
    assert [t.key for t in read_trajectories(root, accepted_only=True)] == [("a", 0)]
    assert next(iter(store)).messages[1].content == "issue ünïcode\nline"
    manifest = load_manifest(root)
    assert manifest["config"] == CONFIG
    assert "git_commit" in manifest["code_version"] or "package_version" in manifest["code_version"]
    assert manifest["counts"] == {
        "rollouts": 3,
        "resolved": 2,
        "accepted": 1,
        "by_mode": {"oec": 3},
        "by_exit_status": {"submitted": 3},
        "by_filter_reason": {"unresolved": 1, "repetition:ngram": 1},
    }
    assert len(shard_files(root)) == 1
    assert not list(root.glob(f"{MANIFEST}.tmp*"))


def test_resume_skips_done_keys_in_a_new_shard(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("a"))
    resumed_config = {**CONFIG, "collect": {"num_workers": 8}}  # a throughput knob, not compared
    with TrajectoryStore.open(root, resumed_config) as store:
        assert store.done_keys() == {("a", 0)}
        with pytest.raises(StoreError, match="already stored"):
            store.append(make("a"))
        store.append(make("b"))
    assert len(shard_files(root)) == 2
    assert [t.key for t in read_trajectories(root)] == [("a", 0), ("b", 0)]
    assert load_manifest(root)["counts"]["rollouts"] == 2


def test_opening_without_appending_creates_no_shard(tmp_path: Path) -> None:
    TrajectoryStore.open(tmp_path / "s", CONFIG).close()
    assert shard_files(tmp_path / "s") == []
    assert list(read_trajectories(tmp_path / "s")) == []


def test_config_change_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    TrajectoryStore.open(root, CONFIG).close()
    changed = {**CONFIG, "seed": 1, "switch": {"schedule": "uniform"}}
    with pytest.raises(StoreError, match=r"seed: 0 -> 1; switch\.max_step: 30 -> <absent>") as info:
        TrajectoryStore.open(root, changed)
    assert str(root) in str(info.value) and "allow_config_change" in str(info.value)
    TrajectoryStore.open(root, changed, allow_config_change=True).close()
    manifest = load_manifest(root)
    assert manifest["config"] == CONFIG
    assert manifest["config_changes"][0]["differences"] == ["seed: 0 -> 1", "switch.max_step: 30 -> <absent>"]


def test_config_differences_ignore_throughput_keys() -> None:
    old = {"collect": {"num_workers": 1, "samples_per_task": 1, "store": "x"}}
    new = {"collect": {"num_workers": 4, "samples_per_task": 3, "store": "y"}}
    assert config_differences(old, new) == ['collect.store: "x" -> "y"']


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=re.escape(f"no trajectory store at {tmp_path / 'nope'}")):
        TrajectoryStore.open(tmp_path / "nope", CONFIG, create=False)
    with pytest.raises(StoreError, match=r"manifest\.json is missing"):
        list(read_trajectories(tmp_path / "nope"))


def test_torn_tail_is_ignored_then_cut_by_a_writer(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("a"))
        store.append(make("b"))
    shard = shard_files(root)[0]
    complete = shard.stat().st_size
    line = json.dumps(make("c").to_dict())
    with shard.open("a") as f:
        f.write(line[: len(line) // 2])
    assert [t.key for t in read_trajectories(root)] == [("a", 0), ("b", 0)]
    assert check_store(root).torn_shards == [shard.name]
    with TrajectoryStore.open(root, CONFIG) as store:
        assert shard.stat().st_size == complete
        assert store.done_keys() == {("a", 0), ("b", 0)}
        store.append(make("c"))
    assert [t.key for t in read_trajectories(root)] == [("a", 0), ("b", 0), ("c", 0)]
    assert check_store(root).torn_shards == []


def test_corrupt_middle_line_names_shard_and_line(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        for name in "abc":
            store.append(make(name))
    shard = shard_files(root)[0]
    lines = shard.read_text().splitlines(keepends=True)
    lines[1] = '{"instance_id": "b", "broken\n'
    shard.write_text("".join(lines))
    with pytest.raises(StoreError, match=rf"{shard.name}: line 2 is not valid JSON.*check --repair"):
        list(read_trajectories(root))
    with pytest.raises(StoreError, match=rf"{shard.name}: line 2"):
        TrajectoryStore.open(root, CONFIG)
    record = make("b").to_dict()
    del record["mode"]
    lines[1] = json.dumps(record) + "\n"
    shard.write_text("".join(lines))
    with pytest.raises(StoreError, match=rf"{shard.name}: line 2: trajectory 'b': missing field 'mode'"):
        list(read_trajectories(root))


def test_duplicates_across_shards_keep_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("a"))
    first = shard_files(root)[0]
    stray = first.with_name("shard-99999999T000000000000-1-ffff.jsonl")
    stray.write_text(json.dumps(make("a", resolved=False).to_dict()) + "\n")
    assert [t.resolved for t in read_trajectories(root)] == [True]
    assert check_store(root).duplicates == {"a#0": [f"{first.name}:1", f"{stray.name}:1"]}
    assert main(["check", str(root)]) == 1
    assert json.loads(capsys.readouterr().out)["duplicates"] == {
        "a#0": [f"{first.name}:1", f"{stray.name}:1"]
    }


def test_appends_from_several_threads(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        threads = [
            threading.Thread(target=lambda w=w: [store.append(make(f"t{w}", i)) for i in range(10)])
            for w in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(list(read_trajectories(root))) == 40
    assert load_manifest(root)["counts"]["rollouts"] == 40
    assert check_store(root).duplicates == {}


# The child appends real trajectories with the real store, but the write of its last record is
# split: half the line reaches the disk, then the child waits to be killed inside that write.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import oec.store as store
    from test_store import CONFIG, make

    written = store._write_all

    def torn_write(fd, data):
        written(fd, data[: len(data) // 2])
        os.fsync(fd)
        print("inside-write", flush=True)
        time.sleep(60)

    s = store.TrajectoryStore.open(sys.argv[1], CONFIG)
    for i in range(int(sys.argv[2])):
        if i == int(sys.argv[2]) - 1:
            store._write_all = torn_write
        s.append(make("task", i))
        print("appended", i, flush=True)
    """
)


def test_sigkill_mid_write_loses_only_the_record_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "store"
    total = 5
    repo = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(repo / "tests")), str(root), str(total)],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while not lines or lines[-1] != "inside-write":
            assert time.monotonic() < deadline, lines
            lines.append(child.stdout.readline().strip())
        assert lines[:-1] == [f"appended {i}" for i in range(total - 1)]
        shard = shard_files(root)[0]
        torn_size = shard.stat().st_size

        # While the writer lives, a second writer neither cuts its line in progress nor blocks.
        with TrajectoryStore.open(root, CONFIG) as other:
            assert other.done_keys() == {("task", i) for i in range(total - 1)}
        assert shard.stat().st_size == torn_size

        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    assert child.returncode == -signal.SIGKILL
    assert json.loads((root / MANIFEST).read_text())["counts"]["rollouts"] == total - 1
    assert [t.sample_index for t in read_trajectories(root)] == list(range(total - 1))

    with TrajectoryStore.open(root, CONFIG) as store:
        assert shard.read_bytes().endswith(b"\n") and shard.stat().st_size < torn_size
        done = store.done_keys()
        assert done == {("task", i) for i in range(total - 1)}
        for i in range(total + 2):
            if ("task", i) not in done:
                store.append(make("task", i))
    assert [t.sample_index for t in read_trajectories(root)] == list(range(total + 2))
    check = check_store(root)
    assert check.records == total + 2 and check.duplicates == {} and check.torn_shards == []
    assert load_manifest(root)["counts"]["rollouts"] == total + 2


def _v1_message(role: str, content: str, author: str, turn: int) -> dict:
    return {"role": role, "content": content, "author": author, "turn": turn}


CALL = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
V1_RECORD = {
    "instance_id": "old-1",
    "sample_index": 0,
    "mode": "oec",
    "seed": 3,
    "messages": [
        _v1_message("system", "sys", "system", -1),
        _v1_message("user", "issue", "user", -1),
        _v1_message("assistant", "I will think first.", "student", 0),
        _v1_message("user", "FORMAT ERROR: Your reply contains no function call.\nReply with ...", "env", 0),
        _v1_message("assistant", f"Look.\n\n{CALL}", "student", 1),
        _v1_message("user", "OBSERVATION:\nsetup.py\n", "env", 1),
        _v1_message("assistant", "Now.\n\n<function=frob>\n</function>", "expert", 2),
        _v1_message("user", "FORMAT ERROR: Unknown tool 'frob'.\nReply with ...", "env", 2),
        _v1_message("assistant", "Done.\n\n<function=submit>\n</function>", "expert", 3),
    ],
    "models": {"student": "tiny-qwen2", "expert": "oracle"},
    "exit_status": "submitted",
    "patch": "diff --git a/x b/x\n",
    "switch_step": 2,
    "handover_turn": 2,
    "verdict": {"resolved": True, "tests_status": {}, "error": None, "log": None},
    "filter_reasons": [],
    "accepted": True,
    "split": "train",
    "timings": {"rollout_s": 1.5},
    "token_counts": {"student_prompt": 10},
    "schema_version": 1,
}
"""A trajectory as schema version 1 wrote it: environment messages have no ``kind``."""


def test_a_version_1_store_loads_checks_and_renders(tmp_path: Path, tokenizer) -> None:
    root = tmp_path / "v1"
    (root / SHARDS).mkdir(parents=True)
    shard = root / SHARDS / "shard-20250101T000000000000-1-abcd.jsonl"
    shard.write_text(json.dumps(V1_RECORD) + "\n")
    counts = {
        "rollouts": 1,
        "resolved": 1,
        "accepted": 1,
        "by_mode": {"oec": 1},
        "by_exit_status": {"submitted": 1},
        "by_filter_reason": {},
    }
    manifest = {
        "format": "oec-trajectory-store",
        "format_version": 1,
        "created": "2025-01-01T00:00:00+00:00",
        "updated": "2025-01-01T00:00:00+00:00",
        "config": CONFIG,
        "code_version": {"git_commit": "0" * 40, "dirty": False},
        "config_changes": [],
        "counts": counts,
        "shards": {shard.name: {"created": "2025-01-01T00:00:00+00:00", "counts": counts}},
    }
    (root / MANIFEST).write_text(json.dumps(manifest))

    (trajectory,) = read_trajectories(root)
    assert trajectory.schema_version == 1, "the record keeps the version it was written with"
    assert [m.kind for m in trajectory.messages if m.author == "env"] == [
        "format_error",
        "observation",
        "format_error",  # version 1 did not tell a rejected call from an unparseable reply
    ]
    assert all(m.kind is None for m in trajectory.messages if m.author != "env")
    assert main(["check", str(root)]) == 0
    example = render(trajectory, tokenizer, mask="expert")
    assert example.num_supervised > 0 and len(example.spans) == 4
    with TrajectoryStore.open(root, CONFIG) as store:
        assert store.done_keys() == {("old-1", 0)}
        store.append(make("new"))
    assert [t.schema_version for t in read_trajectories(root)] == [1, SCHEMA_VERSION]


def test_message_kind_is_required_exactly_on_env_messages() -> None:
    assert Message("user", "OBSERVATION:\n", "env", 0, "observation").kind == "observation"
    with pytest.raises(SchemaError, match="field 'kind' of an env message"):
        Message("user", "OBSERVATION:\n", "env", 0)
    with pytest.raises(SchemaError, match="field 'kind' of an env message"):
        Message("user", "x", "env", 0, "oops")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="field 'kind' is for env messages only"):
        Message("assistant", "x", "student", 0, "observation")
    record = {**V1_RECORD, "schema_version": SCHEMA_VERSION}
    with pytest.raises(SchemaError, match="field 'kind' of an env message"):
        Trajectory.from_dict(record)


def test_repair_keeps_every_valid_record_and_quarantines_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        for name in "abcd":
            store.append(make(name))
    shard = shard_files(root)[0]
    lines = shard.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"instance_id": "b", "broken\xff\n'
    stray = shard.with_name("shard-99999999T000000000000-1-ffff.jsonl")
    stray.write_text(json.dumps(make("a", resolved=False).to_dict()) + "\n" + '{"torn')
    shard.write_bytes(b"".join(lines))
    assert main(["check", str(root)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert list(report["corrupt_lines"]) == [f"{shard.name}:2"] and list(report["duplicates"]) == ["a#0"]

    assert main(["check", "--repair", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "kept 3 records, moved 3 lines" in err
    assert [t.key for t in read_trajectories(root)] == [("a", 0), ("c", 0), ("d", 0)]
    (folder,) = (root / QUARANTINE).iterdir()
    assert (folder / f"{shard.name}:2").read_bytes() == lines[1]
    assert (folder / f"{stray.name}:2").read_bytes() == b'{"torn'
    reasons = json.loads((folder / "reasons.json").read_text())
    assert reasons[f"{stray.name}:1"] == f"duplicate of {shard.name}:1"
    assert "not valid JSON" in reasons[f"{shard.name}:2"] and "torn tail" in reasons[f"{stray.name}:2"]
    assert load_manifest(root)["counts"]["rollouts"] == 3
    assert json.loads(out)["records"] == 3
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("b"))
    assert main(["check", "--repair", str(root)]) == 0
    assert "nothing to repair (4 records)" in capsys.readouterr().err


def test_records_carry_the_hash_of_their_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as store:
        store.append(make("a"))
    changed = {**CONFIG, "seed": 1}
    with TrajectoryStore.open(root, changed, allow_config_change=True) as store:
        store.append(make("b"))
    records = [json.loads(line) for shard in shard_files(root) for line in shard.read_text().splitlines()]
    assert [r["config_hash"] for r in records] == [config_hash(CONFIG), config_hash(changed)]
    manifest = load_manifest(root)
    assert manifest["config_hash"] == config_hash(CONFIG)
    assert manifest["config_changes"][0]["config_hash"] == config_hash(changed)
    assert [t.key for t in read_trajectories(root)] == [("a", 0), ("b", 0)]
    assert main(["check", str(root)]) == 0
    by_hash = json.loads(capsys.readouterr().out)["records_by_config_hash"]
    assert by_hash == {config_hash(CONFIG): 1, config_hash(changed): 1}


def test_a_changed_task_source_is_refused_unless_allowed(tmp_path: Path) -> None:
    root, tasks = tmp_path / "store", tmp_path / "tasks.jsonl"
    tasks.write_text('{"instance_id": "a"}\n')
    TrajectoryStore.open(root, CONFIG, task_source=TaskSource.of_file(tasks)).close()
    TrajectoryStore.open(root, CONFIG, task_source=TaskSource.of_file(tasks)).close()
    tasks.write_text('{"instance_id": "a", "edited": true}\n')
    edited = TaskSource.of_file(tasks)
    with pytest.raises(StoreError, match=rf"task source changed: {tasks} has sha256 .*allow_task_change"):
        TrajectoryStore.open(root, CONFIG, task_source=edited)
    with TrajectoryStore.open(root, CONFIG, task_source=edited, allow_task_change=True) as store:
        store.append(make("a"))
    manifest = load_manifest(root)
    assert manifest["task_source_changes"][0]["sha256"] == edited.sha256
    (line,) = shard_files(root)[0].read_text().splitlines()
    assert json.loads(line)["task_source_hash"] == edited.sha256


def test_claims_exclude_other_writers_and_stored_pairs(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with TrajectoryStore.open(root, CONFIG) as first, TrajectoryStore.open(root, CONFIG) as second:
        assert first.claim(("a", 0))
        assert not first.claim(("a", 0)) and not second.claim(("a", 0))
        first.append(make("a"))
        assert not second.claim(("a", 0)), "stored by the other writer since it opened"
        with pytest.raises(StoreError, match="already stored"):
            second.append(make("a"))
        assert second.claim(("b", 0))
        second.release(("b", 0))
        assert first.claim(("b", 0))
    assert check_store(root).duplicates == {} and load_manifest(root)["counts"]["rollouts"] == 1


CLAIMER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from oec.store import TrajectoryStore
    from test_store import CONFIG

    store = TrajectoryStore.open(sys.argv[1], CONFIG)
    print(store.claim(("a", 0)), flush=True)
    time.sleep(60)
    """
)


def test_a_dead_claimers_claims_are_released(tmp_path: Path) -> None:
    root = tmp_path / "store"
    TrajectoryStore.open(root, CONFIG).close()
    repo = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER.format(tests=str(repo / "tests")), str(root)],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "True"
        with TrajectoryStore.open(root, CONFIG) as store:
            assert not store.claim(("a", 0))
            child.kill()
            child.wait(10)
            assert store.claim(("a", 0))
            store.append(make("a"))
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert list((root / "claims").iterdir()) == []
