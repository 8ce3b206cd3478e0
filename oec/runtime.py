"""Process-level behaviour shared by the entry points: stopping cleanly on a signal.

SLURM sends SIGTERM on preemption and at the time limit, then SIGKILL after ``KillWait`` (30 s by
default); Ctrl-C sends SIGINT; submitit (``hydra/launcher=slurm``) has SLURM send SIGUSR2
``signal_delay_s`` before the limit and requeues the job from its SIGUSR2 handler. A signal
handler that raised SystemExit would run into a thread pool that finishes every queued rollout
first, so :class:`StopRequest` only records the signal: the rollout loop polls it, stops launching,
lets in-flight rollouts finish within a grace, stores them, and the entry point then calls
:meth:`StopRequest.exit`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import Any, NoReturn

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class StopRequest:
    """The first stop signal received, and whether a second one asked to skip the grace."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.forced = False
        self._previous: dict[int, Any] = {}

    @classmethod
    def install(cls) -> StopRequest:
        """Handle SIGTERM, SIGINT and SIGUSR2 from now on (main thread only); keep the handlers they
        replace, so :meth:`exit` can hand SIGUSR2 over to submitit's requeue."""
        request = cls()
        for signum in STOP_SIGNALS:
            request._previous[signum] = signal.signal(signum, request._handle)
        return request

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "nothing"

    def _handle(self, signum: int, frame: Any) -> None:
        # Only flags: the loop that polls them logs (a handler runs between any two bytecodes).
        if self.signum is None:
            self.signum = signum
        else:
            self.forced = True

    def exit(self, threads_left: bool) -> NoReturn:
        """End the process after a stop: 128 + the signal number (143 SIGTERM, 130 SIGINT), except
        that SIGUSR2 goes first to the handler it replaced when there was one (submitit: requeue,
        exit). ``threads_left``: abandoned rollouts still run in worker threads, possibly inside
        native code (generation), where interpreter shutdown aborts the process (std::terminate,
        exit 134); the process then ends at once, output flushed and atexit handlers skipped (the
        caller has closed the store and the sandboxes)."""
        assert self.signum is not None, "exit() is for a process that received a stop signal"
        status = 128 + self.signum
        previous = self._previous.get(self.signum)
        try:
            if self.signum == signal.SIGUSR2 and callable(previous):
                log.warning("handing SIGUSR2 to the handler installed before (submitit requeues the job)")
                previous(self.signum, None)
            log.warning("stopped by %s; exit status %d; rerun the same command to resume", self.name, status)
            raise SystemExit(status)
        except BaseException as exc:
            if not threads_left:
                raise
            if not isinstance(exc, SystemExit):
                log.error("the SIGUSR2 handler failed: %r", exc)
            code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else status
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
