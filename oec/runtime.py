"""Process-level behaviour shared by the entry points."""

from __future__ import annotations

import signal
import sys


def exit_on_sigterm() -> None:
    """Turn SIGTERM (SLURM pre-emption, ``kill``) into SystemExit so context managers and atexit
    handlers run: sandboxes are removed and the store's manifest is closed cleanly."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
