"""The trajectory store: append-only JSONL shards plus a manifest, safe to kill, to resume and to share.

Layout of a store directory::

    manifest.json              resolved config, task source, code version, times, counts (atomic)
    shards/shard-<utc>-<pid>-<tag>.jsonl   one JSON trajectory per line, one shard per writer
    claims/<instance_id>#<sample>          lock files: the (task, sample) pairs being rolled out
    quarantine/<utc>/                      bad lines moved aside by ``check --repair``

Each writer appends to its own new shard and never rewrites one. Every record is written as one
line, flushed and fsynced before :meth:`TrajectoryStore.append` returns, so a writer killed even
with SIGKILL loses at most the rollouts still in flight; a half-written last line (no newline) is
ignored by readers and cut off when a writer reopens the store. A corrupt line anywhere else is an
error naming its shard, its line and ``python -m oec.store check --repair ROOT``, which keeps every
valid record and moves the bad lines (and duplicated pairs) into ``quarantine/``. The manifest is
replaced atomically (tmp + fsync + rename), keeps one entry per shard and is updated under a lock
file, so several writer processes may share a store. A writer holds an exclusive ``flock`` on its
shard while it lives: that is how a reopening writer tells a dead writer's torn tail (safe to cut)
from a live writer's line in progress.

Several writers at once (a requeued SLURM job next to the old one): a writer claims a pair
(:meth:`TrajectoryStore.claim`) before rolling it out, by holding an ``flock`` on the pair's file
in ``claims/``. The kernel drops the lock when its holder dies, so a dead writer's
claims free themselves; a claim succeeds only if no live process holds it and, re-reading the
other writers' new lines, the pair is not stored yet. Storing a pair deletes its claim file.

Provenance: every line carries ``config_hash`` (the hash of the resolved config that made it, see
:func:`config_hash`; the manifest maps it back to the config) and, when the writer named one,
``task_source_hash`` (the SHA-256 of the tasks file). Readers ignore both keys.

Resuming: :meth:`TrajectoryStore.done_keys` gives the finished (instance_id, sample_index) pairs to
skip, and appending a stored pair again is refused. Opening a store with a resolved config that
differs from the manifest's is refused with the differing keys, unless ``allow_config_change``;
keys whose last component is in :data:`RESUME_IGNORED_KEYS` (throughput and resume switches, not
what a rollout is) are not compared. A task source whose content changed is refused likewise,
unless ``allow_task_change``. Readers keep the first record of a pair if two shards hold it;
:func:`check_store` (``python -m oec.store check ROOT``) reports such duplicates and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from oec.types import SchemaError, Trajectory

MANIFEST = "manifest.json"
SHARDS = "shards"
CLAIMS = "claims"
QUARANTINE = "quarantine"
LOCK = ".lock"
FORMAT = "oec-trajectory-store"
FORMAT_VERSION = 1
RESUME_IGNORED_KEYS = frozenset({"num_workers", "allow_config_change", "samples_per_task"})
"""Config keys (last dotted component) not compared on resume: more workers, or more samples per
task (new (task, sample) pairs), do not change what a stored rollout means."""
PROVENANCE_KEYS = ("config_hash", "task_source_hash")
"""Keys the store adds to every line next to the trajectory's own (readers ignore them)."""

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


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a resolved config (canonical JSON): tags the records it made."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TaskSource:
    """The file the tasks were read from and the SHA-256 of its content when the run started."""

    path: str
    sha256: str

    @classmethod
    def of_file(cls, path: str | Path) -> TaskSource:
        return cls(str(path), sha256_of(Path(path)))


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file; of a folder, over its files' relative names and contents, in order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


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


@dataclass(frozen=True)
class _Line:
    """One line of a shard: where it is, its bytes, and its trajectory or why it has none."""

    shard: Path
    number: int
    raw: bytes
    record: dict[str, Any] | None
    trajectory: Trajectory | None
    error: str | None

    @property
    def where(self) -> str:
        return f"{self.shard.name}:{self.number}"


def _parse_line(shard: Path, number: int, raw: bytes) -> _Line:
    try:
        record = json.loads(raw)
        return _Line(shard, number, raw, record, Trajectory.from_dict(record), None)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _Line(shard, number, raw, None, None, f"line {number} is not valid JSON ({exc})")
    except SchemaError as exc:
        return _Line(shard, number, raw, None, None, f"line {number}: {exc}")


def _scan_shard(path: Path, start: int = 0) -> Iterator[_Line]:
    """Every complete line of a shard from byte ``start`` (a line boundary; line numbers count from
    there), parsed or with its error; a torn last line is skipped."""
    with path.open("rb") as f:
        f.seek(start)
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return
            yield _parse_line(path, number, raw)


def _repair_hint(root: Path) -> str:
    return f"`python -m oec.store check --repair {root}` keeps the valid records and moves bad lines aside"


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


def read_records(
    root: str | Path, accepted_only: bool = False
) -> Iterator[tuple[Trajectory, dict[str, Any]]]:
    """Every stored trajectory (the first record of a duplicated pair) with the provenance its line
    carries (:data:`PROVENANCE_KEYS`, None where the line has none), without modifying the store.
    A corrupt line is a :class:`StoreError`."""
    load_manifest(root)
    seen: set[Key] = set()
    for shard in _shards(Path(root)):
        for line in _scan_shard(shard):
            if line.trajectory is None or line.record is None:
                raise StoreError(f"{shard}: {line.error}; {_repair_hint(Path(root))}")
            if line.trajectory.key in seen:
                continue
            seen.add(line.trajectory.key)
            if line.trajectory.accepted or not accepted_only:
                yield line.trajectory, {key: line.record.get(key) for key in PROVENANCE_KEYS}


def read_trajectories(root: str | Path, accepted_only: bool = False) -> Iterator[Trajectory]:
    """Every stored trajectory (the first record of a duplicated pair), without modifying the store."""
    for trajectory, _ in read_records(root, accepted_only):
        yield trajectory


@dataclass
class StoreCheck:
    """What :func:`check_store` found: records, duplicated pairs, corrupt lines, torn tails, and
    how many records each config (by ``config_hash``; ``"None"`` before records carried one) made."""

    records: int = 0
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    corrupt_lines: dict[str, str] = field(default_factory=dict)
    torn_shards: list[str] = field(default_factory=list)
    records_by_config_hash: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No duplicated pair and no corrupt line (a torn tail is normal after a kill)."""
        return not self.duplicates and not self.corrupt_lines


def check_store(root: str | Path) -> StoreCheck:
    """Read every shard; report duplicated (task, sample) pairs and corrupt lines as ``shard:line``."""
    load_manifest(root)
    check = StoreCheck()
    locations: dict[Key, list[str]] = {}
    by_hash: Counter[str] = Counter()
    for shard in _shards(Path(root)):
        for line in _scan_shard(shard):
            if line.trajectory is None:
                check.corrupt_lines[line.where] = line.error or ""
                continue
            check.records += 1
            by_hash[str(line.record.get("config_hash")) if line.record else "None"] += 1
            locations.setdefault(line.trajectory.key, []).append(line.where)
        if _complete_length(shard) != shard.stat().st_size:
            check.torn_shards.append(shard.name)
    check.duplicates = {f"{i}#{s}": where for (i, s), where in locations.items() if len(where) > 1}
    check.records_by_config_hash = dict(by_hash)
    return check


@dataclass
class Repair:
    """What :func:`repair_store` did: lines moved to ``quarantine`` (``shard:line`` -> why)."""

    moved: dict[str, str] = field(default_factory=dict)
    quarantine: str | None = None
    kept: int = 0


def repair_store(root: str | Path) -> Repair:
    """Keep every valid record; move corrupt lines, later copies of a duplicated pair and torn tails
    of dead writers into ``quarantine/<utc>/`` (one file per line, its exact bytes, named
    ``<shard>:<line>``, and ``reasons.json``), rewrite the affected shards atomically and recount.

    Refuses while another process writes a shard that needs repair (stop it first).
    """
    root = Path(root)
    repair = Repair()
    with _store_lock(root, create=False):
        manifest = load_manifest(root)
        seen: dict[Key, str] = {}
        plans: list[tuple[Path, list[bytes], list[tuple[_Line, str]]]] = []
        counts: dict[str, dict[str, Any]] = {}
        for shard in _shards(root):
            kept: list[bytes] = []
            bad: list[tuple[_Line, str]] = []
            shard_counts = _empty_counts()
            for line in _scan_shard(shard):
                if line.trajectory is None:
                    bad.append((line, line.error or "corrupt"))
                elif line.trajectory.key in seen:
                    bad.append((line, f"duplicate of {seen[line.trajectory.key]}"))
                else:
                    seen[line.trajectory.key] = line.where
                    kept.append(line.raw)
                    _count(shard_counts, line.trajectory)
            complete = _complete_length(shard)
            if complete != shard.stat().st_size:
                with shard.open("rb") as f:
                    f.seek(complete)
                    tail = f.read()
                number = len(kept) + len(bad) + 1
                bad.append((_Line(shard, number, tail, None, None, None), "torn tail (no newline)"))
            counts[shard.name] = shard_counts
            repair.kept += len(kept)
            if bad:
                plans.append((shard, kept, bad))
        if not plans:
            return repair
        for shard, _, _ in plans:
            if _held_by_a_live_writer(shard):
                raise StoreError(f"{shard}: a live process is writing this shard; stop it, then repair")
        folder = root / QUARANTINE / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        folder.mkdir(parents=True)
        for shard, kept, bad in plans:
            for line, reason in bad:
                (folder / line.where).write_bytes(line.raw)
                repair.moved[line.where] = reason
            _fsync_dir(folder)
            tmp = shard.with_name(f".{shard.name}.repair-{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, b"".join(kept))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, shard)
        (folder / "reasons.json").write_text(json.dumps(repair.moved, indent=2) + "\n")
        _fsync_dir(root / SHARDS)
        repair.quarantine = str(folder)
        for name, shard_counts in counts.items():
            manifest["shards"].setdefault(name, {})["counts"] = shard_counts
        manifest.setdefault("repairs", []).append(
            {"time": _now(), "quarantine": str(folder.relative_to(root)), "moved": repair.moved}
        )
        _finish_manifest(manifest)
        _write_manifest(root, manifest)
    return repair


def _held_by_a_live_writer(shard: Path) -> bool:
    fd = os.open(shard, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _claim_path(root: Path, key: Key) -> Path:
    return root / CLAIMS / f"{quote(key[0], safe='')}#{key[1]}"


def _unlink_if_same_file(path: Path, fd: int) -> None:
    """Remove ``path`` if it still names the file open as ``fd`` (and is not a newer claim file).

    Only for a stored pair: every later claimer finds it stored whichever file it locks. A pair
    that is not stored keeps its file, since a claimer that opened it before the removal would lock
    the removed file while a later one locks a new file at the same path.
    """
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()


class TrajectoryStore:
    """A writer (and reader) of one store directory; create with :meth:`open`."""

    def __init__(
        self,
        root: Path,
        done: set[Key],
        offsets: dict[str, int],
        version: dict[str, Any],
        provenance: dict[str, str],
    ) -> None:
        self.root = root
        self._done = done
        self._offsets = offsets
        """Bytes of each shard already read into ``_done``: other writers' new lines are read from here."""
        self._code_version = version
        self._provenance = provenance
        self._lock = threading.Lock()
        self._closed = False
        self._fd: int | None = None
        self._claims: dict[Key, int] = {}
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
        task_source: TaskSource | None = None,
        allow_task_change: bool = False,
    ) -> TrajectoryStore:
        """Open (or create) the store at ``root`` for appending, checking ``config`` against it.

        Scans every shard: finished pairs become :meth:`done_keys`, torn tails of dead writers are
        cut, and their manifest counts are recomputed. Raises :class:`StoreError` when the store
        is missing (and ``create`` is false), corrupt, was written with a different config, or
        from a task source whose content differs from ``task_source``'s.
        """
        root = Path(root)
        config = json.loads(json.dumps(config, default=str))
        version = code_version()
        provenance = {"config_hash": config_hash(config)}
        if task_source is not None:
            provenance["task_source_hash"] = task_source.sha256
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
                    "config_hash": provenance["config_hash"],
                    "code_version": version,
                    "config_changes": [],
                    "counts": _empty_counts(),
                    "shards": {},
                }
                if task_source is not None:
                    manifest["task_source"] = {"path": task_source.path, "sha256": task_source.sha256}
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
                    {
                        "time": _now(),
                        "differences": differences,
                        "config": config,
                        "config_hash": provenance["config_hash"],
                    }
                )
            if task_source is not None:
                _check_task_source(root, manifest, task_source, allow_task_change)
            (root / CLAIMS).mkdir(exist_ok=True)
            done, offsets, recounted = _recover(root)
            for name, counts in recounted.items():
                entry = manifest["shards"].setdefault(name, {})
                entry["counts"] = counts
            _finish_manifest(manifest)
            _write_manifest(root, manifest)
        return cls(root, done, offsets, version, provenance)

    def done_keys(self) -> set[Key]:
        """(instance_id, sample_index) pairs already stored: a resumed run skips them."""
        with self._lock:
            return set(self._done)

    def claim(self, key: Key) -> bool:
        """Reserve ``key`` for this writer before rolling it out; False if it is stored already or
        another live process (or this one) holds it. :meth:`append` and :meth:`release` end a claim."""
        path = _claim_path(self.root, key)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.root}: the store is closed")
            if key in self._claims or key in self._done:
                return False
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                # Another writer may have stored it since we read its shard: the lock alone only
                # says that nobody is rolling it out now.
                self._read_new_lines()
            except BaseException:
                os.close(fd)
                raise
            if key in self._done:
                # The claim file may be one this call created after the storing writer removed
                # its own: remove it too, or claims/ keeps a file per pair raced this way.
                _unlink_if_same_file(path, fd)
                os.close(fd)
                return False
            self._claims[key] = fd
            return True

    def release(self, key: Key) -> None:
        """Give up the claim on ``key`` (its rollout failed or was abandoned); no-op if none."""
        with self._lock:
            fd = self._claims.pop(key, None)
            if fd is not None:
                os.close(fd)

    def _read_new_lines(self) -> None:
        """Add the pairs in other writers' lines written since they were last read to ``_done``."""
        for shard in _shards(self.root):
            if shard == self._shard:
                continue
            start = self._offsets.get(shard.name, 0)
            for line in _scan_shard(shard, start):
                if line.trajectory is None:
                    raise StoreError(f"{shard}: at byte {start}: {line.error}; {_repair_hint(self.root)}")
                self._done.add(line.trajectory.key)
                start += len(line.raw)
            self._offsets[shard.name] = start

    def append(self, trajectory: Trajectory) -> None:
        """Write one trajectory as one line, fsync it, update the manifest's counts, end its claim."""
        record = {**trajectory.to_dict(), **self._provenance}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.root}: the store is closed")
            if trajectory.key not in self._claims:
                self._read_new_lines()
            if trajectory.key in self._done:
                raise StoreError(f"{self.root}: rollout {trajectory.key} is already stored")
            if self._fd is None:
                self._fd = _open_shard(self._shard)
            _write_all(self._fd, line)
            os.fsync(self._fd)
            self._done.add(trajectory.key)
            _count(self._counts, trajectory)
            self._update_manifest()
            fd = self._claims.pop(trajectory.key, None)
            if fd is not None:
                # Deleted only now that the record is durable: a writer that takes a fresh claim
                # file for this pair then finds the pair stored and lets it go.
                _unlink_if_same_file(_claim_path(self.root, trajectory.key), fd)
                os.close(fd)

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
        """Release the shard (and its lock) and every claim; safe to call twice."""
        with self._lock:
            self._closed = True
            for fd in self._claims.values():
                os.close(fd)
            self._claims.clear()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_task_source(root: Path, manifest: dict[str, Any], source: TaskSource, allowed: bool) -> None:
    """Record the task source on first use; refuse a changed one unless ``allowed``, then record it."""
    recorded = manifest.get("task_source")
    if recorded is None:
        manifest["task_source"] = {"path": source.path, "sha256": source.sha256}
        return
    if recorded["sha256"] == source.sha256:
        return
    what = (
        f"{root}: the task source changed: {source.path} has sha256 {source.sha256[:16]}, the store was "
        f"collected from {recorded['path']} with sha256 {recorded['sha256'][:16]}"
    )
    if not allowed:
        raise StoreError(
            f"{what} (to resume anyway: collect.allow_task_change=true, evaluate.allow_task_change=true)"
        )
    manifest.setdefault("task_source_changes", []).append(
        {"time": _now(), "path": source.path, "sha256": source.sha256}
    )


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


def _recover(root: Path) -> tuple[set[Key], dict[str, int], dict[str, dict[str, Any]]]:
    """Done keys of all shards, the bytes read of each, and the counts of dead writers' shards
    (pairs already in an earlier shard not counted again); torn tails of dead writers are cut."""
    done: set[Key] = set()
    offsets: dict[str, int] = {}
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
            read = 0
            for line in _scan_shard(shard):
                if line.trajectory is None:
                    raise StoreError(f"{shard}: {line.error}; {_repair_hint(root)}")
                read += len(line.raw)
                if line.trajectory.key not in done:
                    done.add(line.trajectory.key)
                    if dead:
                        _count(counts, line.trajectory)
            offsets[shard.name] = read
            if dead:
                recounted[shard.name] = counts
        finally:
            os.close(fd)
    return done, offsets, recounted


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


SHARD_KEY = "shard"
"""Config key a shard store of a sharded collection records its ``{index, count}`` under
(:mod:`oec.shard`); the only key in which the stores :func:`merge_stores` joins may differ."""


@dataclass
class Merge:
    """What :func:`merge_stores` wrote: records per source store, and the shard indices missing from
    a sharded collection (``count`` shards expected; empty when complete or not sharded)."""

    records: dict[str, int] = field(default_factory=dict)
    missing_shards: list[int] = field(default_factory=list)
    shard_count: int | None = None

    @property
    def total(self) -> int:
        return sum(self.records.values())


def merge_stores(out: str | Path, roots: list[str | Path]) -> Merge:
    """Join the stores at ``roots`` (the shards of one collection) into a new store at ``out``.

    Refused, with a :class:`StoreError` naming the store and the key, when: ``out`` exists; a store
    was made with a config that differs from the first one's (keys other than :data:`SHARD_KEY`;
    :data:`RESUME_IGNORED_KEYS` are not compared) or from a different task source; two stores hold
    the same (task, sample) pair (shards never overlap, so that is a mistake: nothing is chosen);
    two shard stores have the same index or different counts; a store has a corrupt line, a
    duplicate, or a shard file a live writer still holds. Every record is copied byte for byte (its
    ``config_hash`` included; ``merged_from`` in the manifest maps each source's hash to its shard)
    into a hidden folder beside ``out``, renamed to ``out`` only once the merged store's records and
    counts are verified to be the records read, so a refused or failed merge leaves nothing behind.
    The source stores are only read.
    """
    out = Path(out)
    sources = [Path(root) for root in roots]
    if not sources:
        raise StoreError("merge: no stores to merge")
    if out.exists():
        raise StoreError(f"{out} exists: merge into a new folder")
    if len({root.resolve() for root in sources}) != len(sources):
        raise StoreError("merge: a store is named twice")
    manifests = [load_manifest(root) for root in sources]
    first, base = sources[0], manifests[0]
    config = _without_shard(base["config"])
    merge = Merge()
    indices: dict[int, Path] = {}
    for root, manifest in zip(sources, manifests, strict=True):
        if manifest.get("format") != FORMAT:
            raise StoreError(f"{root / MANIFEST} is not a {FORMAT} manifest")
        differences = config_differences(config, _without_shard(manifest["config"]))
        if differences:
            raise StoreError(
                f"{root}: its config differs from {first}'s: " + "; ".join(differences) + " (not merged)"
            )
        theirs, ours = manifest.get("task_source"), base.get("task_source")
        if (theirs or {}).get("sha256") != (ours or {}).get("sha256"):
            raise StoreError(
                f"{root}: its task source ({_source_text(theirs)}) differs from {first}'s "
                f"({_source_text(ours)}) (not merged)"
            )
        shard = manifest["config"].get(SHARD_KEY)
        if shard is not None:
            if merge.shard_count not in (None, shard["count"]):
                raise StoreError(
                    f"{root}: {SHARD_KEY}.count is {shard['count']}, other stores are {merge.shard_count} "
                    "shards (not merged)"
                )
            merge.shard_count = shard["count"]
            if shard["index"] in indices:
                other = indices[shard["index"]]
                raise StoreError(f"{root}: {SHARD_KEY}.index {shard['index']} is also {other}'s (not merged)")
            indices[shard["index"]] = root
    if merge.shard_count is not None:
        merge.missing_shards = sorted(set(range(merge.shard_count)) - set(indices))

    where: dict[Key, Path] = {}
    files: list[tuple[Path, list[bytes]]] = []
    for root in sources:
        merge.records[str(root)] = 0
        for shard in _shards(root):
            if _held_by_a_live_writer(shard):
                raise StoreError(f"{shard}: a live process is writing this shard; merge once it has ended")
            lines = []
            for line in _scan_shard(shard):
                if line.trajectory is None:
                    raise StoreError(f"{shard}: {line.error}; {_repair_hint(root)}")
                key = line.trajectory.key
                if key in where:
                    what = "twice" if where[key] == root else f"also in {where[key]}"
                    raise StoreError(
                        f"{root}: rollout {key[0]}#{key[1]} is {what} (not merged; "
                        f"`python -m oec.store check {root}` lists duplicates)"
                    )
                where[key] = root
                lines.append(line.raw)
            if lines:
                files.append((shard, lines))
                merge.records[str(root)] += len(lines)

    building = out.with_name(f".{out.name}.merging-{os.getpid()}-{secrets.token_hex(2)}")
    try:
        _write_merged(building, files, _merged_manifest(config, base, sources, manifests, merge))
        check = check_store(building)
        counted = load_manifest(building)["counts"]["rollouts"]
        if not check.clean or check.records != merge.total or counted != merge.total:
            raise StoreError(
                f"{out}: the merged store would hold {check.records} records ({counted} counted) where "
                f"{merge.total} were copied (not merged)"
            )
        os.rename(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _fsync_dir(out.parent)
    return merge


def _merged_manifest(
    config: dict[str, Any],
    base: dict[str, Any],
    sources: list[Path],
    manifests: list[dict[str, Any]],
    merge: Merge,
) -> dict[str, Any]:
    """The manifest of a merged store, but for its shard counts: the common config, the first
    store's task source, and per source store its hash, shard, records and config changes."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _now(),
        "updated": _now(),
        "config": config,
        "config_hash": config_hash(config),
        "code_version": code_version(),
        "config_changes": [],
        "counts": _empty_counts(),
        "shards": {},
        "merged_from": [
            {
                "root": str(root.resolve()),
                "config_hash": m["config_hash"],
                SHARD_KEY: m["config"].get(SHARD_KEY),
                "records": merge.records[str(root)],
                "config_changes": m.get("config_changes", []),
            }
            for root, m in zip(sources, manifests, strict=True)
        ],
    }
    if base.get("task_source") is not None:
        manifest["task_source"] = base["task_source"]
    return manifest


def _write_merged(building: Path, files: list[tuple[Path, list[bytes]]], manifest: dict[str, Any]) -> None:
    """Write the shard files (same names, their complete lines) and the counted manifest."""
    (building / SHARDS).mkdir(parents=True)
    for shard, lines in files:
        target = building / SHARDS / shard.name
        if target.exists():
            raise StoreError(f"{shard}: two stores have a shard file named {shard.name} (not merged)")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(building / SHARDS)
    _, _, counts = _recover(building)
    for name, shard_counts in counts.items():
        manifest["shards"][name] = {"counts": shard_counts}
    _finish_manifest(manifest)
    _write_manifest(building, manifest)


def _source_text(source: dict[str, str] | None) -> str:
    return "none recorded" if source is None else f"{source['path']}, sha256 {source['sha256'][:16]}"


def _without_shard(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != SHARD_KEY}


def main(argv: list[str] | None = None) -> int:
    """``check ROOT [--repair]``: exit 0 when clean, 1 on duplicates or corrupt lines (after
    ``--repair``: when nothing is left to fix, 0), 2 when the store cannot be read.
    ``import --format FORMAT --out STORE PATH...``: see :mod:`oec.interop.cli`.
    ``export STORE --format hf|jsonl --out DIR``: see :mod:`oec.interop.export`.
    ``merge OUT STORE...``: join shard stores into a new store (:func:`merge_stores`); exit 0 when
    merged, 2 when refused."""
    argv = sys.argv[1:] if argv is None else argv
    # export renders with transformers (seconds to import): dispatched before parsing, so check stays light.
    if argv[:1] == ["export"]:
        from oec.interop.export import main as export_main

        return export_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m oec.store", description="Inspect a trajectory store, import into one, or export one."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "export", help="write the store as a Hugging Face dataset or JSONL (python -m oec.store export -h)"
    )
    check = commands.add_parser("check", help="find duplicated pairs, corrupt lines and torn tails")
    check.add_argument("root", type=Path)
    check.add_argument(
        "--repair",
        action="store_true",
        help="keep every valid record; move corrupt lines, duplicates and torn tails to quarantine/",
    )
    merge = commands.add_parser(
        "merge", help="join the shard stores of a sharded collection into a new store, refusing mismatches"
    )
    merge.add_argument("out", type=Path, help="the new store (must not exist)")
    merge.add_argument("stores", type=Path, nargs="+", help="the shard stores, e.g. STORE.shard-*-of-N")
    # import: other agents' trajectories into a store (oec.interop).
    from oec.interop.cli import add_import_parser, run_import

    add_import_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "import":
        return run_import(args)
    if args.command == "merge":
        return _run_merge(args.out, args.stores)
    try:
        if args.repair:
            repair = repair_store(args.root)
            if repair.moved:
                print(
                    f"repaired {args.root}: kept {repair.kept} records, moved {len(repair.moved)} lines "
                    f"to {repair.quarantine}:",
                    file=sys.stderr,
                )
                for where, reason in repair.moved.items():
                    print(f"  {where}: {reason}", file=sys.stderr)
            else:
                print(f"{args.root}: nothing to repair ({repair.kept} records)", file=sys.stderr)
        result = check_store(args.root)
        counts = load_manifest(args.root)["counts"]
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {
        "records": result.records,
        "duplicates": result.duplicates,
        "corrupt_lines": result.corrupt_lines,
        "torn_shards": result.torn_shards,
        "records_by_config_hash": result.records_by_config_hash,
    }
    print(json.dumps({**report, "manifest_counts": counts}, indent=2))
    if not result.clean:
        print(f"{args.root}: problems found; {_repair_hint(args.root)}", file=sys.stderr)
    return 0 if result.clean else 1


def _run_merge(out: Path, stores: list[Path]) -> int:
    try:
        merge = merge_stores(out, stores)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for root, records in merge.records.items():
        print(f"  {root}: {records} records", file=sys.stderr)
    if merge.missing_shards:
        missing = ", ".join(map(str, merge.missing_shards))
        print(f"warning: shards {missing} of {merge.shard_count} are not in this merge", file=sys.stderr)
    print(f"merged {len(merge.records)} stores into {out}: {merge.total} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
