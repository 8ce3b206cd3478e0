"""Per-sandbox pids cgroups: a process cap that binds root too, and a list of every process.

``ulimit -u`` counts all processes of the user and Linux ignores it for root, so as root a fork
bomb in one sandbox could exhaust the machine. A pids cgroup counts only the processes placed in
it (and their descendants) and binds every user. Each sandbox gets ``<hierarchy>/oec/<token>``
with ``pids.max`` set; every command joins it before it starts (:func:`join_argv`), and on close
whatever is left in it is killed and the cgroup removed.

The cgroup v1 ``pids`` controller (``/sys/fs/cgroup/pids``) is used when it is mounted, else
cgroup v2 (``/sys/fs/cgroup``) when ``pids`` is among its controllers. Creating cgroups needs
write access to the hierarchy (root, or a delegated subtree); :func:`pids_parent` returns None
where that fails, and the caller logs what is lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

V1_PIDS = "/sys/fs/cgroup/pids"
V2_ROOT = "/sys/fs/cgroup"
PARENT_NAME = "oec"
"""Every sandbox's cgroup lives under ``<hierarchy>/oec``, so they are easy to find and to tell apart."""


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _find_parent() -> str | None:
    if os.path.exists(os.path.join(V1_PIDS, "cgroup.procs")):
        parent = os.path.join(V1_PIDS, PARENT_NAME)
        os.makedirs(parent, exist_ok=True)
        return parent
    controllers = os.path.join(V2_ROOT, "cgroup.controllers")
    if os.path.exists(controllers) and "pids" in Path(controllers).read_text().split():
        # v2 hands a controller to children only through each ancestor's subtree_control.
        _write(os.path.join(V2_ROOT, "cgroup.subtree_control"), "+pids")
        parent = os.path.join(V2_ROOT, PARENT_NAME)
        os.makedirs(parent, exist_ok=True)
        _write(os.path.join(parent, "cgroup.subtree_control"), "+pids")
        return parent
    return None


_probe_lock = threading.Lock()
_probed: list[str | None] = []


def pids_parent() -> str | None:
    """The directory under which sandbox cgroups are made, or None; probed once per process."""
    with _probe_lock:
        if not _probed:
            try:
                _probed.append(_find_parent())
            except OSError:
                _probed.append(None)
        return _probed[0]


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def create(parent: str, token: str, max_pids: int) -> str:
    """Make a cgroup under ``parent`` capped at ``max_pids`` tasks (processes and threads).

    Its name, ``<pid>-<start time>-<token>``, names the process that owns it, so
    :func:`remove_orphans` can tell when that process is gone (pids are reused; start times tell).
    """
    pid = os.getpid()
    path = os.path.join(parent, f"{pid}-{start_time(pid)}-{token}")
    os.mkdir(path)
    try:
        _write(os.path.join(path, "pids.max"), str(max_pids))
    except OSError:
        os.rmdir(path)
        raise
    return path


def join_argv(path: str) -> list[str]:
    """An argv prefix that moves itself into the cgroup at ``path``, then execs the rest.

    Joining before exec means every process the command starts is counted from its first fork.
    """
    procs = os.path.join(path, "cgroup.procs")
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs]


def members(path: str) -> list[int]:
    """Host pids of the processes in the cgroup (empty if it is gone)."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as handle:
            return [int(line) for line in handle.read().split()]
    except (FileNotFoundError, ValueError):
        return []


def kill_members(path: str) -> None:
    """SIGKILL every process in the cgroup, wherever it moved in the process tree."""
    for pid in members(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def remove_orphans(parent: str) -> list[str]:
    """Remove the cgroups under ``parent`` whose owning process is dead; returns their paths."""
    removed = []
    for entry in os.scandir(parent):
        pid, _, rest = entry.name.partition("-")
        start, _, _token = rest.partition("-")
        if not entry.is_dir() or not pid.isdigit() or start_time(int(pid)) == start:
            continue
        with contextlib.suppress(OSError):
            remove(entry.path)
            removed.append(entry.path)
    return removed


def remove(path: str, within_s: float = 2.0) -> None:
    """Kill every process left in the cgroup and remove it (no-op if it is already gone).

    Killed processes leave the cgroup only once they are reaped, so removal is retried for a moment.
    """
    deadline = time.monotonic() + within_s
    while os.path.isdir(path):
        kill_members(path)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
