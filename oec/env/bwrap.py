"""The bubblewrap command line that gives a sandbox's commands their own view of the machine.

Under ``bwrap`` a command sees a fresh root holding only:

- the system (``/usr`` and the ``/bin``, ``/lib``... that point into it) and a short list of
  ``/etc`` entries the dynamic linker, git, Python and TLS need (:data:`ETC_ENTRIES`), read-only;
- paths the caller names read-only (the task environment, the snapshot's object store);
- paths the caller names writable (the sandbox's working copy, tools, home and temp dirs);
- a fresh ``/proc`` and ``/dev``, and an empty private ``/tmp``.

Everything else (the project checkout and its interpreter, ``$HOME``, the task cache, ``/run``
with its unix sockets, ``/sys``) is simply absent. The command gets its own mount, PID and IPC
namespaces, and a network namespace with only loopback when the network is off. bwrap's PID 1
ends the namespace when the command exits, so every descendant dies with it (a kernel guarantee,
not a search), and ``--die-with-parent`` ends it when the process that started it dies, even by
SIGKILL. All capabilities are dropped, so root inside cannot remount what is read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterable

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "passwd",
    "protocols",
    "services",
    "ssl",
)
"""What of ``/etc`` commands see: the linker cache, users and groups (``whoami``, git's ident),
name-service config, CA certificates, time zone. With the network on, ``resolv.conf`` too."""


def _system_binds(network: bool) -> list[str]:
    argv = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    entries = [*ETC_ENTRIES, "resolv.conf"] if network else ETC_ENTRIES
    for name in entries:
        path = os.path.join("/etc", name)
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    return argv


def bwrap_argv(*, readonly: Iterable[str], writable: Iterable[str], chdir: str, network: bool) -> list[str]:
    """The argv prefix that runs a command in the view described in the module docstring."""
    bwrap = shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin") or "bwrap"
    argv = [bwrap, *_system_binds(network), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in readonly:
        argv += ["--ro-bind", path, path]
    for path in writable:
        argv += ["--bind", path, path]
    argv += ["--chdir", chdir, "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--cap-drop", "ALL"]
    if not network:
        argv.append("--unshare-net")
    return [*argv, "--"]


def _works() -> bool:
    argv = bwrap_argv(readonly=(), writable=(), chdir="/", network=False)
    try:
        return subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_probe_lock = threading.Lock()
_probed: list[bool] = []


def bwrap_available() -> bool:
    """Whether bwrap is installed and can create its namespaces here; probed once per process."""
    with _probe_lock:
        if not _probed:
            _probed.append(_works())
        return _probed[0]
