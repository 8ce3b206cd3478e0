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


def test_a_resumed_sampler_continues_the_epoch_plan_where_the_checkpoint_left_it():
    from oec.data.plan import StepBatchSampler

    def sampler(epoch: int) -> StepBatchSampler:
        tokens = [5, 9, 2, 7, 4, 8, 3]
        return StepBatchSampler(
            tokens, 2, 1, micro_batch_size=1, accumulate_grad_batches=2, seed=1, epoch=epoch
        )

    epoch2, epoch3 = list(sampler(2)), list(sampler(3))
    resumed = sampler(0)
    resumed.resume(epoch=2, done=2)
    resumed.set_epoch(2)  # Lightning sets the epoch again when the resumed epoch starts
    assert list(resumed) == epoch2[2:]
    resumed.set_epoch(3)
    assert list(resumed) == epoch3
    # A checkpoint at the end of an epoch (all its micro-batches done) leaves nothing out.
    resumed.resume(epoch=2, done=len(resumed))
    assert list(resumed) == epoch2


def live_members(group: int) -> list[int]:
    """Processes of process group ``group`` that still run (zombies excluded), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while listed
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


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
        while len(logged_steps(run / "metrics.jsonl")) < 2 and first.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    took = time.monotonic() - signalled
    stderr = log.read_text()
    assert first.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    # SLURM's KillWait is 30 s; the step and the save take ~4 s here, up to 12 s on a loaded machine.
    assert took < 25, f"{took:.1f} s from SIGTERM to exit"

    saved = torch.load(run / CHECKPOINTS / "interrupted.ckpt", map_location="cpu", weights_only=False)
    step = saved["global_step"]
    # The step the signal arrived in was finished, logged and saved.
    assert step >= 2 and logged_steps(run / "metrics.jsonl") == list(range(1, step + 1))
    assert saved["optimizer_states"][0]["state"][0]["step"] == step
    assert saved["lr_schedulers"][0]["last_epoch"] == step
    assert not (run / "model").exists()

    # The requeued job: same command, SLURM_RESTART_COUNT set, no train.resume=true.
    resumed = subprocess.run(
        command, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "1"}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "interrupted.ckpt" in resumed.stderr
    assert logged_steps(run / "metrics.jsonl") == list(range(1, 13))
    assert json.loads((run / "model" / MANIFEST).read_text())["global_step"] == 12
    # The resumed epoch went on with the rest of its plan: each of the five examples (their supervised
    # token counts differ) once per epoch, none of epoch 0 twice.
    tokens = {
        r["step"]: r["train/supervised_tokens"]
        for r in read_metrics(run / "metrics.jsonl")
        if "train/loss" in r
    }
    first_epoch, second_epoch = [tokens[s] for s in range(1, 6)], [tokens[s] for s in range(6, 11)]
    assert len(set(first_epoch)) == 5 and sorted(first_epoch) == sorted(second_epoch)


@pytest.mark.slow
def test_sigterm_to_rank_zero_stops_both_ddp_ranks_at_one_step_and_they_resume(tmp_path):
    write_demo_store(tmp_path)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "oec.train", "+exp=demo", *DEMO_PINS, f"paths.root={tmp_path}"]
    command += [f"hydra.run.dir={run}", "logger=local", "trainer.max_epochs=100", "trainer.max_steps=8"]
    command += ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    env = {**ENV, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "first.log"
    with log.open("w") as out:
        # Its own session: Lightning starts rank 1 as a child; the test checks it is gone too.
        first = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 300
        while len(logged_steps(run / "metrics.jsonl")) < 2 and first.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)  # rank 0 only: rank 1 learns of it at the step end
        first.wait(timeout=60)
    took = time.monotonic() - signalled
    assert first.returncode == 128 + signal.SIGTERM, log.read_text()[-3000:]
    assert took < 25, f"{took:.1f} s from SIGTERM to exit"
    while live_members(first.pid):
        assert time.monotonic() < signalled + 20, f"rank 1 outlived rank 0: {live_members(first.pid)}"
        time.sleep(0.1)
    step = torch.load(run / CHECKPOINTS / "interrupted.ckpt", map_location="cpu", weights_only=False)[
        "global_step"
    ]
    assert step >= 2 and logged_steps(run / "metrics.jsonl") == list(range(1, step + 1))

    resumed = subprocess.run(
        command, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "1"}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert logged_steps(run / "metrics.jsonl") == list(range(1, 9))
    assert json.loads((run / "model" / MANIFEST).read_text())["global_step"] == 8
