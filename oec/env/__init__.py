"""Sandboxes: where the agent's commands run, one fresh working copy of the task repo per rollout.

``make_sandbox(config, task)`` is the only constructor the rest of the code calls. Everything else
talks to the :class:`~oec.env.base.Sandbox` protocol.
"""

from __future__ import annotations

from oec.env.base import ExecResult, Sandbox
from oec.env.config import ResourceLimits, SandboxConfig
from oec.env.local import LocalSandbox, SandboxError
from oec.types import Task

__all__ = [
    "ExecResult",
    "LocalSandbox",
    "ResourceLimits",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "make_sandbox",
]


def make_sandbox(config: SandboxConfig, task: Task) -> Sandbox:
    """A fresh sandbox holding ``task``'s repository at its base commit; close it (or use ``with``)."""
    if not task.snapshot:
        raise SandboxError(
            f"task {task.instance_id!r}: field 'snapshot' is empty; the local runtime clones that repository"
        )
    return LocalSandbox(task.snapshot, task.base_commit, config)
