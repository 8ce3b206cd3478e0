"""The ``env`` config: which sandbox runtime runs the agent's commands, and under which limits.

Fields are validated when the dataclass is built (``oec.config.parse`` builds it from Hydra at
start-up), so a bad value fails before any sandbox exists, with an error naming its config key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RUNTIMES = ("local",)
"""Runtimes that :func:`oec.env.make_sandbox` can build."""

PLANNED_RUNTIMES = ("docker", "podman", "apptainer")
"""Container runtimes that fit the Sandbox protocol but are not implemented yet."""


@dataclass(frozen=True)
class ResourceLimits:
    """``env.limits``: per-command limits (soft and hard), applied with ``ulimit``; null = inherit.

    The defaults only stop runaway commands (a memory leak, a file filling the disk, a fork bomb)
    and leave room for pytest, git and compiled extensions.
    """

    address_space_mb: int | None = 16384
    """Virtual address space per process (``ulimit -v``). Virtual, not resident: threaded programs
    reserve far more than they touch, so keep this well above the memory a test suite needs."""

    file_size_mb: int | None = 4096
    """Largest file a command may write (``ulimit -f``)."""

    processes: int | None = 4096
    """Processes of the user (``ulimit -u``). Linux counts every process of the user, not only
    the sandbox's, and ignores the limit for root."""

    def __post_init__(self) -> None:
        for name in ("address_space_mb", "file_size_mb", "processes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"env.limits.{name}: must be > 0 or null, got {value}")


@dataclass(frozen=True)
class SandboxConfig:
    """``env`` config group: one sandbox per rollout, created fresh from the task's snapshot."""

    runtime: str = "local"
    """Which sandbox implementation runs commands; see :data:`RUNTIMES`."""

    timeout_s: float = 300.0
    """Per-command timeout in seconds (reference: 300); the whole process group is killed."""

    max_output_chars: int = 70_000
    """Longest observation kept from one command (reference: 70k); the middle is cut out."""

    network: Literal["off", "on"] = "off"
    """``off`` runs commands in a fresh network namespace (loopback only) when the machine allows
    it, with one logged warning when it does not."""

    parent_dir: str | None = None
    """Directory under which each sandbox's temporary root is created; null = the system temp dir."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)

    def __post_init__(self) -> None:
        if self.runtime in PLANNED_RUNTIMES:
            raise ValueError(
                f"env.runtime: {self.runtime!r} is not available yet (available: {', '.join(RUNTIMES)})"
            )
        if self.runtime not in RUNTIMES:
            raise ValueError(
                f"env.runtime: unknown runtime {self.runtime!r} (available: {', '.join(RUNTIMES)})"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"env.timeout_s: must be > 0, got {self.timeout_s}")
        if self.max_output_chars <= 0:
            raise ValueError(f"env.max_output_chars: must be > 0, got {self.max_output_chars}")
        if self.network not in ("off", "on"):
            raise ValueError(f"env.network: must be 'off' or 'on', got {self.network!r}")
