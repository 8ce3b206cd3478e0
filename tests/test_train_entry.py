"""``python -m oec.train``: every experiment composes, bad input is refused early, and the tiny model
trains, logs, checkpoints, resumes and exports through the real entry point (on a real store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from oec.config import ConfigError
from oec.sft.export import MANIFEST
from oec.sft.loggers import read_metrics
from oec.sft.run import run_training
from oec.store import TrajectoryStore
from oec.train import load_settings
from tests.sft_helpers import trajectory

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRIMARY = "config"
# The demo experiment is tuned for `make run`; tests that train through it pin what they assert on.
DEMO_PINS = (
    "trainer.max_epochs=1",
    "trainer.max_steps=-1",
    "optim.lr=1e-4",
    "optim.warmup_steps=2",
    "data.val_fraction=0.2",
)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}


def compose_config(*overrides: str, hydra: bool = False):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(PRIMARY, overrides=list(overrides), return_hydra_config=hydra)


def test_an_unknown_model_name_lists_the_known_ones():
    with pytest.raises(MissingConfigException, match=r"model/qwen-7b(.|\n)*qwen2.5-coder-7b"):
        compose_config("model=qwen-7b")


def test_a_missing_checkpoint_folder_is_refused_before_anything_is_written(tmp_path):
    run = f"train.run_dir={tmp_path / 'run'}"
    settings = load_settings(compose_config("+exp=oec", "model=qwen2.5-coder-7b", run))
    with pytest.raises(ConfigError, match=r"model\.name_or_path.*Qwen/Qwen2.5-Coder-7B-Instruct"):
        run_training(settings)
    assert not (tmp_path / "run").exists()


def test_a_missing_store_is_refused_before_a_model_or_logger_starts(tmp_path):
    from oec.data.mix import MixError

    run = tmp_path / "run"
    settings = load_settings(compose_config("+exp=demo", f"paths.root={tmp_path}", f"train.run_dir={run}"))
    with pytest.raises(MixError, match=r"data\.sources\[0\].*does not exist"):
        run_training(settings)
    assert not run.exists()


def test_slurm_launcher_follows_the_trainer_node_count():
    cfg = compose_config(
        "+exp=oec", "model=qwen2.5-coder-32b", "hydra/launcher=slurm", "trainer.num_nodes=4", hydra=True
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["nodes"] == 4 and launcher["tasks_per_node"] == launcher["gpus_per_node"] == 8


def write_demo_store(root: Path) -> None:
    with TrajectoryStore.open(root / "stores" / "tiny" / "demo", config={"test": True}) as store:
        for index in range(6):
            store.append(trajectory(index, turns=2 + index % 2))


def train(*overrides: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "oec.train", "--config-name", PRIMARY, *overrides]
    result = subprocess.run(
        command, cwd=cwd, env={**ENV, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_demo_trains_resumes_and_exports_through_the_entry_point(tmp_path):
    from transformers import AutoModelForCausalLM

    write_demo_store(tmp_path)
    run = tmp_path / "run"
    # Five training examples in one micro-batch: one optimiser step per epoch.
    common = (
        "+exp=demo",
        *DEMO_PINS,
        f"paths.root={tmp_path}",
        f"hydra.run.dir={run}",
        "data.micro_batch_size=5",
    )
    train(*common, "trainer.max_epochs=1", "train.export=false", cwd=tmp_path)
    assert not (run / "model").exists()
    assert (run / "checkpoints" / "last.ckpt").exists() and list((run / "wandb").glob("offline-run-*"))

    again = train(*common, "trainer.max_epochs=2", cwd=tmp_path, check=False)
    assert again.returncode != 0 and "train.run_dir" in again.stderr and "train.resume=true" in again.stderr

    train(*common, "trainer.max_epochs=2", "train.resume=true", "logger=local", cwd=tmp_path)
    records = [r for r in read_metrics(run / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    data = [r for r in read_metrics(run / "metrics.jsonl") if "data/train/examples" in r]
    assert [r["data/train/examples"] for r in data] == [5, 5]  # once per start
    # The warm-up continues where the first run stopped: 0 at step 1, half the peak at step 2.
    assert records[0]["train/lr"] == 0 and records[1]["train/lr"] == pytest.approx(0.5e-4)
    assert all(r["train/supervised_tokens"] > 0 and r["train/tokens_per_s"] > 0 for r in records)
    assert len([r for r in read_metrics(run / "metrics.jsonl") if "val/loss" in r]) == 2
    manifest = json.loads((run / "model" / MANIFEST).read_text())
    assert manifest["global_step"] == 2 and manifest["experiment"] == "demo"
    assert not (run / "checkpoints" / "final.ckpt").exists()
    model = AutoModelForCausalLM.from_pretrained(run / "model", local_files_only=True)
    assert model.config.model_type == "qwen2"


@pytest.mark.slow
def test_a_seed_sweep_runs_one_job_per_seed(tmp_path):
    write_demo_store(tmp_path)
    sweep = tmp_path / "sweep"
    train(
        "-m",
        "+exp=demo",
        "seed=0,1",
        f"paths.root={tmp_path}",
        f"hydra.sweep.dir={sweep}",
        "trainer.max_steps=1",
        "train.export=false",
        "logger=local",
        cwd=tmp_path,
    )
    jobs = [sweep / f"{job}_demo_tiny_seed{job}" for job in (0, 1)]
    records = [read_metrics(job / "metrics.jsonl") for job in jobs]
    losses = [next(r["train/loss"] for r in job if "train/loss" in r) for job in records]
    # Different seeds draw different tiny models and batch orders.
    assert losses[0] != losses[1]
