"""The sandbox protocol: a fresh working copy of a task's repository where commands run.

The agent loop, the tools and the verifier only ever call :meth:`Sandbox.run`, so the same code
drives a local process sandbox and container runtimes (docker, podman, apptainer). Files move in
through ``stdin`` of a command (``cat > path``), which every runtime supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SandboxError(RuntimeError):
    """The sandbox could not be created or used; the message names the snapshot, image or step."""


class SandboxInfraError(SandboxError):
    """The sandbox's machinery failed, not the agent: the image is missing, the container would not
    start or died, the runtime's client broke. A verifier reports it as an ``infra_error`` verdict
    (kept out of resolve rates), never as the agent's failure."""


@dataclass(frozen=True)
class ExecResult:
    """Result of one command. ``output`` interleaves stdout and stderr and may be truncated."""

    output: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0


class Sandbox(Protocol):
    workdir: str
    """Absolute path of the repository checkout inside the sandbox (the agent's cwd)."""

    tool_dir: str
    """Absolute path inside the sandbox, outside ``workdir``, for tool scripts and their state."""

    base_commit: str
    """The commit the working copy started from; ``submit`` diffs against it."""

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        """Run ``command`` with bash in ``workdir``; ``timeout`` (s) kills the whole process group."""
        ...

    def close(self) -> None:
        """Release every resource; safe to call twice."""
        ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...
