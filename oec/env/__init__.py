"""Sandboxes: where the agent's commands run, one fresh working copy of the task repo per rollout.

``make_sandbox(config, task)`` is the only constructor the rest of the code calls; it dispatches
on ``env.runtime``. Everything else talks to the :class:`~oec.env.base.Sandbox` protocol.
"""

from __future__ import annotations

from collections.abc import Callable

from oec.env.base import ExecResult, Sandbox
from oec.env.config import PLANNED_RUNTIMES, RUNTIMES, ResourceLimits, SandboxConfig
from oec.env.local import LocalSandbox, SandboxError
from oec.types import Task

__all__ = [
    "PLANNED_RUNTIMES",
    "RUNTIMES",
    "ExecResult",
    "LocalSandbox",
    "ResourceLimits",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "make_sandbox",
]


def _local(config: SandboxConfig, task: Task) -> Sandbox:
    if not task.snapshot:
        raise SandboxError(
            f"task {task.instance_id!r}: field 'snapshot' is empty; the local runtime clones that repository"
        )
    return LocalSandbox(task.snapshot, task.base_commit, config)


_BUILDERS: dict[str, Callable[[SandboxConfig, Task], Sandbox]] = {"local": _local}


def make_sandbox(config: SandboxConfig, task: Task) -> Sandbox:
    """A fresh sandbox holding ``task``'s repository at its base commit; close it (or use ``with``)."""
    builder = _BUILDERS.get(config.runtime)
    if builder is None:
        raise SandboxError(
            f"env.runtime: {config.runtime!r} is not available yet (available: {', '.join(_BUILDERS)})"
        )
    return builder(config, task)
