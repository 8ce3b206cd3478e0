"""Sandboxes: where the agent's commands run, one fresh working copy of the task repo per rollout.

``make_sandbox(config, task)`` is the only constructor the rest of the code calls; ``env.runtime``
picks a local sandbox (oec/env/local.py), a container (oec/env/container.py) or an apptainer
instance (oec/env/apptainer.py). A SWE-smith task's
bug patch is applied and committed there, for every runtime, so the agent's sandbox and the
verifier's fresh ones all start from the buggy base. Everything else talks to the
:class:`~oec.env.base.Sandbox` protocol. :func:`close_open_sandboxes` closes every
sandbox still open, for a process that must exit while rollouts are in flight.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

from oec.env.apptainer import ApptainerSandbox
from oec.env.base import ExecResult, Sandbox, SandboxError, SandboxInfraError
from oec.env.config import (
    ApptainerConfig,
    ContainerConfig,
    DockerConfig,
    EnvConfig,
    PodmanConfig,
    ResourceLimits,
    SandboxConfig,
)
from oec.env.container import ContainerSandbox
from oec.env.local import LocalSandbox
from oec.tasks import swesmith
from oec.types import Task

__all__ = [
    "ApptainerConfig",
    "ApptainerSandbox",
    "ContainerConfig",
    "ContainerSandbox",
    "DockerConfig",
    "EnvConfig",
    "ExecResult",
    "LocalSandbox",
    "PodmanConfig",
    "ResourceLimits",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxInfraError",
    "close_open_sandboxes",
    "make_sandbox",
]

_open_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_lock = threading.Condition()
_under_construction = 0
_stopping = False
CONSTRUCTION_WAIT_S = 3.0
"""How long :func:`close_open_sandboxes` waits for sandboxes still being made (a clone, a container
start) to finish and close themselves."""


def make_sandbox(config: EnvConfig, task: Task, sample_index: int | None = None) -> Sandbox:
    """A fresh sandbox holding ``task``'s repository at its base commit; close it (or use ``with``).

    A task with a bug patch (SWE-smith) gets it applied and committed, and that commit becomes the
    sandbox's ``base_commit`` (the base ``submit`` diffs against); a patch that does not apply
    raises :class:`~oec.tasks.swesmith.BugPatchError`. ``sample_index`` names the rollout in a
    container's ``oec.rollout`` label. Once :func:`close_open_sandboxes` has run (the process is
    stopping), a sandbox still being made is closed as soon as it exists, and no new one is made:
    both raise :class:`SandboxError`.
    """
    global _under_construction
    with _lock:
        if _stopping:
            raise SandboxError("the process is stopping: no new sandbox is made")
        _under_construction += 1
    sandbox: Sandbox | None = None
    try:
        if isinstance(config, ContainerConfig):
            sandbox = ContainerSandbox(task, config, sample_index)
        elif isinstance(config, ApptainerConfig):
            sandbox = ApptainerSandbox(task, config)
        else:
            if not task.snapshot:
                raise SandboxError(
                    f"task {task.instance_id!r}: field 'snapshot' is empty; "
                    "the local runtime clones that repository"
                )
            sandbox = LocalSandbox(task.snapshot, task.base_commit, config)
        try:
            sandbox.base_commit = swesmith.apply_bug_patch(sandbox, task)
        except BaseException:
            sandbox.close()
            sandbox = None
            raise
    finally:
        with _lock:
            _under_construction -= 1
            stopping = _stopping
            if sandbox is not None and not stopping:
                _open_sandboxes.add(sandbox)
            _lock.notify_all()
    if stopping:
        with contextlib.suppress(Exception):
            sandbox.close()
        raise SandboxError("the process is stopping: the sandbox just made was closed")
    return sandbox


def close_open_sandboxes() -> int:
    """Close every sandbox :func:`make_sandbox` made that is still open (closing twice is safe), for
    a process about to exit; returns how many were closed. The rollouts using them then fail at
    their next command. Sandboxes still being made are waited for (up to
    :data:`CONSTRUCTION_WAIT_S`): each closes itself when done, so none outlives the process."""
    global _stopping
    with _lock:
        _stopping = True
        sandboxes = list(_open_sandboxes)
    for sandbox in sandboxes:
        with contextlib.suppress(Exception):
            sandbox.close()
    with _lock:
        _lock.wait_for(lambda: _under_construction == 0, timeout=CONSTRUCTION_WAIT_S)
    return len(sandboxes)
