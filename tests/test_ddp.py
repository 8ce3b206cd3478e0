"""Two-process DDP on CPU (gloo): one optimiser step gives the single-process gradient.

The test runs this file as a script, with the repository on PYTHONPATH; Lightning's DDP launcher
starts the second rank by running the same command again. Each rank trains two micro-batches of one
example (world 2 x accumulation 2 x micro-batch 1 = the four examples of one step), and rank 0 saves
the gradient the optimiser sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from oec.chat import load_tokenizer
from oec.data.render import render
from oec.sft.module import OptimConfig, SFTModule
from tests.sft_helpers import (
    GradientRecorder,
    assert_same_gradients,
    loader,
    micro_model,
    quiet_trainer,
    reference_gradient,
    trajectory,
)
from tests.test_train_entry import DEMO_PINS

ROOT = Path(__file__).resolve().parents[1]


def examples():
    tokenizer = load_tokenizer()
    return tokenizer, [render(trajectory(i, turns=2 + i % 2), tokenizer, mask="expert") for i in range(4)]


class PlannedExamples(L.LightningDataModule):
    """The four examples, dealt to this rank by the global batch plan."""

    def train_dataloader(self):
        tokenizer, items = examples()
        return loader(
            items, tokenizer, 1, 2, world_size=self.trainer.world_size, rank=self.trainer.global_rank
        )


def worker(out: Path) -> None:
    recorder = GradientRecorder()
    trainer = quiet_trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=1,
        accumulate_grad_batches=2,
        callbacks=[recorder],
    )
    trainer.fit(
        SFTModule(micro_model, OptimConfig(warmup_steps=0), loss_chunk_size=64), datamodule=PlannedExamples()
    )
    if trainer.is_global_zero:
        torch.save(recorder.grads, out)


@pytest.mark.slow
def test_two_rank_ddp_gradient_equals_the_single_process_gradient(tmp_path):
    out = tmp_path / "grads.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, __file__, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, items = examples()
    assert_same_gradients(torch.load(out), reference_gradient(items))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))


@pytest.mark.slow
def test_the_entry_point_trains_with_two_cpu_processes_and_rank_zero_exports(tmp_path):
    """Hydra + Lightning relaunch the second rank; the data plan's step totals hold across ranks."""
    from oec.sft.loggers import read_metrics
    from oec.store import TrajectoryStore

    with TrajectoryStore.open(tmp_path / "stores" / "tiny" / "demo", config={"test": True}) as store:
        for index in range(6):
            store.append(trajectory(index, turns=2 + index % 2))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "oec.train", "+exp=demo", f"paths.root={tmp_path}", "logger=local"]
    command += [f"hydra.run.dir={run}", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    command += list(DEMO_PINS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [r for r in read_metrics(run / "metrics.jsonl") if "train/loss" in r]
    # Five training examples, two per step (one per rank): 3 steps, the last with a filler.
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert (run / "model" / "oec_export.json").is_file()
