"""Load tasks: the embedded set, or SWE-bench / SWE-Gym / SWE-smith rows from JSONL or parquet files.

Every source yields :class:`oec.types.Task`. Loading is tolerant per row and strict per field: a
malformed row (invalid JSON or UTF-8, a missing or mistyped field, a duplicate id) is reported in
``LoadResult.errors`` with its row number and instance id and skipped, and the other rows load. A
tasks file that is missing or cannot be read at all is a :class:`oec.config.ConfigError` naming the
file and its key (``tasks.path: ...``), which entry points report as a config error.

Row mapping. SWE-bench and SWE-Gym rows carry every Task field (FAIL_TO_PASS / PASS_TO_PASS may be
JSON-encoded strings, as on the hub); their other columns (``hints_text``, ``created_at``,
``environment_setup_commit``...) go to ``metadata``. SWE-smith rows have ``image_name`` and no
``test_patch`` (their tests live in the repository): ``test_patch`` becomes empty and a missing
``base_commit`` becomes the instance id, the branch that holds the instance in a SWE-smith mirror.
``metadata["row_format"]`` records which mapping was used.

Snapshots. Embedded tasks are materialised eagerly, after filtering, into the cache (so only the
selected tasks are built, and each load returns ready-to-clone repositories; a cached repository
costs one ``git rev-parse``). File rows get ``snapshot`` from a row's own ``snapshot`` field, else
from ``repos_dir`` when it holds a mirror named ``owner__name``, ``owner/name`` or ``name``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oec.config import ConfigError, parse
from oec.tasks.config import EmbeddedTasks, FileTasks, TasksConfig
from oec.tasks.embedded import TASKS_FILE, MaterializeError, image_name, materialize
from oec.types import SchemaError, Task

TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(Task))


@dataclass(frozen=True)
class RowError:
    """One row that was skipped: its 1-based row number (line number for JSONL), its id if known, why."""

    row: int | None
    instance_id: str | None
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        if self.instance_id is not None:
            where.append(f"instance {self.instance_id!r}")
        return f"{', '.join(where) or 'tasks'}: {self.message}"


@dataclass
class LoadResult:
    """The tasks that loaded and the rows that did not."""

    tasks: list[Task]
    errors: list[RowError] = field(default_factory=list)
    source: str = ""


def _jsonable(value: Any) -> Any:
    """Parquet timestamps arrive as datetimes; metadata must stay JSON-serialisable."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


def _snapshot_in(repos_dir: Path, repo: str) -> str | None:
    for candidate in (repo.replace("/", "__"), repo, repo.rsplit("/", 1)[-1]):
        path = repos_dir / candidate
        if (path / ".git").exists() or (path / "HEAD").is_file():
            return str(path)
    return None


def task_from_row(row: Any, *, default_split: str | None = None, repos_dir: str | Path | None = None) -> Task:
    """Map one SWE-bench / SWE-Gym / SWE-smith / embedded row to a Task; raise SchemaError if invalid."""
    if not isinstance(row, dict):
        raise SchemaError(f"row must be an object, got {type(row).__name__}")
    data = dict(row)
    row_format = "swe-smith" if "image_name" in data and "test_patch" not in data else "swe-bench"
    if row_format == "swe-smith":
        data["test_patch"] = ""
        if not data.get("base_commit") and isinstance(data.get("instance_id"), str):
            data["base_commit"] = data["instance_id"]
    metadata = {k: _jsonable(v) for k, v in data.items() if k not in TASK_FIELDS}
    own = data.get("metadata") or {}
    if not isinstance(own, dict):
        raise SchemaError(f"task {data.get('instance_id', '?')!r}: field 'metadata' must be an object")
    metadata.update(own)
    metadata.setdefault("row_format", row_format)
    data["metadata"] = metadata
    data["split"] = data.get("split") or default_split
    if not data.get("snapshot") and repos_dir is not None and isinstance(data.get("repo"), str):
        data["snapshot"] = _snapshot_in(Path(repos_dir), data["repo"])
    return Task.from_dict(data)


def _read_rows(path: Path, file_format: str) -> Iterator[tuple[int, Any]]:
    """Yield (row number, row); a JSON line that does not parse yields a RowError instead of a row."""
    if file_format == "parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield number, RowError(number, None, f"not UTF-8: {exc}")
            except json.JSONDecodeError as exc:
                yield number, RowError(number, None, f"invalid JSON: {exc}")


def _read_file(path: Path, file_format: str, key: str) -> list[tuple[int, Any]]:
    """Every row of ``path``; ConfigError naming ``key`` and the file when it cannot be read at all."""
    if not path.exists():
        raise ConfigError(f"{key}: tasks file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is not a file")
    try:
        return list(_read_rows(path, file_format))
    except (OSError, ValueError) as exc:  # unreadable, or not parquet (pyarrow's ArrowInvalid)
        raise ConfigError(f"{key}: cannot read {path} as {file_format}: {exc}") from exc


def _parse(
    path: Path, file_format: str, key: str, default_split: str | None, repos_dir: str | None
) -> tuple[list[tuple[int, Task]], list[RowError]]:
    tasks: list[tuple[int, Task]] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, row in _read_file(path, file_format, key):
        if isinstance(row, RowError):
            errors.append(row)
            continue
        instance_id = row.get("instance_id") if isinstance(row, dict) else None
        instance_id = instance_id if isinstance(instance_id, str) else None
        try:
            task = task_from_row(row, default_split=default_split, repos_dir=repos_dir)
        except SchemaError as exc:
            errors.append(RowError(number, instance_id, str(exc)))
            continue
        if task.instance_id in seen:
            errors.append(RowError(number, task.instance_id, "duplicate instance_id (first row kept)"))
            continue
        seen.add(task.instance_id)
        tasks.append((number, task))
    return tasks, errors


def load_tasks(source: str, **fields: Any) -> LoadResult:
    """:func:`load_from_config` from keyword arguments: ``source`` and the fields of its
    :data:`TasksConfig` variant (validated like the ``tasks`` config), plus ``materialize_snapshots``."""
    materialize_snapshots = fields.pop("materialize_snapshots", True)
    config = parse(TasksConfig, {"source": source, **fields}, "tasks")
    return load_from_config(config, materialize_snapshots=materialize_snapshots)


def load_from_config(config: TasksConfig, *, materialize_snapshots: bool = True) -> LoadResult:
    """:func:`load_tasks` for an already validated :class:`TasksConfig`; raises ConfigError when the
    tasks file is missing or unreadable."""
    if isinstance(config, FileTasks):
        file, file_format, key = Path(config.path), config.file_format, "tasks.path"
        default_split, repos_dir = config.split, config.repos_dir
    else:
        file, file_format, key, default_split, repos_dir = TASKS_FILE, "jsonl", "tasks", None, None
    numbered, errors = _parse(file, file_format, key, default_split, repos_dir)

    if config.instance_ids is not None:
        wanted = set(config.instance_ids)
        numbered = [(n, t) for n, t in numbered if t.instance_id in wanted]
        found = {t.instance_id for _, t in numbered}
        errors += [
            RowError(None, i, "requested instance id not found")
            for i in config.instance_ids
            if i not in found
        ]
    if config.split is not None:
        numbered = [(n, t) for n, t in numbered if t.split == config.split]
    if config.limit is not None:
        numbered = numbered[: config.limit]

    tasks = []
    for number, task in numbered:
        if isinstance(config, EmbeddedTasks):
            # Container runtimes run it in its image from `make images`.
            task = dataclasses.replace(task, metadata={**task.metadata, "image": image_name(task)})
        if isinstance(config, EmbeddedTasks) and materialize_snapshots:
            try:
                task = dataclasses.replace(task, snapshot=str(materialize(task, config.cache_dir)))
            except MaterializeError as exc:
                errors.append(RowError(number, task.instance_id, str(exc)))
                continue
        tasks.append(task)
    return LoadResult(tasks=tasks, errors=errors, source=str(file))
