"""Load tasks: the embedded set, or SWE-bench / SWE-Gym / SWE-smith rows from JSONL, parquet or a
saved ``datasets`` folder.

Every source yields :class:`oec.types.Task` (the row mapping, image names, grading rule and the
SWE-smith bug patch: :mod:`oec.tasks.rows`). Loading is tolerant per row and strict per field: a
malformed row (invalid JSON or UTF-8, a missing or mistyped field, a duplicate id) is reported in
``LoadResult.errors`` with its row number, instance id and field, and skipped, and the other rows
load. A tasks file that is missing or cannot be read at all is a :class:`oec.config.ConfigError`
naming the file and its key (``tasks.path: ...``), which entry points report as a config error.

The source decides the row layout: ``swe_bench``, ``swe_gym`` and ``swe_smith`` read every row as
theirs; ``file`` infers each row's layout from its columns (SWE-smith rows have ``image_name`` and no
``test_patch``) and names no image a row does not carry.

Snapshots. Embedded tasks are materialised eagerly, after filtering, into the cache (so only the
selected tasks are built, and each load returns ready-to-clone repositories; a cached repository
costs one ``git rev-parse``). Row tasks get ``snapshot`` from a row's own ``snapshot`` field, else
from ``repos_dir`` when it holds a mirror named ``owner__name``, ``owner/name`` or ``name``; container
runtimes use the image instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oec.config import ConfigError, parse
from oec.tasks.config import EmbeddedTasks, RowsSource, TasksConfig
from oec.tasks.embedded import TASKS_FILE, MaterializeError, image_name, materialize
from oec.tasks.rows import task_from_row
from oec.types import SchemaError, Task


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


def _read_rows(path: Path, file_format: str) -> Iterator[tuple[int, Any]]:
    """Yield (row number, row); a JSON line that does not parse yields a RowError instead of a row.

    A saved ``DatasetDict`` yields its splits in name order, numbered on; a row without a ``split``
    field gets its split's name when that is ``train`` or ``test``."""
    if file_format == "datasets":
        from datasets import Dataset, load_from_disk

        loaded = load_from_disk(str(path))
        splits = {None: loaded} if isinstance(loaded, Dataset) else dict(sorted(loaded.items()))
        number = 0
        for name, dataset in splits.items():
            for row in dataset:
                number += 1
                if name in ("train", "test") and not row.get("split"):
                    row = {**row, "split": name}
                yield number, row
        return
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
    if file_format == "datasets" and not path.is_dir():
        raise ConfigError(f"{key}: {path} is not a folder saved by datasets (set tasks.format for a file)")
    if file_format != "datasets" and not path.is_file():
        raise ConfigError(f"{key}: {path} is not a file")
    try:
        return list(_read_rows(path, file_format))
    except (OSError, ValueError) as exc:  # unreadable, not parquet (ArrowInvalid) or not a saved dataset
        raise ConfigError(f"{key}: cannot read {path} as {file_format}: {exc}") from exc


def _parse(
    path: Path, file_format: str, key: str, config: TasksConfig
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
            if isinstance(config, RowsSource):
                task = task_from_row(
                    row,
                    row_format=config.row_format,
                    default_split=config.split,
                    repos_dir=config.repos_dir,
                    image_template=config.image_template,
                    workdir=config.workdir,
                )
            else:
                task = task_from_row(row)
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
    if isinstance(config, RowsSource):
        file, file_format, key = Path(config.path), config.file_format, "tasks.path"
    else:
        file, file_format, key = TASKS_FILE, "jsonl", "tasks"
    numbered, errors = _parse(file, file_format, key, config)

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
