"""Local sandbox: a fresh git working copy in a temporary directory, commands as local processes.

Each sandbox clones the task's snapshot repository and checks out the base commit. Refs that are
not ancestors of the base commit are deleted, so ``git log --all`` cannot show a future fix (their
objects stay in the object store, which only a determined search would find; snapshots should hold
no future commits).

Isolation (``env.isolation``, default ``bwrap``; what bwrap shows a command is in
:mod:`oec.env.bwrap`):

- **What a command can see.** Under bwrap only the system dirs, the task environment
  (``env.task_env``: a virtualenv with pytest, first on PATH), this sandbox's ``repo/``, ``tools/``,
  ``home/`` and ``tmp/`` (writable) and the snapshot's object store (read-only) exist. The project
  checkout, its interpreter and ``oec`` (gold patches, hidden tests), the task cache and the host's
  ``/tmp`` and ``/run`` (unix sockets) do not.
- **The snapshot stays pristine.** Under bwrap the clone borrows the snapshot's objects
  (``git clone --shared``, cheap) and they are mounted read-only, so writing through
  ``.git/objects/info/alternates`` fails; without bwrap the clone copies them (``--no-hardlinks``).
- **Nothing outlives its sandbox.** Each command runs in its own PID namespace: when it ends, when
  it is killed at its timeout, or when the collector dies (even by SIGKILL), the kernel kills every
  process it started, daemons included. Without bwrap, a command's process group, every process
  carrying the sandbox's marker variable and (as root) its cgroup are killed instead; without a
  cgroup either, a daemon that clears its environment and leaves the group escapes that.
- **A process cap that binds root.** Where a pids cgroup can be made (:mod:`oec.env.cgroup`, as
  root) each sandbox gets one capped at ``limits.processes``; ``ulimit`` sets the other limits.
- **Network.** With ``network: off`` commands get a network namespace with only loopback.
- **Debris.** Each root holds ``owner.lock``, flocked by the process that made it for the
  sandbox's life. The first sandbox of a process in a parent directory removes every
  ``oec-sandbox-*`` root there whose lock nobody holds (its owner died), and every pids cgroup
  whose owner (named in the cgroup's name: pid and start time) is dead.

Where the machine cannot provide one of these, one warning per process says which. Commands run
as the calling user in every case; container runtimes provide the stronger boundary.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from oec.env import cgroup
from oec.env.base import ExecResult, SandboxError
from oec.env.bwrap import bwrap_argv, bwrap_available
from oec.env.config import ResourceLimits, SandboxConfig
from oec.env.output import OutputCapture, drain, feed

log = logging.getLogger(__name__)

MARKER_VAR = "OEC_SANDBOX"
"""Environment variable naming the sandbox in every process it starts; used to find stragglers."""

ROOT_PREFIX = "oec-sandbox-"
OWNER_LOCK = "owner.lock"
"""In each root: flocked by the owning process while the sandbox lives."""

DEFAULT_TASK_ENV = Path(__file__).resolve().parents[2] / ".task-env"
"""Where ``make install`` puts the task environment: ``.task-env`` in the project checkout."""

_SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_DRAIN_S = 1.0  # how long to wait for the output pipe to close once the command's group is dead

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` the first time ``key`` comes up in this process: one warning per lost guarantee."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


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


@dataclass(frozen=True)
class TaskEnv:
    """The task's Python: ``bin`` goes first on PATH; ``mounts`` are bound read-only under bwrap."""

    bin: str
    mounts: tuple[str, ...]


def find_task_env(path: str | None) -> TaskEnv | None:
    """The environment at ``path`` (default :data:`DEFAULT_TASK_ENV`), or None + one warning.

    A virtualenv's ``python`` is a link into its base installation, which must be visible too.
    """
    env = os.path.realpath(path or DEFAULT_TASK_ENV)
    python = os.path.join(env, "bin", "python")
    if not os.access(python, os.X_OK):
        _warn_once(
            f"task_env:{env}",
            "env.task_env: no Python environment at %s (`make install` creates it): commands in "
            "local sandboxes get only the system's Python, without pytest.",
            env,
        )
        return None
    base = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    mounts = (env,) if base == env or base.startswith("/usr") else (env, base)
    return TaskEnv(os.path.join(env, "bin"), mounts)


def _hold_owner_lock(root: str, token: str) -> int:
    """Create ``root/owner.lock`` already flocked (made under another name, locked, then renamed,
    so no sweeper can ever see it unlocked while its owner lives); returns the open descriptor."""
    pending = os.path.join(root, f".{OWNER_LOCK}.{token}")
    fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(pending, os.path.join(root, OWNER_LOCK))
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale_roots(parent: str) -> list[str]:
    """Remove every sandbox root in ``parent`` whose owner is dead (its lock is free); returns the
    roots removed. Roots without a lock file (being created this instant, or made before owner
    locks existed) are left alone."""
    removed = []
    with os.scandir(parent) as entries:
        roots = [e.path for e in entries if e.name.startswith(ROOT_PREFIX) and not e.is_symlink()]
    for root in roots:
        try:
            fd = os.open(os.path.join(root, OWNER_LOCK), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            _rmtree(root)
            removed.append(root)
        except OSError as exc:  # debris must not stop a new sandbox
            log.warning("cannot remove the stale sandbox root %s: %s", root, exc)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d sandbox roots of dead processes from %s", len(removed), parent)
    return removed


_swept: set[str] = set()
_swept_lock = threading.Lock()


def _remove_debris_once(parent: str) -> None:
    """At a process's first sandbox in ``parent``: its stale roots, and orphan cgroups."""
    with _swept_lock:
        if parent in _swept:
            return
        _swept.add(parent)
    remove_stale_roots(parent)
    cgroups = cgroup.pids_parent()
    if cgroups is not None:
        orphans = cgroup.remove_orphans(cgroups)
        if orphans:
            log.info("removed %d pids cgroups of dead processes from %s", len(orphans), cgroups)


@dataclass
class _Resources:
    """What must be released; shared with the finalizer, so it must not refer to the sandbox."""

    root: str
    token: str
    lock_fd: int
    cgroup: str | None = None
    running: set[int] = field(default_factory=set)
    closed: bool = False


def _release(resources: _Resources) -> None:
    resources.closed = True
    for pgid in list(resources.running):
        _kill_group(pgid)
    kill_marked(resources.token)
    try:
        if resources.cgroup is not None:
            cgroup.remove(resources.cgroup)
        _rmtree(resources.root)
    finally:
        os.close(resources.lock_fd)


class LocalSandbox:
    """A sandbox (see :class:`oec.env.base.Sandbox`) backed by a temporary directory and processes.

    Layout of the temporary root: ``repo/`` (the working copy, ``workdir``), ``tools/``
    (``tool_dir``), ``home/`` (``$HOME``) and ``tmp/`` (``$TMPDIR``), all removed on close, and
    ``owner.lock``, which commands cannot see under bwrap.
    """

    def __init__(self, snapshot: str, base_commit: str, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        started = time.monotonic()
        parent = os.path.abspath(self.config.parent_dir or tempfile.gettempdir())
        os.makedirs(parent, exist_ok=True)
        _remove_debris_once(parent)
        self.root = tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=parent)
        token = uuid.uuid4().hex
        try:
            lock_fd = _hold_owner_lock(self.root, token)
        except BaseException:
            _rmtree(self.root)
            raise
        self._resources = _Resources(self.root, token, lock_fd)
        # Runs on close(), on garbage collection and at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _release, self._resources)
        self.workdir = os.path.join(self.root, "repo")
        self.tool_dir = os.path.join(self.root, "tools")
        self.base_commit = base_commit
        self._setup_gitconfig = os.path.join(self.root, "setup.gitconfig")
        try:
            for name in ("tools", "home", "tmp"):
                os.mkdir(os.path.join(self.root, name))
            self._bwrap = self._use_bwrap()
            self._task_env = find_task_env(self.config.task_env)
            self._env = self._clean_env()
            self.base_commit = self._checkout(snapshot, base_commit)
            self._resources.cgroup = self._make_cgroup()
            self._argv = self._launcher()
        except BaseException:
            self.close()
            raise
        log.debug("sandbox %s ready in %.3f s", self.root, time.monotonic() - started)

    def _use_bwrap(self) -> bool:
        if self.config.isolation == "none":
            return False
        if bwrap_available():
            return True
        _warn_once(
            "bwrap",
            "env.isolation=bwrap: bubblewrap is not installed or cannot create namespaces here "
            "(`apt-get install bubblewrap`; unprivileged users need user namespaces). Commands in "
            "local sandboxes can read every file of the user (oec, gold patches, hidden tests), "
            "share /tmp and host unix sockets, and a daemon that leaves the process group and "
            "clears its environment outlives its sandbox.",
        )
        return False

    def _make_cgroup(self) -> str | None:
        limit = self.config.limits.processes
        parent = cgroup.pids_parent() if limit is not None else None
        if parent is None:
            if limit is not None and os.geteuid() == 0:
                _warn_once(
                    "cgroup",
                    "env.limits.processes: no writable pids cgroup (v1 %s or v2 %s); as root the "
                    "process limit (ulimit -u) does not bind, so a fork bomb is not contained.",
                    cgroup.V1_PIDS,
                    cgroup.V2_ROOT,
                )
            return None
        return cgroup.create(parent, self._resources.token, limit)

    def _clean_env(self) -> dict[str, str]:
        path = [self._task_env.bin, *_SYSTEM_PATH] if self._task_env else _SYSTEM_PATH
        return {
            # The task environment first, so `python` and `pytest` are the task's, not the project's.
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
            # Plugins installed in a task environment are not necessarily the task's and cost time
            # at every pytest start; tasks that need plugins name them with -p.
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
        """The argv before the command: cgroup join, isolation prefix, bash, and a prologue that
        execs the command."""
        bash = shutil.which("bash", path=os.pathsep.join(_SYSTEM_PATH))
        if bash is None:
            raise SandboxError("bash is not installed; the local sandbox runs every command with it")
        prologue = _ulimits(self.config.limits)
        network_off = self.config.network == "off"
        if self._bwrap:
            readonly = [*(self._task_env.mounts if self._task_env else ()), *self._borrowed_objects()]
            writable = [os.path.join(self.root, name) for name in ("repo", "tools", "home", "tmp")]
            prefix = bwrap_argv(
                readonly=readonly, writable=writable, chdir=self.workdir, network=not network_off
            )
        else:
            isolation = network_isolation() if network_off else None
            if isolation is not None and isolation.loopback:
                prologue.insert(0, shlex.join(isolation.loopback) + " >/dev/null 2>&1")
            prefix = list(isolation.prefix) if isolation else []
        join = cgroup.join_argv(self._resources.cgroup) if self._resources.cgroup else []
        # exec'ing a second bash keeps the command's own shell pristine ($0, line numbers in errors).
        script = "\n".join([*prologue, f'exec -a bash {shlex.quote(bash)} -c "$1"'])
        return [*join, *prefix, bash, "-c", script, "bash"]

    def _borrowed_objects(self) -> list[str]:
        """The object directories the clone borrows (``git clone --shared``), to mount read-only."""
        alternates = Path(self.workdir, ".git", "objects", "info", "alternates")
        if not alternates.exists():
            return []
        objects = os.path.join(self.workdir, ".git", "objects")
        lines = alternates.read_text().splitlines()
        return [os.path.realpath(os.path.join(objects, line)) for line in lines if line]

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
            # Borrowed objects are safe only when bwrap mounts them read-only; otherwise copy them.
            share = "--shared" if self._bwrap else "--no-hardlinks"
            self._git("clone", "--quiet", share, "--no-checkout", snapshot, self.workdir, cwd=self.root)
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
        reader = threading.Thread(target=drain, args=(process.stdout, capture), daemon=True)
        reader.start()
        if stdin is not None:
            threading.Thread(target=feed, args=(process.stdin, stdin.encode()), daemon=True).start()
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
                if self._resources.cgroup is not None:
                    cgroup.kill_members(self._resources.cgroup)
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
