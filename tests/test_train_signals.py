"""A signal during training saves a full checkpoint at the end of the current optimiser step, stops with
128 + the signal, hands the signal to the handler installed before training (submitit's requeue), and
a requeued job resumes from that step to the end, then exports.

The signals are real (``os.kill``); the handler installed before training stands in for submitit's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from oec.sft.export import MANIFEST
from oec.sft.loggers import read_metrics
from oec.sft.module import OptimConfig, SFTModule
from oec.sft.preemption import TrainingStopped
from oec.sft.trainer import CHECKPOINTS, latest_checkpoint
from tests.sft_helpers import loader, micro_model, quiet_trainer
from tests.test_train_entry import DEMO_PINS, ENV, ROOT, write_demo_store


class SignalAt(L.Callback):
    """Sends ``signum`` to this process when micro-batch ``batch_index`` (0-based, first epoch) starts."""

    def __init__(self, signum: int, batch_index: int) -> None:
        self.signum = signum
        self.batch_index = batch_index

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == self.batch_index:
            os.kill(os.getpid(), self.signum)


def test_a_signal_inside_an_accumulation_stops_at_the_step_end_and_hands_over(tmp_path, examples, tokenizer):
    from oec.sft.preemption import StopOnSignal

    handed_over = []

    def requeue(signum, frame):  # what submitit's handler does first: note the signal
        handed_over.append(signum)

    before = signal.signal(signal.SIGUSR2, requeue)
    try:
        checkpoint = tmp_path / "interrupted.ckpt"
        trainer = quiet_trainer(
            accelerator="cpu",
            devices=1,
            max_steps=4,
            accumulate_grad_batches=2,
            # The first micro-batch of step 1: stopping there would lose half the step's gradient.
            callbacks=[SignalAt(signal.SIGUSR2, batch_index=0), StopOnSignal(checkpoint)],
        )
        module = SFTModule(micro_model, OptimConfig(warmup_steps=0), loss_chunk_size=64)
        with pytest.raises(TrainingStopped) as stopped:
            trainer.fit(module, train_dataloaders=loader(examples, tokenizer, 1, 2))
        assert stopped.value.code == 128 + signal.SIGUSR2 and trainer.global_step == 1
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        assert saved["global_step"] == 1 and saved["optimizer_states"][0]["state"][0]["step"] == 1
        # Training restored the handler it found; the signal reaches it only after the checkpoint.
        assert signal.getsignal(signal.SIGUSR2) is requeue and handed_over == []
        stopped.value.hand_over()
        assert handed_over == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_the_checkpoint_a_signal_saved_is_where_resume_starts(tmp_path):
    (tmp_path / CHECKPOINTS).mkdir()
    last = tmp_path / CHECKPOINTS / "last.ckpt"
    last.write_bytes(b"")
    os.utime(last, (1, 1))
    (tmp_path / CHECKPOINTS / "interrupted.ckpt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / CHECKPOINTS / "interrupted.ckpt"


def logged_steps(metrics: Path) -> list[int]:
    return [r["step"] for r in read_metrics(metrics) if "train/loss" in r] if metrics.exists() else []


@pytest.mark.slow
def test_sigterm_saves_the_step_exits_143_and_the_requeued_job_resumes_to_the_end(tmp_path):
    write_demo_store(tmp_path)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "oec.train", "+exp=demo", *DEMO_PINS, f"paths.root={tmp_path}"]
    # One example per step, five per epoch: the signal lands mid-epoch.
    command += [f"hydra.run.dir={run}", "logger=local", "trainer.max_epochs=100", "trainer.max_steps=12"]
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while len(logged_steps(run / "metrics.jsonl")) < 3 and first.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    took = time.monotonic() - signalled
    stderr = log.read_text()
    assert first.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert took < 20, f"{took:.1f} s from SIGTERM to exit"  # SLURM's KillWait is 30 s

    saved = torch.load(run / CHECKPOINTS / "interrupted.ckpt", map_location="cpu", weights_only=False)
    step = saved["global_step"]
    # The step the signal arrived in was finished and saved (its metrics record is not written).
    assert step >= 3 and logged_steps(run / "metrics.jsonl") == list(range(1, step))
    assert saved["optimizer_states"][0]["state"][0]["step"] == step
    assert saved["lr_schedulers"][0]["last_epoch"] == step
    assert not (run / "model").exists()

    # The requeued job: same command, SLURM_RESTART_COUNT set, no train.resume=true.
    resumed = subprocess.run(
        command, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "1"}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "interrupted.ckpt" in resumed.stderr
    assert logged_steps(run / "metrics.jsonl") == [s for s in range(1, 13) if s != step]
    assert json.loads((run / "model" / MANIFEST).read_text())["global_step"] == 12
