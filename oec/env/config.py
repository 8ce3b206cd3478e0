"""The ``env`` config: which sandbox runtime runs the agent's commands, and under which limits.

Fields are validated when the dataclass is built (``oec.config.parse`` builds it from Hydra at
start-up), so a bad value fails before any sandbox exists, with an error naming its config key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from oec.config import Above, AtLeast


@dataclass(frozen=True)
class ResourceLimits:
    """``env.limits``: per-command limits (soft and hard), applied with ``ulimit``; null = inherit.

    The defaults only stop runaway commands (a memory leak, a file filling the disk, a fork bomb)
    and leave room for pytest, git and compiled extensions.
    """

    address_space_mb: Annotated[int, AtLeast(1)] | None = 16384
    """Virtual address space per process (``ulimit -v``). Virtual, not resident: threaded programs
    reserve far more than they touch, so keep this well above the memory a test suite needs."""

    file_size_mb: Annotated[int, AtLeast(1)] | None = 4096
    """Largest file a command may write (``ulimit -f``)."""

    processes: Annotated[int, AtLeast(1)] | None = 4096
    """Processes and threads of the sandbox: ``pids.max`` of its own pids cgroup where one can be
    made (as root), which binds root too and counts only this sandbox. Also ``ulimit -u``, which
    counts every process of the user and which Linux ignores for root."""


@dataclass(frozen=True)
class SandboxConfig:
    """``env`` config group: one sandbox per rollout, created fresh from the task's snapshot."""

    runtime: Literal["local"] = "local"
    """Which sandbox implementation runs commands: ``local`` processes (oec/env/local.py)."""

    timeout_s: Annotated[float, Above(0)] = 300.0
    """Per-command timeout in seconds (reference: 300); the whole process group is killed."""

    max_output_chars: Annotated[int, AtLeast(1)] = 70_000
    """Longest observation kept from one command (reference: 70k); the middle is cut out."""

    network: Literal["off", "on"] = "off"
    """``off`` runs commands in a fresh network namespace (loopback only) when the machine allows
    it, with one logged warning when it does not."""

    isolation: Literal["bwrap", "none"] = "bwrap"
    """``bwrap``: every command runs under bubblewrap (oec/env/bwrap.py), seeing only the system
    dirs, the task environment, this sandbox's directories and, read-only, the snapshot's objects;
    with its own PID namespace, so nothing it starts outlives it. ``none``: plain processes of the
    calling user, which can read any file that user can (debugging only). If bwrap cannot run,
    one warning says what is lost and commands run as with ``none``."""

    task_env: str | None = None
    """Python environment (a virtualenv) the task's commands get: its ``bin/`` is first on their
    PATH, so ``python`` and ``pytest`` are its own, never the project's (whose ``oec`` package holds
    every gold patch and hidden test). null = ``.task-env`` in the project checkout, made by
    ``make install`` with pytest only. If it is missing, one warning says so and commands get only
    the system's Python."""

    parent_dir: str | None = None
    """Directory under which each sandbox's temporary root is created; null = the system temp dir."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)
