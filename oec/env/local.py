"""Local sandbox: a fresh git working copy in a temporary directory, commands as local processes.

Each sandbox clones the task's snapshot repository (``git clone --shared``: objects are borrowed,
not copied, so creation costs little more than writing the working tree) and checks out the base
commit. Refs that are not ancestors of the base commit are deleted, so ``git log --all`` cannot
show a future fix; their objects stay reachable through the borrowed object store, which only a
determined search would find (snapshots should hold no future commits).

Every command is ``bash -c`` in its own session and process group, with a clean environment,
stdout and stderr merged into one bounded capture (:mod:`oec.env.output`), and resource limits.
When the command ends, whatever it left running in its group is killed; on a timeout the group is
killed with SIGKILL and so is every process carrying this sandbox's marker variable (processes
that called ``setsid`` to leave the group). With ``network: off`` commands run in a new network
namespace (``unshare --net``, or ``bwrap --unshare-net``) with only a loopback interface.

This runtime isolates the network and the working copy, not the file system: commands run as the
calling user and could touch any file that user can. Use it for embedded tasks, tests and
development; container runtimes provide the stronger boundary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field

from oec.env.base import ExecResult
from oec.env.config import ResourceLimits, SandboxConfig
from oec.env.output import OutputCapture

log = logging.getLogger(__name__)

MARKER_VAR = "OEC_SANDBOX"
"""Environment variable naming the sandbox in every process it starts; used to find stragglers."""

_SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_DRAIN_S = 1.0  # how long to wait for the output pipe to close once the command's group is dead


class SandboxError(RuntimeError):
    """The sandbox could not be created or used; the message names the snapshot or the step."""


@dataclass(frozen=True)
class NetworkIsolation:
    """How to start a command without network: an argv prefix and, if needed, a loopback command."""

    prefix: tuple[str, ...]
    loopback: tuple[str, ...] = ()


def _isolation_candidates() -> list[NetworkIsolation]:
    ip = shutil.which("ip") or shutil.which("ip", path=os.pathsep.join(_SYSTEM_PATH))
    loopback = (ip, "link", "set", "lo", "up") if ip else ()
    candidates = []
    if os.geteuid() == 0:
        candidates.append(NetworkIsolation(("unshare", "--net"), loopback))
    candidates.append(NetworkIsolation(("unshare", "--net", "--map-root-user"), loopback))
    # bwrap brings the loopback interface up itself.
    candidates.append(
        NetworkIsolation(("bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent"))
    )
    return candidates


def probe_network_isolation(candidates: list[NetworkIsolation]) -> NetworkIsolation | None:
    """The first candidate that works on this machine (with loopback if it can), else None + a warning."""
    for candidate in candidates:
        if shutil.which(candidate.prefix[0]) is None or not _succeeds([*candidate.prefix, "true"]):
            continue
        if candidate.loopback and not _succeeds([*candidate.prefix, *candidate.loopback]):
            return NetworkIsolation(candidate.prefix)
        return candidate
    tried = "; ".join(" ".join(c.prefix) for c in candidates)
    log.warning(
        "Network isolation is unavailable (tried: %s): commands in local sandboxes can reach the "
        "network. Install bubblewrap or allow unprivileged user namespaces to cut it.",
        tried,
    )
    return None


def _succeeds(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_probe_lock = threading.Lock()
_probed: list[NetworkIsolation | None] = []


def network_isolation() -> NetworkIsolation | None:
    """Probe once per process (thread-safe) how to cut the network; None if nothing works."""
    with _probe_lock:
        if not _probed:
            _probed.append(probe_network_isolation(_isolation_candidates()))
        return _probed[0]


def _ulimits(limits: ResourceLimits) -> list[str]:
    # bash counts -v and -f in KiB. A limit above the current hard limit cannot be set; the
    # stricter existing limit then stays, which is why errors are silenced.
    kib = 1024
    commands = []
    if limits.address_space_mb is not None:
        commands.append(f"ulimit -v {limits.address_space_mb * kib} 2>/dev/null")
    if limits.file_size_mb is not None:
        commands.append(f"ulimit -f {limits.file_size_mb * kib} 2>/dev/null")
    if limits.processes is not None:
        commands.append(f"ulimit -u {limits.processes} 2>/dev/null")
    return commands


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_marked(token: str) -> int:
    """SIGKILL every process whose environment carries ``MARKER_VAR=token``; returns how many.

    Repeats until a pass finds none, so children forked during a pass are caught by the next.
    """
    marker = f"{MARKER_VAR}={token}".encode()
    killed = 0
    for _ in range(20):
        found = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as handle:
                    environ = handle.read()
                if marker in environ.split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
                    found += 1
            except OSError:
                continue
        if not found:
            break
        killed += found
    return killed


def _rmtree(path: str) -> None:
    def make_writable_and_retry(func, failed_path, _exc_info) -> None:
        # Tools such as Go's module cache leave read-only directories behind.
        parent = os.path.dirname(failed_path)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, os.stat(failed_path).st_mode | stat.S_IRWXU)
        func(failed_path)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=make_writable_and_retry)


@dataclass
class _Resources:
    """What must be released; shared with the finalizer, so it must not refer to the sandbox."""

    root: str
    token: str
    running: set[int] = field(default_factory=set)
    closed: bool = False


def _release(resources: _Resources) -> None:
    resources.closed = True
    for pgid in list(resources.running):
        _kill_group(pgid)
    kill_marked(resources.token)
    _rmtree(resources.root)


class LocalSandbox:
    """A sandbox (see :class:`oec.env.base.Sandbox`) backed by a temporary directory and processes.

    Layout of the temporary root: ``repo/`` (the working copy, ``workdir``), ``tools/``
    (``tool_dir``), ``home/`` (``$HOME``) and ``tmp/`` (``$TMPDIR``), all removed on close.
    """

    def __init__(self, snapshot: str, base_commit: str, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        started = time.monotonic()
        parent = self.config.parent_dir
        if parent is not None:
            os.makedirs(parent, exist_ok=True)
        self.root = os.path.abspath(tempfile.mkdtemp(prefix="oec-sandbox-", dir=parent))
        self._resources = _Resources(self.root, uuid.uuid4().hex)
        # Runs on close(), on garbage collection and at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _release, self._resources)
        self.workdir = os.path.join(self.root, "repo")
        self.tool_dir = os.path.join(self.root, "tools")
        self.base_commit = base_commit
        self._setup_gitconfig = os.path.join(self.root, "setup.gitconfig")
        try:
            for name in ("tools", "home", "tmp"):
                os.mkdir(os.path.join(self.root, name))
            self._env = self._clean_env()
            self._argv = self._launcher()
            self.base_commit = self._checkout(snapshot, base_commit)
        except BaseException:
            self.close()
            raise
        log.debug("sandbox %s ready in %.3f s", self.root, time.monotonic() - started)

    def _clean_env(self) -> dict[str, str]:
        path = [os.path.dirname(sys.executable), *_SYSTEM_PATH]
        return {
            # The project interpreter first, so `python` and `pytest` are the project's.
            "PATH": os.pathsep.join(dict.fromkeys(path)),
            "HOME": os.path.join(self.root, "home"),
            "TMPDIR": os.path.join(self.root, "tmp"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "PYTHONDONTWRITEBYTECODE": "1",
            # Unbuffered so a command killed by its timeout still shows what it printed.
            "PYTHONUNBUFFERED": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # The project venv's own pytest plugins (hydra, anyio...) are not the task's and cost
            # about a second per pytest start; tasks that need plugins name them with -p.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "oec",
            "GIT_AUTHOR_EMAIL": "oec@localhost",
            "GIT_COMMITTER_NAME": "oec",
            "GIT_COMMITTER_EMAIL": "oec@localhost",
            MARKER_VAR: self._resources.token,
        }

    def _launcher(self) -> list[str]:
        """The argv before the command: isolation prefix, bash, and a prologue that execs the command."""
        bash = shutil.which("bash") or shutil.which("bash", path=self._env["PATH"])
        if bash is None:
            raise SandboxError("bash is not installed; the local sandbox runs every command with it")
        isolation = network_isolation() if self.config.network == "off" else None
        prologue = _ulimits(self.config.limits)
        if isolation is not None and isolation.loopback:
            prologue.insert(0, shlex.join(isolation.loopback) + " >/dev/null 2>&1")
        prefix = list(isolation.prefix) if isolation else []
        # exec'ing a second bash keeps the command's own shell pristine ($0, line numbers in errors).
        script = "\n".join([*prologue, f'exec -a bash {shlex.quote(bash)} -c "$1"'])
        return [*prefix, bash, "-c", script, "bash"]

    def _git(self, *args: str, cwd: str | None = None, stdin: str | None = None) -> str:
        try:
            result = subprocess.run(
                ["git", *args],
                cwd=cwd or self.workdir,
                env={**self._env, "GIT_CONFIG_GLOBAL": self._setup_gitconfig},
                input=stdin,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError as exc:
            raise SandboxError("git is not installed; the local sandbox clones snapshots with it") from exc
        if result.returncode != 0:
            raise SandboxError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _checkout(self, snapshot: str, base_commit: str) -> str:
        if not os.path.isdir(snapshot):
            raise SandboxError(f"snapshot repository {snapshot!r} does not exist")
        # Snapshots may belong to another user (a shared data directory). Only a global config can
        # trust them: clone's upload-pack ignores `git -c`. The agent's own git never sees this file.
        with open(self._setup_gitconfig, "w") as handle:
            handle.write("[safe]\n\tdirectory = *\n")
        try:
            return self._clone(snapshot, base_commit)
        finally:
            os.remove(self._setup_gitconfig)

    def _clone(self, snapshot: str, base_commit: str) -> str:
        try:
            self._git("clone", "--quiet", "--shared", "--no-checkout", snapshot, self.workdir, cwd=self.root)
            sha = self._git("rev-parse", "--verify", "--quiet", f"{base_commit}^{{commit}}").strip()
        except SandboxError as exc:
            raise SandboxError(f"cannot use snapshot {snapshot!r} at {base_commit!r}: {exc}") from exc
        self._git("checkout", "--quiet", "--detach", sha)
        self._git("remote", "remove", "origin")
        future = self._git("for-each-ref", f"--no-merged={sha}", "--format=%(refname)").split()
        if future:
            self._git("update-ref", "--stdin", stdin="".join(f"delete {ref}\n" for ref in future))
        return sha

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> ExecResult:
        if self._resources.closed:
            raise SandboxError(f"sandbox {self.root} is closed")
        limit = self.config.timeout_s if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                [*self._argv, command],
                cwd=self.workdir,
                env=self._env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:  # e.g. an earlier command deleted the working copy itself
            raise SandboxError(f"cannot start a command in {self.workdir}: {exc}") from exc
        self._resources.running.add(process.pid)
        capture = OutputCapture(self.config.max_output_chars)
        reader = threading.Thread(target=_drain, args=(process.stdout, capture), daemon=True)
        reader.start()
        if stdin is not None:
            threading.Thread(target=_feed, args=(process.stdin, stdin.encode()), daemon=True).start()
        timed_out = False
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Background jobs die with the command; after a timeout so do escaped descendants.
            _kill_group(process.pid)
            if timed_out:
                kill_marked(self._resources.token)
            process.wait()
            reader.join(_DRAIN_S)
            if reader.is_alive():
                kill_marked(self._resources.token)
                reader.join(_DRAIN_S)
            self._resources.running.discard(process.pid)
        output, truncated = capture.result()
        return ExecResult(
            output=output,
            exit_code=process.returncode,
            timed_out=timed_out,
            truncated=truncated,
            duration_s=time.monotonic() - started,
        )

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drain(pipe, capture: OutputCapture) -> None:
    with pipe:
        while chunk := os.read(pipe.fileno(), 65536):
            capture.feed(chunk)


def _feed(pipe, data: bytes) -> None:
    # The command may exit (or be killed) without reading its input.
    try:
        with pipe:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
