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
    """Processes of the user (``ulimit -u``). Linux counts every process of the user, not only
    the sandbox's, and ignores the limit for root."""


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

    parent_dir: str | None = None
    """Directory under which each sandbox's temporary root is created; null = the system temp dir."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)
