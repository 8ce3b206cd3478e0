"""Helpers shared by the sandbox tests: a small snapshot repository and finding processes by tag.

Commands run in their own PID namespace, so a pid printed inside the sandbox means nothing on the
host. Tests instead start ``sleep`` with a unique duration (its tag) and look for that argument in
the host's ``/proc/*/cmdline``.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from oec.tasks.gitrepo import commit_all, git


def make_snapshot(repo: Path) -> tuple[str, str]:
    """A repository with a base commit and a later 'future' commit; returns (path, base sha)."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "a.txt").write_text("base\n")
    base = commit_all(repo, "base")
    git(repo, "tag", "v1")
    (repo / "a.txt").write_text("future fix\n")
    commit_all(repo, "future")
    git(repo, "tag", "v2")
    return str(repo), base


def sleep_tag() -> str:
    """A ``sleep`` duration no other process on the machine uses (about 1000 s)."""
    return f"1000.{uuid.uuid4().int % 10**12:012d}"


def running(tag: str) -> list[int]:
    """Host pids of live (non-zombie) processes whose command line has ``tag`` as an argument."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag.encode() in argv and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def all_gone(tag: str, within_s: float = 3.0) -> bool:
    """SIGKILL is delivered asynchronously: give a loaded machine a moment to end the processes."""
    deadline = time.monotonic() + within_s
    while running(tag):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def appears(tag: str, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while not running(tag):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
