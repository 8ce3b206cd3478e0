"""Git plumbing for task repositories, isolated from the user's git configuration.

Embedded tasks are identified by the hash of their base commit, so every commit made here uses a
fixed author, committer and date, and git runs without the global/system configuration (a user's
``diff.noprefix``, hooks or signing settings would otherwise change hashes or patch text).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

IDENTITY_NAME = "OEC Embedded Tasks"
IDENTITY_EMAIL = "embedded-tasks@oec.invalid"
IDENTITY_DATE = "2024-01-01T00:00:00+00:00"


class GitError(RuntimeError):
    """A git command failed; the message carries the command, the directory and git's stderr."""


def git_env() -> dict[str, str]:
    """Environment for git: no user/system config, fixed identity and dates, C locale."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=IDENTITY_NAME,
        GIT_AUTHOR_EMAIL=IDENTITY_EMAIL,
        GIT_AUTHOR_DATE=IDENTITY_DATE,
        GIT_COMMITTER_NAME=IDENTITY_NAME,
        GIT_COMMITTER_EMAIL=IDENTITY_EMAIL,
        GIT_COMMITTER_DATE=IDENTITY_DATE,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def git(cwd: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run ``git ARGS`` in ``cwd`` and return stdout; raise :class:`GitError` on failure."""
    command = ["git", "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false", *args]
    proc = subprocess.run(
        command, cwd=cwd, env=git_env(), input=stdin, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise GitError(
            f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def commit_all(repo: Path, message: str) -> str:
    """Initialise ``repo`` if needed, commit every file in it and return the commit hash."""
    if not (repo / ".git").exists():
        git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    return head(repo)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def apply_patch(repo: Path, patch: str, *, reverse: bool = False) -> None:
    """Apply a unified diff to the working tree of ``repo`` (``git apply``, which refuses fuzz)."""
    if not patch.strip():
        return
    args = ["apply", "--whitespace=nowarn"] + (["-R"] if reverse else [])
    git(repo, *args, stdin=patch)


def diff(repo: Path, *, cached: bool = False, paths: Sequence[str] = ()) -> str:
    """Unified diff of the working tree (or the index) against the index (or HEAD)."""
    args = ["diff", "--no-color", "--no-ext-diff", "--no-renames"] + (["--cached"] if cached else [])
    return git(repo, *args, "--", *paths)


def clone(source: str | Path, dest: Path, commit: str) -> None:
    """Clone ``source`` into ``dest`` and check out ``commit`` (a hash or a branch name)."""
    git(dest.parent, "clone", "-q", str(source), str(dest))
    git(dest, "checkout", "-q", commit)
