"""The trajectory store: append-only JSONL shards plus a manifest, safe to kill and to resume.

Layout of a store directory::

    manifest.json              resolved config, code version, times, counts (written atomically)
    shards/shard-<utc>-<pid>-<tag>.jsonl   one JSON trajectory per line, one shard per writer

Each writer appends to its own new shard and never rewrites one. Every record is written as one
line, flushed and fsynced before :meth:`TrajectoryStore.append` returns, so a writer killed even
with SIGKILL loses at most the rollouts still in flight; a half-written last line (no newline) is
ignored by readers and cut off when a writer reopens the store. A corrupt line anywhere else is an
error naming its shard and line. The manifest is replaced atomically (tmp + fsync + rename), keeps
one entry per shard and is updated under a lock file, so several writer processes may share a
store. A writer holds an exclusive ``flock`` on its shard while it lives: that is how a reopening
writer tells a dead writer's torn tail (safe to cut) from a live writer's line in progress.

Resuming: :meth:`TrajectoryStore.done_keys` gives the finished (instance_id, sample_index) pairs to
skip, and appending a stored pair again is refused. Opening a store with a resolved config that
differs from the manifest's is refused with the differing keys, unless ``allow_config_change``;
keys whose last component is in :data:`RESUME_IGNORED_KEYS` (throughput and resume switches, not
what a rollout is) are not compared. Readers keep the first record of a pair if two shards hold it;
:func:`check_store` (``python -m oec.store check ROOT``) reports such duplicates.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import json
import os
import secrets
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oec.types import SchemaError, Trajectory

MANIFEST = "manifest.json"
SHARDS = "shards"
LOCK = ".lock"
FORMAT = "oec-trajectory-store"
FORMAT_VERSION = 1
RESUME_IGNORED_KEYS = frozenset({"num_workers", "allow_config_change", "samples_per_task"})
"""Config keys (last dotted component) not compared on resume: more workers, or more samples per
task (new (task, sample) pairs), do not change what a stored rollout means."""

Key = tuple[str, int]


class StoreError(RuntimeError):
    """The store is missing, corrupt, or would be made inconsistent; the message names the path."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def code_version() -> dict[str, Any]:
    """Git commit and dirty flag of the oec checkout, or the package version when not a checkout."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=package, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() == package.parent:
            dirty = bool(git("status", "--porcelain", "--", package.name, "conf"))
            return {"git_commit": git("rev-parse", "HEAD"), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package_version": importlib.metadata.version("oec")}


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict) and config:
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: config}


def config_differences(old: dict, new: dict, ignore: Collection[str] = RESUME_IGNORED_KEYS) -> list[str]:
    """Dotted keys whose values differ between two configs, as ``key: old -> new``."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    missing = object()
    differences = []
    for key in sorted(set(flat_old) | set(flat_new)):
        if key.rsplit(".", 1)[-1] in ignore:
            continue
        before, after = flat_old.get(key, missing), flat_new.get(key, missing)
        if before != after:
            shown = ["<absent>" if v is missing else json.dumps(v) for v in (before, after)]
            differences.append(f"{key}: {shown[0]} -> {shown[1]}")
    return differences


def _empty_counts() -> dict[str, Any]:
    return {
        "rollouts": 0,
        "resolved": 0,
        "accepted": 0,
        "by_mode": {},
        "by_exit_status": {},
        "by_filter_reason": {},
    }


def _add_counts(total: dict[str, Any], part: dict[str, Any]) -> None:
    for name in ("rollouts", "resolved", "accepted"):
        total[name] += part[name]
    for name in ("by_mode", "by_exit_status", "by_filter_reason"):
        total[name] = dict(Counter(total[name]) + Counter(part[name]))


def _count(counts: dict[str, Any], trajectory: Trajectory) -> None:
    one = _empty_counts()
    one.update(rollouts=1, resolved=int(trajectory.resolved), accepted=int(trajectory.accepted))
    one["by_mode"] = {trajectory.mode: 1}
    one["by_exit_status"] = {trajectory.exit_status: 1}
    one["by_filter_reason"] = dict(Counter(trajectory.filter_reasons))
    _add_counts(counts, one)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_length(path: Path) -> int:
    """Bytes up to and including the last newline: what remains once a torn tail is cut."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(1 << 16, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            index = block.rfind(b"\n")
            if index >= 0:
                return position + index + 1
        return 0


def _read_shard(path: Path) -> Iterator[tuple[int, Trajectory]]:
    """(line number, trajectory) of every complete line; a torn last line is skipped."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return
            try:
                yield number, Trajectory.from_dict(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise StoreError(f"{path}: line {number} is not valid JSON ({exc})") from exc
            except SchemaError as exc:
                raise StoreError(f"{path}: line {number}: {exc}") from exc


def _shards(root: Path) -> list[Path]:
    return sorted((root / SHARDS).glob("shard-*.jsonl"))


def load_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"no trajectory store at {root}: {MANIFEST} is missing") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}") from exc


def read_trajectories(root: str | Path, accepted_only: bool = False) -> Iterator[Trajectory]:
    """Every stored trajectory (the first record of a duplicated pair), without modifying the store."""
    load_manifest(root)
    seen: set[Key] = set()
    for shard in _shards(Path(root)):
        for _, trajectory in _read_shard(shard):
            if trajectory.key in seen:
                continue
            seen.add(trajectory.key)
            if trajectory.accepted or not accepted_only:
                yield trajectory


@dataclass
class StoreCheck:
    """What :func:`check_store` found: record count, duplicated pairs, shards with a torn tail."""

    records: int = 0
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    torn_shards: list[str] = field(default_factory=list)


def check_store(root: str | Path) -> StoreCheck:
    """Read every shard; report duplicated (task, sample) pairs as ``shard:line`` locations."""
    load_manifest(root)
    check = StoreCheck()
    locations: dict[Key, list[str]] = {}
    for shard in _shards(Path(root)):
        for number, trajectory in _read_shard(shard):
            check.records += 1
            locations.setdefault(trajectory.key, []).append(f"{shard.name}:{number}")
        if _complete_length(shard) != shard.stat().st_size:
            check.torn_shards.append(shard.name)
    check.duplicates = {f"{i}#{s}": where for (i, s), where in locations.items() if len(where) > 1}
    return check


class TrajectoryStore:
    """A writer (and reader) of one store directory; create with :meth:`open`."""

    def __init__(self, root: Path, done: set[Key], version: dict[str, Any]) -> None:
        self.root = root
        self._done = done
        self._code_version = version
        self._lock = threading.Lock()
        self._closed = False
        self._fd: int | None = None
        # The UTC time first, so sorting shard names sorts them by age (readers keep the oldest).
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}-{secrets.token_hex(2)}"
        self._shard = root / SHARDS / f"shard-{stamp}.jsonl"
        self._counts = _empty_counts()

    @classmethod
    def open(
        cls,
        root: str | Path,
        config: dict[str, Any],
        *,
        create: bool = True,
        allow_config_change: bool = False,
        ignore_keys: Collection[str] = RESUME_IGNORED_KEYS,
    ) -> TrajectoryStore:
        """Open (or create) the store at ``root`` for appending, checking ``config`` against it.

        Scans every shard: finished pairs become :meth:`done_keys`, torn tails of dead writers are
        cut, and their manifest counts are recomputed. Raises :class:`StoreError` when the store
        is missing (and ``create`` is false), corrupt, or was written with a different config.
        """
        root = Path(root)
        config = json.loads(json.dumps(config, default=str))
        version = code_version()
        with _store_lock(root, create):
            if not (root / MANIFEST).exists():
                if not create:
                    raise StoreError(f"no trajectory store at {root}: {MANIFEST} is missing")
                if _shards(root):
                    raise StoreError(f"{root} has shards but no {MANIFEST}: not opening it as a store")
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "created": _now(),
                    "updated": _now(),
                    "config": config,
                    "code_version": version,
                    "config_changes": [],
                    "counts": _empty_counts(),
                    "shards": {},
                }
                _write_manifest(root, manifest)
            manifest = load_manifest(root)
            if manifest.get("format") != FORMAT:
                raise StoreError(f"{root / MANIFEST} is not a {FORMAT} manifest")
            differences = config_differences(manifest["config"], config, ignore_keys)
            if differences:
                if not allow_config_change:
                    raise StoreError(
                        f"{root}: the resolved config differs from the store's: "
                        + "; ".join(differences)
                        + " (pass allow_config_change=True, e.g. collect.allow_config_change=true, to resume)"
                    )
                manifest["config_changes"].append(
                    {"time": _now(), "differences": differences, "config": config}
                )
            done, recounted = _recover(root)
            for name, counts in recounted.items():
                entry = manifest["shards"].setdefault(name, {})
                entry["counts"] = counts
            _finish_manifest(manifest)
            _write_manifest(root, manifest)
        return cls(root, done, version)

    def done_keys(self) -> set[Key]:
        """(instance_id, sample_index) pairs already stored: a resumed run skips them."""
        with self._lock:
            return set(self._done)

    def append(self, trajectory: Trajectory) -> None:
        """Write one trajectory as one line, fsync it, then update the manifest's counts."""
        line = (json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.root}: the store is closed")
            if trajectory.key in self._done:
                raise StoreError(f"{self.root}: rollout {trajectory.key} is already stored")
            if self._fd is None:
                self._fd = _open_shard(self._shard)
            _write_all(self._fd, line)
            os.fsync(self._fd)
            self._done.add(trajectory.key)
            _count(self._counts, trajectory)
            self._update_manifest()

    def _update_manifest(self) -> None:
        with _store_lock(self.root, create=False):
            manifest = load_manifest(self.root)
            entry = manifest["shards"].setdefault(self._shard.name, {"created": _now()})
            entry.update(code_version=self._code_version, counts=self._counts)
            _finish_manifest(manifest)
            _write_manifest(self.root, manifest)

    def read(self, accepted_only: bool = False) -> Iterator[Trajectory]:
        """Every stored trajectory (also those of other writers); works after :meth:`close`."""
        return read_trajectories(self.root, accepted_only)

    def __iter__(self) -> Iterator[Trajectory]:
        return self.read()

    @property
    def manifest(self) -> dict[str, Any]:
        return load_manifest(self.root)

    def close(self) -> None:
        """Release the shard (and its lock); safe to call twice."""
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _store_lock(root: Path, create: bool) -> Iterator[None]:
    """Serialise manifest updates and recovery between writer processes."""
    if create:
        (root / SHARDS).mkdir(parents=True, exist_ok=True)
    elif not (root / MANIFEST).exists():
        raise StoreError(f"no trajectory store at {root}: {MANIFEST} is missing")
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _open_shard(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
    # Held until this process closes the shard or dies: tells reopening writers the shard is live.
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _fsync_dir(path.parent)
    return fd


def _recover(root: Path) -> tuple[set[Key], dict[str, dict[str, Any]]]:
    """Done keys of all shards; cut the torn tails of dead writers' shards and recount them."""
    done: set[Key] = set()
    recounted: dict[str, dict[str, Any]] = {}
    for shard in _shards(root):
        fd = os.open(shard, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                dead = True
            except BlockingIOError:
                dead = False
            if dead:
                complete = _complete_length(shard)
                if complete != os.fstat(fd).st_size:
                    os.ftruncate(fd, complete)
                    os.fsync(fd)
            counts = _empty_counts()
            for _, trajectory in _read_shard(shard):
                if trajectory.key not in done:
                    done.add(trajectory.key)
                    if dead:
                        _count(counts, trajectory)
            if dead:
                recounted[shard.name] = counts
        finally:
            os.close(fd)
    return done, recounted


def _finish_manifest(manifest: dict[str, Any]) -> None:
    totals = _empty_counts()
    for entry in manifest["shards"].values():
        _add_counts(totals, entry.get("counts") or _empty_counts())
    manifest["counts"] = totals
    manifest["updated"] = _now()


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / f"{MANIFEST}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / MANIFEST)
    _fsync_dir(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oec.store", description="Inspect a trajectory store.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="count records, find duplicated pairs and torn tails")
    check.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    try:
        result = check_store(args.root)
        counts = load_manifest(args.root)["counts"]
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"records": result.records, "duplicates": result.duplicates, "torn_shards": result.torn_shards}
    print(json.dumps({**report, "manifest_counts": counts}, indent=2))
    return 1 if result.duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
