"""Stop training at a step boundary with a checkpoint when the cluster says so, and resume after a requeue.

SLURM sends SIGTERM on pre-emption and at the time limit, then SIGKILL ``KillWait`` (30 s by default)
later; Hydra's submitit launcher has SLURM send SIGUSR2 ``signal_delay_s`` before the time limit and
requeues the job from its SIGUSR2 handler; Lightning's own SLURM requeue signal is SIGUSR1. Lightning's
handling does not fit: on SIGTERM it raises at the next batch end of each rank separately and saves
nothing, and its SIGUSR1 handler saves from inside the signal handler, in the middle of a step.

While the training loop runs, :class:`StopOnSignal` replaces the handlers of :data:`STOP_SIGNALS`; its
handler only records the signal. At the end of every optimiser step the ranks agree (one all-reduce of a
flag) whether any of them got one; if so, all ranks save ``checkpoints/interrupted.ckpt`` together (a full
checkpoint at a step boundary: weights, optimiser, scheduler, loop progress, data position) and, once
Lightning has logged that step, raise :class:`TrainingStopped`, an exit with status 128 + the signal
(143 for SIGTERM). Its :meth:`TrainingStopped.hand_over` then runs the handler that was installed
before training, so that submitit still requeues the job. The requeued job (``SLURM_RESTART_COUNT``
> 0, see :func:`requeued`) resumes from the newest checkpoint without ``train.resume=true``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""SLURM's pre-emption and time-limit signal, Lightning's SLURM requeue signal, submitit's."""
INTERRUPTED = "interrupted.ckpt"

Handler = Callable[[int, FrameType | None], Any] | int | None


class TrainingStopped(SystemExit):
    """Training stopped on a signal after saving ``checkpoint``; exits with 128 + ``signum``."""

    def __init__(self, signum: int, checkpoint: Path, handler_before: Handler) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = checkpoint
        self.handler_before = handler_before

    def hand_over(self) -> None:
        """Run the handler this process had for the signal before training (submitit's requeue, which
        exits with -1 on rank 0); default and ignored handlers do nothing here."""
        if callable(self.handler_before):
            self.handler_before(self.signum, None)


class StopOnSignal(L.Callback):
    """Turns :data:`STOP_SIGNALS` during training into a collective checkpoint at the next step end."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self._received: int | None = None
        self._handlers_before: dict[int, Handler] = {}
        self._step_at_batch_start = 0
        self._stopped: TrainingStopped | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning installs its own handlers after this hook and restores these at teardown.
        self._handlers_before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._received = None
        self._stopped = None
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self._received is None:
            self._received = signum
            log.warning("received %s: stopping after the current optimiser step", signal.Signals(signum).name)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._raise_if_stopped()
        self._step_at_batch_start = trainer.global_step

    # The stop is raised at the first hook after the saved step that would start more work (the next
    # batch, a validation, the epoch's end), so that Lightning logs the saved step's metrics first.
    def on_validation_start(self, *args: Any) -> None:
        self._raise_if_stopped()

    def on_train_epoch_end(self, *args: Any) -> None:
        self._raise_if_stopped()

    def on_train_end(self, *args: Any) -> None:
        self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        if self._stopped is not None:
            raise self._stopped

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self._step_at_batch_start:
            return  # inside a gradient accumulation: a checkpoint here would lose the accumulated part
        if not trainer.strategy.reduce_boolean_decision(self._received is not None, all=False):
            return
        trainer.save_checkpoint(self.checkpoint)
        if trainer.is_global_zero:
            log.warning("saved %s at step %d; stopping", self.checkpoint, trainer.global_step)
        if self._received is None:  # another rank got the signal: exit as for SIGTERM, hand over nothing
            self._stopped = TrainingStopped(signal.SIGTERM, self.checkpoint, None)
        else:
            self._stopped = TrainingStopped(
                self._received, self.checkpoint, self._handlers_before.get(self._received)
            )


def requeued() -> int:
    """How many times SLURM has requeued this job (``SLURM_RESTART_COUNT``); 0 outside SLURM."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
