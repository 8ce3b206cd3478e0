"""Sharded collection and ``python -m oec.store merge``: tasks split by a stable hash, one store per
shard from real oracle rollouts, merged; mismatched, overlapping and clashing shards refused."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from oec.collect import CollectConfig
from oec.config import ConfigError, parse
from oec.runner import load_rollout_config, run_into_store, store_config
from oec.runtime import StopRequest
from oec.shard import ShardConfig, shard_of
from oec.store import MANIFEST, StoreError, TaskSource, TrajectoryStore, check_store, main, merge_stores
from oec.store import read_records as read_store_records
from oec.tasks import load_from_config
from tests.test_store import make

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TASKS = 4


def test_the_shard_of_a_task_is_a_stable_hash_of_its_id() -> None:
    # SHA-256, not Python's salted hash(): pinned, the same on every machine, run and version.
    assert [shard_of(f"django__django-{i}", 4) for i in range(10000, 10008)] == [1, 1, 3, 3, 1, 3, 3, 1]
    ids = [f"repo__issue-{i}" for i in range(200)]
    shards = [ShardConfig(index, 4) for index in range(4)]
    assert sorted(i for s in shards for i in ids if s.holds(i)) == sorted(ids)  # each task in one shard
    assert min(sum(s.holds(i) for i in ids) for s in shards) > 30  # and spread over them
    assert ShardConfig(2, 8).store("out/stores/7b/oec/") == "out/stores/7b/oec.shard-2-of-8"
    with pytest.raises(ConfigError, match=r"collect\.shard\.index: 2 is not below count 2"):
        parse(ShardConfig, {"index": 2, "count": 2}, "collect.shard")


def shard_records(roots: list[Path]) -> dict[tuple[str, int], dict]:
    return {t.key: t.to_dict() for root in roots for t, _ in read_store_records(root)}


@pytest.fixture(scope="module")
def shard_stores(tmp_path_factory) -> tuple[list[Path], dict]:
    """Two shard stores of a demo BC collection (the oracle on four embedded tasks), collected the way
    ``oec.collect`` does: the shard's tasks, into ``<store>.shard-I-of-2``, the shard recorded."""
    base = tmp_path_factory.mktemp("collect")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["+exp=demo", "switch=always", f"tasks.limit={TASKS}", f"env.parent_dir={base}"],
        )
    config = load_rollout_config(cfg)
    loaded = load_from_config(config.tasks)
    roots = []
    for index in range(2):
        shard = ShardConfig(index, 2)
        root = shard.store(str(base / "oec"))
        part = dataclasses.replace(loaded, tasks=shard.select(loaded.tasks))
        recorded = store_config(cfg, config) | {"shard": shard.as_dict()}
        run_into_store(
            root, recorded, config, part, StopRequest(), samples_per_task=1, num_workers=2, grace_s=5
        )
        roots.append(Path(root))
    return roots, json.loads((roots[0] / MANIFEST).read_text())["config"]


def test_shard_stores_merge_into_one_store(shard_stores, tmp_path: Path, capsys) -> None:
    roots, _ = shard_stores
    assert [r.name for r in roots] == ["oec.shard-0-of-2", "oec.shard-1-of-2"]
    records = shard_records(roots)
    assert len(records) == TASKS
    out = tmp_path / "oec"
    assert main(["merge", str(out), *map(str, roots)]) == 0
    assert f"merged 2 stores into {out}: {TASKS} records" in capsys.readouterr().err
    assert shard_records([out]) == records
    check = check_store(out)
    assert check.clean and check.records == TASKS
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["counts"]["rollouts"] == TASKS and "shard" not in manifest["config"]
    sources = {m["config_hash"]: m["shard"] for m in manifest["merged_from"]}
    # Every record keeps the hash of the shard config that made it; the manifest maps it back.
    for _, provenance in read_store_records(out):
        assert provenance["config_hash"] in sources
    assert sorted(s["index"] for s in sources.values()) == [0, 1]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    # The merged store is a store like any other: an unsharded run of the same config resumes it.
    with TrajectoryStore.open(out, manifest["config"], create=False) as store:
        assert len(store.done_keys()) == TASKS
    assert main(["merge", str(out), *map(str, roots)]) == 2
    assert f"{out} exists" in capsys.readouterr().err


def test_a_partial_merge_warns_of_the_missing_shards(shard_stores, tmp_path: Path, capsys) -> None:
    roots, _ = shard_stores
    assert main(["merge", str(tmp_path / "half"), str(roots[1])]) == 0
    assert "warning: shards 0 of 2 are not in this merge" in capsys.readouterr().err


def store_with(root: Path, config: dict, *keys: tuple[str, int], like: Path | None = None) -> Path:
    """A store of ``config`` holding ``keys``, with the task source of the store at ``like``."""
    source = json.loads((like / MANIFEST).read_text())["task_source"] if like else None
    with TrajectoryStore.open(root, config, task_source=source and TaskSource(**source)) as store:
        for instance, sample in keys:
            store.append(make(instance, sample))
    return root


def test_mismatched_overlapping_and_clashing_shards_are_refused(shard_stores, tmp_path: Path) -> None:
    roots, config = shard_stores
    out = tmp_path / "out"
    shard1 = {"shard": {"index": 1, "count": 2}}
    no_source = store_with(tmp_path / "no-source", config | shard1, ("x", 0))
    with pytest.raises(StoreError, match=rf"{no_source}: its task source \(none recorded\) differs from"):
        merge_stores(out, [roots[0], no_source])
    other_seed = store_with(tmp_path / "seed1", config | {"seed": 1} | shard1, ("x", 0), like=roots[0])
    with pytest.raises(
        StoreError, match=rf"{other_seed}: its config differs from {roots[0]}'s: seed: 0 -> 1"
    ):
        merge_stores(out, [roots[0], other_seed])

    copy = tmp_path / "copy"
    shutil.copytree(roots[0], copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["config"]["shard"] = {"index": 1, "count": 2}
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=rf"{copy}: rollout .*#0 is also in {roots[0]} \(not merged"):
        merge_stores(out, [roots[0], copy])

    with pytest.raises(StoreError, match="merge: a store is named twice"):
        merge_stores(out, [roots[0], roots[0]])
    same_index = store_with(tmp_path / "same", config, ("z", 0), like=roots[0])
    with pytest.raises(StoreError, match=rf"{same_index}: shard.index 0 is also {roots[0]}'s \(not merged\)"):
        merge_stores(out, [roots[0], same_index])
    three = store_with(
        tmp_path / "three", config | {"shard": {"index": 1, "count": 3}}, ("y", 0), like=roots[0]
    )
    with pytest.raises(StoreError, match=rf"{three}: shard.count is 3, other stores are 2 shards"):
        merge_stores(out, [roots[0], three])
    # A shard a live writer holds is refused; a dead writer's torn tail is left out.
    live = store_with(tmp_path / "live", config | shard1, like=roots[0])
    with TrajectoryStore.open(live, config | shard1) as writer:
        writer.append(make("w", 0))
        with pytest.raises(StoreError, match=r"shard-.*\.jsonl: a live process is writing this shard"):
            merge_stores(out, [roots[0], live])
    [shard_file] = (live / "shards").glob("shard-*.jsonl")
    with shard_file.open("ab") as f:
        f.write(b'{"instance_id": "torn')
    merge = merge_stores(out, [roots[0], live])
    assert merge.records == {str(roots[0]): 2, str(live): 1} and check_store(out).torn_shards == []
    shutil.rmtree(out)
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


TEMPLATE = REPO / "launch" / "serve_vllm.sbatch"


def test_the_slurm_template_parses_and_runs_its_shard_against_its_server() -> None:
    subprocess.run(["bash", "-n", str(TEMPLATE)], check=True)
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", str(TEMPLATE)], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
    array = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_GPUS_ON_NODE": "4"}
    env = {**os.environ, **array, "SLURM_JOB_ID": "77", "DRY_RUN": "1", "PYTHON": sys.executable}
    argv = ["bash", str(TEMPLATE), "/ckpt/model", "+exp=demo", "switch=never"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    server, collect = (shlex.split(line) for line in done.stdout.splitlines())
    assert server[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    options = dict(zip(server[3::2], server[4::2], strict=False))
    assert options["--tensor-parallel-size"] == "4" and options["--port"] == "8003"
    assert options["--served-model-name"] == "/ckpt/model" == options["--model"]
    assert collect[:3] == [sys.executable, "-m", "oec.collect"]
    overrides = [o for o in collect[3:] if not o.startswith("hydra.")]
    assert f"student.base_url=http://{socket.gethostname()}:8003/v1" in overrides
    if not (CONF / "policy" / "openai.yaml").exists():  # the openai backend's config: its own branch
        overrides = [o for o in overrides if not o.startswith(("policy@student", "student."))]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert parse(CollectConfig, cfg.collect, "collect").shard == ShardConfig(3, 8)
    if "policy@student=openai" in overrides:
        assert cfg.student.backend == "openai" and cfg.student.model == "/ckpt/model"
        assert cfg.student.base_url.endswith(":8003/v1") and cfg.student.api_key_env == "VLLM_API_KEY"
    usage = subprocess.run(["bash", str(TEMPLATE)], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: sbatch" in usage.stderr


@pytest.mark.slow
def test_sharded_collect_processes_merge_to_the_unsharded_collection(tmp_path: Path) -> None:
    """The real entry points: ``python -m oec.collect collect.shard=...`` twice, ``python -m oec.store
    merge``, and the merged store holds what one unsharded collection stores."""

    def collect(store: Path, *overrides: str) -> None:
        argv = [sys.executable, "-m", "oec.collect", "+exp=demo", "switch=always", f"tasks.limit={TASKS}"]
        argv += [f"collect.store={store}", f"env.parent_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
        done = subprocess.run([*argv, *overrides], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    collect(tmp_path / "whole")
    for index in range(2):
        collect(tmp_path / "oec", f"collect.shard.index={index}", "collect.shard.count=2")
    shards = sorted(tmp_path.glob("oec.shard-*-of-2"))
    assert [s.name for s in shards] == ["oec.shard-0-of-2", "oec.shard-1-of-2"]
    merged = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "-m", "oec.store", "merge", str(merged), *map(str, shards)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr

    def outcomes(root: Path) -> dict:
        return {t.key: (t.exit_status, t.resolved, t.patch) for t, _ in read_store_records(root)}

    assert outcomes(merged) == outcomes(tmp_path / "whole") and len(outcomes(merged)) == TASKS
