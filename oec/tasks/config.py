"""Typed configuration of the ``tasks`` Hydra group (conf/tasks/*.yaml): one variant per task source.

``TasksConfig`` is the choice of source by its ``source`` key; a field of the other source is an
error naming it (``tasks.path: belongs to source='file'``). Entry modules build it with
``oec.config.parse(TasksConfig, cfg.tasks, "tasks")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Literal

from oec.config import AtLeast, NonEmpty

Split = Literal["train", "test"]
FileFormat = Literal["jsonl", "parquet"]
_SUFFIX_FORMATS: dict[str, FileFormat] = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class EmbeddedTasks:
    """The bundled embedded tasks (oec/tasks/embedded/tasks.jsonl)."""

    source: Literal["embedded"] = "embedded"
    split: Split | None = None
    """Keep only ``train`` or ``test`` tasks; null keeps all."""
    instance_ids: tuple[str, ...] | None = None
    """Keep only these instances (in file order); null keeps all."""
    limit: Annotated[int, AtLeast(1)] | None = None
    """Keep at most this many tasks after the other filters (first ones in file order)."""
    cache_dir: str | None = None
    """Where base repositories are materialised; null is ~/.cache/oec/embedded."""


@dataclass(frozen=True)
class FileTasks:
    """SWE-bench / SWE-Gym / SWE-smith rows from a local JSONL or parquet file."""

    path: Annotated[str, NonEmpty()]
    """The rows file."""
    source: Literal["file"] = "file"
    format: FileFormat | None = None
    """``jsonl`` or ``parquet``; null infers it from the file extension."""
    split: Split | None = None
    """Keep only ``train`` or ``test`` tasks; null keeps all. Rows without a split field get this one."""
    instance_ids: tuple[str, ...] | None = None
    """Keep only these instances (in file order); null keeps all."""
    limit: Annotated[int, AtLeast(1)] | None = None
    """Keep at most this many tasks after the other filters (first ones in file order)."""
    repos_dir: str | None = None
    """Directory of local repository mirrors (``owner__name``); sets Task.snapshot."""

    def __post_init__(self) -> None:
        if self.format is None and PurePath(self.path).suffix not in _SUFFIX_FORMATS:
            raise ValueError(
                f"format: cannot infer the format of {self.path!r} from its extension; "
                "set tasks.format to jsonl or parquet"
            )

    @property
    def file_format(self) -> FileFormat:
        """The format of ``path``: ``format`` if set, else inferred from the extension."""
        return self.format or _SUFFIX_FORMATS[PurePath(self.path).suffix]


TasksConfig = EmbeddedTasks | FileTasks
"""Where tasks come from and which of them to use, chosen by ``source``."""
