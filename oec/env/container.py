"""Container sandboxes (docker, podman): one container of the task's image per rollout.

The task's image (``task.metadata["image"]``, SWE-bench layout: the repository at ``/testbed`` at
the base commit, its environment ready) must be present locally, unless ``env.pull`` allows a
pull. The container runs ``sleep infinity`` under an init (``--init``, which reaps what commands
leave behind) for the whole episode, with no network (``env.network: off``) and with CPU, memory
and pids limits; each command is one ``exec`` of bash in the task's repository (its
``metadata["workdir"]``, else ``env.workdir``: ``/testbed``) after ``env.setup`` (the conda ``testbed``
environment of SWE-bench images).

Timeouts are enforced inside the container: every command runs under ``timeout -s KILL``, which
kills the command's whole process group at the limit, and the group is killed when the command
ends too (background jobs die with it). The wrapper writes the group's id to a pid file; if the
exec has still not returned shortly after the limit (a stuck client), the group is killed from a
second exec and the client is killed too. Daemons that left the group (``setsid``) live on until
the container is removed, which ends them all.

Containers carry labels: ``oec.run`` (this process's run id), ``oec.rollout``
(``<instance>#<sample>``), ``oec.owner-pid``, ``oec.owner-start`` and ``oec.owner-host``. They are
removed on close, on garbage collection and at interpreter exit; a collector killed outright leaves
its containers behind, and the first sandbox of the next process on that host removes every
container whose owner process is gone.

Failures of the container itself (image missing, start failed, container died, exec broken) raise
:class:`~oec.env.base.SandboxInfraError`, so a verifier can tell them from the agent's failures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from oec.env.base import ExecResult, SandboxError, SandboxInfraError
from oec.env.cgroup import start_time
from oec.env.config import ApptainerConfig, ContainerConfig, PodmanConfig
from oec.env.output import OutputCapture, drain, feed
from oec.types import Task

log = logging.getLogger(__name__)

IMAGE_KEY = "image"
"""The key of ``Task.metadata`` naming the task's image."""

TOOL_DIR = "/oec"
"""Tool scripts and their state inside the container, outside the repository."""

RUN_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
"""This process's run: the ``oec.run`` label of every container it starts."""

_KILL_GRACE_S = 5.0  # after the limit, how long the exec may take to return before it is killed
_CLI_TIMEOUT_S = 60.0  # inspect, kill, rm: calls to the daemon that should take well under a second
_DRAIN_S = 1.0
_ENV = {
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "PYTHONDONTWRITEBYTECODE": "1",
    # Unbuffered so a command killed by its timeout still shows what it printed.
    "PYTHONUNBUFFERED": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "oec",
    "GIT_AUTHOR_EMAIL": "oec@localhost",
    "GIT_COMMITTER_NAME": "oec",
    "GIT_COMMITTER_EMAIL": "oec@localhost",
}


def task_image(task: Task) -> str:
    """The image of ``task``: ``metadata["image"]``, or a :class:`SandboxError` naming the task."""
    image = task.metadata.get(IMAGE_KEY)
    if not isinstance(image, str) or not image:
        raise SandboxError(
            f"task {task.instance_id!r}: metadata.{IMAGE_KEY} is missing; container runtimes run "
            "each task in its own image (embedded tasks: `make images`)"
        )
    return image


def cli(config: ContainerConfig) -> str:
    """The runtime's client: ``env.binary`` or the runtime's name on PATH."""
    name = config.binary or runtime_name(config)
    path = shutil.which(name)
    if path is None:
        raise SandboxInfraError(f"env.binary: {name!r} is not installed (runtime {runtime_name(config)})")
    return path


def runtime_name(config: ContainerConfig) -> str:
    return "podman" if isinstance(config, PodmanConfig) else "docker"


def _call(argv: list[str], timeout: float = _CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a client command to completion; a hung client is an infrastructure error."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SandboxInfraError(f"{shlex.join(argv[:3])} ... did not return within {timeout:g} s") from exc


def _owner_alive(pid: str, started: str) -> bool:
    return pid.isdigit() and start_time(int(pid)) == started


def remove_orphans(binary: str) -> list[str]:
    """Remove every container of this host whose owner process is gone (a collector killed
    outright); returns their ids. Containers of live processes, or of other hosts sharing the
    daemon, stay."""
    listed = _call(
        [
            binary, "ps", "-a", "--filter", "label=oec.owner-pid",
            "--filter", f"label=oec.owner-host={socket.gethostname()}",
            "--format", '{{.ID}} {{.Label "oec.owner-pid"}} {{.Label "oec.owner-start"}}',
        ]
    )  # fmt: skip
    if listed.returncode != 0:
        raise SandboxInfraError(f"cannot list containers: {listed.stderr.strip()}")
    orphans = []
    for line in listed.stdout.splitlines():
        cid, pid, started = [*line.split(), "", ""][:3]
        if not _owner_alive(pid, started):
            orphans.append(cid)
    if orphans:
        _call([binary, "rm", "-f", "-v", *orphans])
        log.info("removed %d containers of dead collectors", len(orphans))
    return orphans


_swept: set[str] = set()
_present: set[tuple[str, str]] = set()
_once_lock = threading.Lock()


def _remove_orphans_once(binary: str) -> None:
    with _once_lock:
        if binary in _swept:
            return
        _swept.add(binary)
    remove_orphans(binary)


def ensure_image(binary: str, image: str, pull: bool, instance_id: str) -> None:
    """Pre-flight: the image must be present locally, or pulled when ``env.pull`` allows it."""
    if (binary, image) in _present:
        return
    inspected = _call([binary, "image", "inspect", image])
    if inspected.returncode != 0:
        missing = ("no such image", "image not known")  # docker's and podman's words
        if not any(words in inspected.stderr.lower() for words in missing):  # no daemon, or it broke
            raise SandboxInfraError(
                f"task {instance_id!r}: cannot inspect image {image!r}: {inspected.stderr.strip()[-500:]}"
            )
        if not pull:
            raise SandboxInfraError(
                f"task {instance_id!r}: image {image!r} is not present locally; build or load it "
                "(embedded tasks: `make images`), or set env.pull=true to pull it"
            )
        pulled = _call([binary, "pull", "--quiet", image], timeout=3600)
        if pulled.returncode != 0:
            raise SandboxInfraError(f"task {instance_id!r}: cannot pull {image!r}: {pulled.stderr.strip()}")
    with _once_lock:
        _present.add((binary, image))


def run_exec(
    argv: list[str],
    stdin: str | None,
    limit: float,
    max_output_chars: int,
    running: set[subprocess.Popen],
    kill_inside: Callable[[], None],
) -> tuple[str, bool, int, float]:
    """One client ``exec`` (``argv``, wrapped by :func:`exec_script`) run to its end, for every
    container runtime: output captured and capped, ``stdin`` fed, the client tracked in ``running``
    (so closing the sandbox kills it). Should the client still run ``_KILL_GRACE_S`` past ``limit``,
    the command is killed inside (``kill_inside``) and the client's session from outside.
    Returns (output, truncated, exit code, seconds)."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxInfraError(f"cannot run {argv[0]} exec: {exc}") from exc
    running.add(process)
    capture = OutputCapture(max_output_chars)
    reader = threading.Thread(target=drain, args=(process.stdout, capture), daemon=True)
    reader.start()
    if stdin is not None:
        threading.Thread(target=feed, args=(process.stdin, stdin.encode()), daemon=True).start()
    try:
        process.wait(timeout=limit + _KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_inside()
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        reader.join(_DRAIN_S)
        running.discard(process)
    output, truncated = capture.result()
    return output, truncated, process.returncode, time.monotonic() - started


def check_out(
    exec_plain: Callable[[str], subprocess.CompletedProcess], task: Task, workdir: str, image: str
) -> str:
    """Make the tool dir and put the repository at ``workdir`` at the task's base commit (images
    hold it already; a differing HEAD is checked out), through a runtime's ``exec_plain``; returns
    the full commit id. A container runtime's first command in a new sandbox."""
    wanted = task.base_commit or "HEAD"
    script = (
        f"mkdir -p {TOOL_DIR}/pids && cd {shlex.quote(workdir)} && "
        f"sha=$(git rev-parse --verify --quiet {shlex.quote(wanted + '^{commit}')}) && "
        '{ [ "$(git rev-parse HEAD)" = "$sha" ] || git checkout --quiet --detach "$sha"; } && echo "$sha"'
    )
    result = exec_plain(script)
    if result.returncode != 0:
        raise SandboxInfraError(
            f"task {task.instance_id!r}: image {image!r} has no git repository at "
            f"{workdir} holding {wanted}: {(result.stdout + result.stderr).strip()[-500:]}"
        )
    return result.stdout.strip().splitlines()[-1]


def task_workdir(task: Task, config: ContainerConfig | ApptainerConfig) -> str:
    """The repository inside ``task``'s image: its ``metadata["workdir"]`` (rows tasks,
    :func:`oec.tasks.rows.workdir_of`), else ``env.workdir``."""
    return str(task.metadata.get("workdir") or config.workdir)


def run_argv(
    config: ContainerConfig, binary: str, image: str, name: str, rollout: str, workdir: str
) -> list[str]:
    """The ``run`` command line of one sandbox's container."""
    argv = [binary, "run", "--detach", "--init", "--name", name, "--workdir", workdir]
    labels = {
        "oec.run": RUN_ID,
        "oec.rollout": rollout,
        "oec.owner-pid": str(os.getpid()),
        "oec.owner-start": start_time(os.getpid()) or "",
        "oec.owner-host": socket.gethostname(),
    }
    argv += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    argv += [arg for key, value in _ENV.items() for arg in ("--env", f"{key}={value}")]
    if config.network == "off":
        argv += ["--network", "none"]
    if config.cpus is not None:
        argv += ["--cpus", f"{config.cpus:g}"]
    if config.memory_mb is not None:
        argv += ["--memory", f"{config.memory_mb}m", "--memory-swap", f"{config.memory_mb}m"]
    if config.pids is not None:
        argv += ["--pids-limit", str(config.pids)]
    if isinstance(config, PodmanConfig):
        argv += podman_ulimits(config.pids)
    return [*argv, "--entrypoint", "sleep", image, "infinity"]


def podman_ulimits(pids: int | None) -> list[str]:
    """Explicit ``--ulimit`` for podman, whose defaults (open files and processes far above the
    caller's own) a runtime without CAP_SYS_RESOURCE may not set: podman 4.3 as root inside a
    container failed every start with runc's "cannot set rlimits". The container gets this
    process's open-files limit and, as processes, ``env.pids`` (else this process's limit)."""
    argv = []
    _, files = resource.getrlimit(resource.RLIMIT_NOFILE)
    if files != resource.RLIM_INFINITY:
        argv += ["--ulimit", f"nofile={files}:{files}"]
    _, processes = resource.getrlimit(resource.RLIMIT_NPROC)
    if pids is not None:
        processes = pids if processes == resource.RLIM_INFINITY else min(pids, processes)
    if processes != resource.RLIM_INFINITY:
        argv += ["--ulimit", f"nproc={processes}:{processes}"]
    return argv


def exec_script(config: ContainerConfig | ApptainerConfig, limit: float) -> str:
    """The bash wrapper of one command (``$1`` the command, ``$2`` the pid file).

    ``timeout`` leads its own process group; its id goes to the pid file (for a kill from outside)
    and the whole group is killed once the command ends, so background jobs die with it, as in the
    local sandbox. ``<&0`` keeps stdin, which a background job would otherwise lose.
    """
    return "\n".join(
        [
            config.setup,
            f'timeout -s KILL {limit:.3f} bash -c "$1" <&0 &',
            'echo $! > "$2"',
            "wait $! 2>/dev/null",  # no "Killed" job notice in the command's output
            "code=$?",
            "kill -KILL -- -$! 2>/dev/null",
            "exit $code",
        ]
    )


@dataclass
class _Resources:
    """What must be released; shared with the finalizer, so it must not refer to the sandbox."""

    binary: str
    name: str
    running: set[subprocess.Popen] = field(default_factory=set)
    closed: bool = False


def _release(resources: _Resources) -> None:
    resources.closed = True
    for process in list(resources.running):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(SandboxInfraError):
        _call([resources.binary, "rm", "-f", "-v", resources.name])


class ContainerSandbox:
    """A sandbox (see :class:`oec.env.base.Sandbox`) in a container of the task's image."""

    def __init__(self, task: Task, config: ContainerConfig, sample_index: int | None = None) -> None:
        self.config = config
        self.image = task_image(task)
        self.workdir = task_workdir(task, config)
        self.tool_dir = TOOL_DIR
        binary = cli(config)
        _remove_orphans_once(binary)
        ensure_image(binary, self.image, config.pull, task.instance_id)
        self.name = f"oec-{uuid.uuid4().hex[:16]}"
        self._resources = _Resources(binary, self.name)
        self._finalizer = weakref.finalize(self, _release, self._resources)
        rollout = task.instance_id if sample_index is None else f"{task.instance_id}#{sample_index}"
        started = time.monotonic()
        try:
            self._start(run_argv(config, binary, self.image, self.name, rollout, self.workdir))
            self.base_commit = self._check_out(task)
        except BaseException:
            self.close()
            raise
        log.debug("container %s of %s ready in %.3f s", self.name, self.image, time.monotonic() - started)

    def _start(self, argv: list[str]) -> None:
        """Create and start the container, retrying a failed or slow start a bounded number of times."""
        binary = self._resources.binary
        errors = []
        for attempt in range(1, self.config.start_attempts + 1):
            try:
                result = _call(argv, timeout=self.config.start_timeout_s)
                if result.returncode == 0:
                    return
                errors.append(f"attempt {attempt}: {result.stderr.strip()}")
            except SandboxInfraError as exc:
                errors.append(f"attempt {attempt}: {exc}")
            _call([binary, "rm", "-f", "-v", self.name])
        raise SandboxInfraError(f"cannot start a container of {self.image!r}: {'; '.join(errors)}")

    def _check_out(self, task: Task) -> str:
        return check_out(self._exec_plain, task, self.workdir, self.image)

    def _exec_plain(self, script: str) -> subprocess.CompletedProcess:
        return _call([self._resources.binary, "exec", self.name, "bash", "-c", script])

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        if self._resources.closed:
            raise SandboxError(f"container sandbox {self.name} is closed")
        limit = self.config.timeout_s if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        pid_file = f"{TOOL_DIR}/pids/{uuid.uuid4().hex}"
        argv = [self._resources.binary, "exec", *(["--interactive"] if stdin is not None else [])]
        argv += [self.name, "bash", "-c", exec_script(self.config, limit), "bash", command, pid_file]
        output, truncated, code, elapsed = run_exec(
            argv, stdin, limit, self.config.max_output_chars, self._resources.running,
            lambda: self._kill_inside(pid_file),
        )  # fmt: skip
        self._check_alive(code, output)
        return ExecResult(
            output=output,
            exit_code=code,
            # `timeout -s KILL` ends the command with 137 (128 + SIGKILL) once the limit is reached.
            timed_out=code in (137, -signal.SIGKILL) and elapsed >= limit,
            truncated=truncated,
            duration_s=elapsed,
        )

    def _kill_inside(self, pid_file: str) -> None:
        with contextlib.suppress(SandboxInfraError):
            self._exec_plain(f'kill -KILL -- -"$(cat {pid_file})" 2>/dev/null')

    def _check_alive(self, code: int, output: str) -> None:
        """Raise :class:`SandboxInfraError` when the exec failed because of the container itself."""
        suspect = code in (125, 126, 127, -signal.SIGKILL) or "Error response from daemon" in output
        if code == 0 or not suspect:
            return
        status_format = "{{.State.Status}} {{.State.OOMKilled}}"
        state = _call([self._resources.binary, "inspect", "--format", status_format, self.name])
        status = state.stdout.strip()
        if state.returncode != 0 or not status.startswith("running"):
            raise SandboxInfraError(
                f"container {self.name} of {self.image!r} is gone or stopped "
                f"({status or state.stderr.strip()}): {output.strip()[-500:]}"
            )
        if code in (125, 126) and "exec" in output.lower():
            raise SandboxInfraError(f"exec in container {self.name} failed: {output.strip()[-500:]}")

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ContainerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
