"""Recreate the base repository of an embedded task as a local git repository (its snapshot).

tasks.jsonl stores no repositories, only the project name, the gold patch and the base commit hash.
The base repository is the clean project source with the gold patch reversed, committed with the
fixed identity of :mod:`oec.tasks.gitrepo`; reproducing ``base_commit`` exactly proves that the
project source has not drifted since the task was built. Repositories are cached per instance;
a lock file per instance serialises concurrent callers and the repository is built in a scratch
directory and renamed into place, so a reader never sees a half-built one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from oec.tasks.gitrepo import GitError, apply_patch, commit_all, head
from oec.types import Task

PROJECTS_DIR = Path(__file__).resolve().parent / "projects"

# Tasks ship a .gitignore so that submitted patches (the diff of the working copy) never pick up
# bytecode or pytest caches that running the tests leaves behind.
GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\n"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".git")


class MaterializeError(RuntimeError):
    """The base repository of a task cannot be reproduced; the message names the task."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oec" / "embedded"


def copy_project(project_dir: Path, dest: Path) -> None:
    """Copy the clean project into ``dest`` (file modes normalised so tree hashes are portable)."""
    shutil.copytree(project_dir, dest, ignore=_IGNORED, copy_function=shutil.copyfile)
    if not (dest / ".gitignore").exists():
        (dest / ".gitignore").write_text(GITIGNORE, encoding="utf-8")


def commit_base(repo: Path, project: str) -> str:
    return commit_all(repo, f"Import {project}")


def project_of(task: Task) -> str:
    """The embedded project of a task: ``metadata.project``, else the name part of ``repo``."""
    return str(task.metadata.get("project") or task.repo.rsplit("/", 1)[-1])


def image_name(task: Task) -> str:
    """The container image of a task built by ``make images`` (images/embedded.py):
    ``oec-embedded/<project>-<number>:<base commit, 12 digits>``, so a rebuilt task never runs in
    a stale image."""
    return f"oec-embedded/{task.instance_id.split('__', 1)[-1].lower()}:{task.base_commit[:12]}"


def _build(task: Task, dest: Path, projects_dir: Path) -> None:
    project = project_of(task)
    project_dir = projects_dir / project
    if not project_dir.is_dir():
        raise MaterializeError(f"task {task.instance_id!r}: project directory {project_dir} does not exist")
    copy_project(project_dir, dest)
    try:
        apply_patch(dest, task.patch, reverse=True)
    except GitError as exc:
        raise MaterializeError(
            f"task {task.instance_id!r}: the gold patch does not reverse-apply to {project_dir}; "
            f"rebuild tasks with `python -m oec.tasks.embedded build` ({exc})"
        ) from exc
    commit = commit_base(dest, project)
    if commit != task.base_commit:
        raise MaterializeError(
            f"task {task.instance_id!r}: rebuilt base commit {commit} differs from base_commit "
            f"{task.base_commit}; {project_dir} changed since tasks.jsonl was built "
            "(run `python -m oec.tasks.embedded build`)"
        )


def _is_current(repo: Path, commit: str) -> bool:
    try:
        return repo.is_dir() and head(repo) == commit
    except GitError:
        return False


def materialize(task: Task, cache_dir: Path | str | None = None, projects_dir: Path = PROJECTS_DIR) -> Path:
    """Return a local git repository whose HEAD is ``task.base_commit``, building it when needed.

    The repository lives at ``<cache_dir>/<instance_id>`` (default ``~/.cache/oec/embedded``) and is
    reused while its HEAD matches; a stale one (an older build of the task) is replaced.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / task.instance_id
    if _is_current(final, task.base_commit):
        return final
    with open(root / f".{task.instance_id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_current(final, task.base_commit):
            return final
        scratch = Path(tempfile.mkdtemp(prefix=f".{task.instance_id}.", dir=root))
        try:
            _build(task, scratch / "repo", projects_dir)
            if final.exists():
                stale = Path(tempfile.mkdtemp(prefix=f".{task.instance_id}.stale.", dir=root))
                final.rename(stale / "repo")
            (scratch / "repo").rename(final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            for stale_dir in root.glob(f".{task.instance_id}.stale.*"):
                shutil.rmtree(stale_dir, ignore_errors=True)
    return final
