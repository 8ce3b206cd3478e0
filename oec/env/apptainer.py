"""Apptainer sandboxes: one apptainer instance of the task's image per rollout, for HPC clusters
without root or a container daemon.

NEVER RUN HERE: apptainer is not installable on this project's machines, so this module is written
from apptainer's documented command line and tested only for the command lines it builds, its
config and its errors (tests/test_apptainer.py runs it for real where an ``apptainer`` is on PATH).

The image comes from ``env.image`` with the task's ``metadata["image"]`` filled in: a SIF file or
``--sandbox`` directory (which must exist), or a URI such as ``docker://{image}``. Each sandbox is an
instance started with ``apptainer instance start --contain --cleanenv --fakeroot`` (no host home,
/tmp or environment; root of a user namespace, since docker-built images own the repository as root),
its writes going to an overlay image of its own (``apptainer overlay create``,
``--overlay``) or to ``--writable-tmpfs`` (``env.writable``), and without network (``--net
--network none``) where the site allows network namespaces (``env.network_namespace``). Each
command is one ``apptainer exec --pwd <workdir> instance://<name> bash -c ...`` with the same
wrapper as the docker runtime (oec/env/container.py): ``timeout -s KILL`` leading the command's
process group, the group killed when the command ends, and killed from a second exec through its
pid file when the client is stuck. Commands run ``bash -c``, not a login shell, so the image's
environment (apptainer's ``/.singularity.d/env``) is not reset by ``/etc/profile``.

Instances are named ``oec-<pid>-<start time>-<token>`` after the owning process; they are stopped
and their overlays removed on close, on garbage collection and at interpreter exit, and the first
sandbox of the next process removes those whose owner is gone (a collector killed outright).
Failures of the machinery (no client, missing image, failed start, instance gone) raise
:class:`~oec.env.base.SandboxInfraError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from oec.env.base import ExecResult, SandboxError, SandboxInfraError
from oec.env.cgroup import start_time
from oec.env.config import ApptainerConfig
from oec.env.container import (
    _ENV,
    TOOL_DIR,
    _call,
    check_out,
    exec_script,
    run_exec,
    task_image,
    task_workdir,
)
from oec.types import Task

log = logging.getLogger(__name__)

_NAME = re.compile(r"^oec-(?P<pid>\d+)-(?P<started>\d+)-[0-9a-f]+$")
_warned_network = threading.Event()


def cli(config: ApptainerConfig) -> str:
    """The client: ``env.binary``, else ``apptainer`` or ``singularity`` on PATH."""
    names = [config.binary] if config.binary else ["apptainer", "singularity"]
    for name in names:
        if path := shutil.which(name):
            return path
    raise SandboxInfraError(
        f"env.binary: {' or '.join(repr(n) for n in names)} is not installed (runtime apptainer)"
    )


def image_source(config: ApptainerConfig, task: Task) -> str:
    """``env.image`` filled in for ``task``; a path that does not exist is an infrastructure error."""
    image = task_image(task)
    source = config.image.format(image=image, image_file=re.sub(r"[/:]", "_", image))
    if "://" not in source and not Path(source).exists():
        raise SandboxInfraError(
            f"task {task.instance_id!r}: image {source!r} (env.image for {image!r}) does not exist; "
            f"build it, e.g. `apptainer build {source} docker-daemon://{image}`"
        )
    return source


def instance_name() -> str:
    """A new instance's name, naming this process (pid and start time) for :func:`remove_orphans`."""
    pid = os.getpid()
    return f"oec-{pid}-{start_time(pid)}-{uuid.uuid4().hex[:12]}"


def overlay_argv(config: ApptainerConfig, binary: str, path: str) -> list[str]:
    """The command line creating one rollout's sparse ext3 overlay."""
    fakeroot = ["--fakeroot"] if config.fakeroot else []
    return [binary, "overlay", "create", *fakeroot, "--sparse", "--size", str(config.overlay_mb), path]


def start_argv(
    config: ApptainerConfig, binary: str, source: str, name: str, overlay: str | None
) -> list[str]:
    """The ``instance start`` command line of one sandbox."""
    argv = [binary, "instance", "start", "--contain", "--cleanenv"]
    argv += ["--fakeroot"] if config.fakeroot else []
    argv += [arg for key, value in _ENV.items() for arg in ("--env", f"{key}={value}")]
    argv += ["--overlay", overlay] if overlay is not None else ["--writable-tmpfs"]
    if config.network == "off" and config.network_namespace:
        argv += ["--net", "--network", "none"]
    return [*argv, source, name]


def exec_argv(binary: str, name: str, workdir: str) -> list[str]:
    """The start of every ``exec`` command line in the instance ``name`` (the command follows)."""
    argv = [binary, "exec", "--cleanenv", "--pwd", workdir]
    argv += [arg for key, value in _ENV.items() for arg in ("--env", f"{key}={value}")]
    return [*argv, f"instance://{name}"]


def _instances(binary: str) -> list[str]:
    listed = _call([binary, "instance", "list", "--json"])
    if listed.returncode != 0:
        raise SandboxInfraError(f"cannot list apptainer instances: {listed.stderr.strip()}")
    try:
        return [entry["instance"] for entry in json.loads(listed.stdout or "{}").get("instances") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SandboxInfraError(f"cannot read `instance list --json`: {exc}") from exc


def _orphaned(name: str) -> bool:
    match = _NAME.match(name)
    return match is not None and start_time(int(match["pid"])) != match["started"]


def remove_orphans(binary: str, overlay_dir: str) -> list[str]:
    """Stop the instances, and remove the overlays, of owner processes that are gone; returns the
    names. Instances are the user's on this host, so those of other hosts are never seen."""
    orphans = [name for name in _instances(binary) if _orphaned(name)]
    for name in orphans:
        _call([binary, "instance", "stop", "--force", name])
    for overlay in Path(overlay_dir).glob("oec-*.img"):
        if _orphaned(overlay.stem):
            overlay.unlink(missing_ok=True)
            orphans.append(overlay.stem)
    if orphans:
        log.info("removed %d apptainer instances or overlays of dead collectors", len(set(orphans)))
    return orphans


_swept: set[str] = set()
_swept_lock = threading.Lock()


@dataclass
class _Resources:
    """What must be released; shared with the finalizer, so it must not refer to the sandbox."""

    binary: str
    name: str
    overlay: str | None = None
    started: bool = False
    running: set[subprocess.Popen] = field(default_factory=set)
    closed: bool = False


def _release(resources: _Resources) -> None:
    resources.closed = True
    for process in list(resources.running):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    if resources.started:
        with contextlib.suppress(SandboxInfraError):
            _call([resources.binary, "instance", "stop", "--force", resources.name])
    if resources.overlay is not None:
        with contextlib.suppress(OSError):
            os.unlink(resources.overlay)


class ApptainerSandbox:
    """A sandbox (see :class:`oec.env.base.Sandbox`) in an apptainer instance of the task's image."""

    def __init__(self, task: Task, config: ApptainerConfig) -> None:
        self.config = config
        self.workdir = task_workdir(task, config)
        self.tool_dir = TOOL_DIR
        binary = cli(config)
        overlay_dir = config.overlay_dir or tempfile.gettempdir()
        with _swept_lock:
            sweep = binary not in _swept
            _swept.add(binary)
        if sweep:
            remove_orphans(binary, overlay_dir)
        self.source = image_source(config, task)
        self.name = instance_name()
        overlay = os.path.join(overlay_dir, f"{self.name}.img") if config.writable == "overlay" else None
        self._resources = _Resources(binary, self.name, overlay)
        self._finalizer = weakref.finalize(self, _release, self._resources)
        started = time.monotonic()
        try:
            if overlay is not None:
                self._create_overlay(overlay)
            self._start(start_argv(config, binary, self.source, self.name, overlay))
            self.base_commit = self._check_out(task)
        except BaseException:
            self.close()
            raise
        log.debug("instance %s of %s ready in %.3f s", self.name, self.source, time.monotonic() - started)

    def _create_overlay(self, path: str) -> None:
        created = _call(overlay_argv(self.config, self._resources.binary, path))
        if created.returncode != 0:
            raise SandboxInfraError(f"cannot create the overlay {path}: {created.stderr.strip()[-500:]}")

    def _start(self, argv: list[str]) -> None:
        """Start the instance, retrying a failed or slow start a bounded number of times."""
        off = self.config.network == "off"
        if off and not self.config.network_namespace and not _warned_network.is_set():
            _warned_network.set()
            log.warning("env.network_namespace is false: apptainer commands keep the host's network")
        errors = []
        for attempt in range(1, self.config.start_attempts + 1):
            self._resources.started = True  # a timed-out start may still leave an instance behind
            try:
                result = _call(argv, timeout=self.config.start_timeout_s)
                if result.returncode == 0:
                    return
                errors.append(f"attempt {attempt}: {(result.stdout + result.stderr).strip()[-500:]}")
            except SandboxInfraError as exc:
                errors.append(f"attempt {attempt}: {exc}")
            with contextlib.suppress(SandboxInfraError):
                _call([self._resources.binary, "instance", "stop", "--force", self.name])
        raise SandboxInfraError(f"cannot start an apptainer instance of {self.source!r}: {'; '.join(errors)}")

    def _check_out(self, task: Task) -> str:
        return check_out(self._exec_plain, task, self.workdir, self.source)

    def _exec_plain(self, script: str) -> subprocess.CompletedProcess:
        return _call([*exec_argv(self._resources.binary, self.name, "/"), "bash", "-c", script])

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        if self._resources.closed:
            raise SandboxError(f"apptainer sandbox {self.name} is closed")
        limit = self.config.timeout_s if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        pid_file = f"{TOOL_DIR}/pids/{uuid.uuid4().hex}"
        argv = exec_argv(self._resources.binary, self.name, self.workdir)
        argv += ["bash", "-c", exec_script(self.config, limit), "bash", command, pid_file]

        def kill_inside() -> None:
            with contextlib.suppress(SandboxInfraError):
                self._exec_plain(f'kill -KILL -- -"$(cat {pid_file})" 2>/dev/null')

        output, truncated, code, elapsed = run_exec(
            argv, stdin, limit, self.config.max_output_chars, self._resources.running, kill_inside
        )
        suspect = code in (126, 127, 255, -signal.SIGKILL)  # 255: apptainer's own FATAL errors
        if suspect and self.name not in _instances(self._resources.binary):
            raise SandboxInfraError(
                f"apptainer instance {self.name} of {self.source!r} is gone: {output.strip()[-500:]}"
            )
        return ExecResult(
            output=output,
            exit_code=code,
            timed_out=code in (137, -signal.SIGKILL) and elapsed >= limit,
            truncated=truncated,
            duration_s=elapsed,
        )

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ApptainerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
