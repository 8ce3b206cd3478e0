"""Typed configuration of the ``tasks`` Hydra group (conf/tasks/*.yaml), validated on construction.

Entry modules convert ``cfg.tasks`` with :meth:`TasksConfig.from_dict` before touching a model or a
sandbox; every error names the config key (``tasks.split``, ``tasks.path``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any

SOURCES = ("embedded", "file")
FORMATS = ("jsonl", "parquet")
SPLITS = ("train", "test")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class TasksConfigError(ValueError):
    """An invalid ``tasks`` config value; the message starts with the config key."""


@dataclass(frozen=True)
class TasksConfig:
    """Where tasks come from and which of them to use."""

    source: str = "embedded"
    """``embedded`` (the bundled tasks.jsonl) or ``file`` (SWE-bench / SWE-Gym / SWE-smith rows)."""
    path: str | None = None
    """source=file: the JSONL or parquet file of rows."""
    format: str | None = None
    """source=file: ``jsonl`` or ``parquet``; null infers it from the file extension."""
    split: str | None = None
    """Keep only ``train`` or ``test`` tasks; null keeps all. For files, rows without a split get this one."""
    instance_ids: tuple[str, ...] | None = None
    """Keep only these instances (in file order); null keeps all."""
    limit: int | None = None
    """Keep at most this many tasks after the other filters (first ones in file order)."""
    cache_dir: str | None = None
    """source=embedded: where base repositories are materialised; null is ~/.cache/oec/embedded."""
    repos_dir: str | None = None
    """source=file: directory of local repository mirrors (``owner__name``); sets Task.snapshot."""

    def __post_init__(self) -> None:
        key = "tasks"
        if self.source not in SOURCES:
            raise TasksConfigError(f"{key}.source: must be one of {SOURCES}, got {self.source!r}")
        if self.split is not None and self.split not in SPLITS:
            raise TasksConfigError(f"{key}.split: must be one of {SPLITS} or null, got {self.split!r}")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)):
            raise TasksConfigError(f"{key}.limit: must be an integer or null, got {self.limit!r}")
        if self.limit is not None and self.limit < 1:
            raise TasksConfigError(f"{key}.limit: must be at least 1, got {self.limit}")
        if self.instance_ids is not None:
            if isinstance(self.instance_ids, str) or not all(isinstance(i, str) for i in self.instance_ids):
                raise TasksConfigError(f"{key}.instance_ids: must be a list of strings or null")
            object.__setattr__(self, "instance_ids", tuple(self.instance_ids))
        if self.format is not None and self.format not in FORMATS:
            raise TasksConfigError(f"{key}.format: must be one of {FORMATS} or null, got {self.format!r}")
        if self.source == "file":
            if not self.path:
                raise TasksConfigError(f"{key}.path: required when tasks.source is 'file'")
            if self.format is None and PurePath(self.path).suffix not in _SUFFIX_FORMATS:
                raise TasksConfigError(
                    f"{key}.format: cannot infer the format of {self.path!r} from its extension; "
                    f"set tasks.format to one of {FORMATS}"
                )
        else:
            for name in ("path", "format", "repos_dir"):
                if getattr(self, name) is not None:
                    raise TasksConfigError(f"{key}.{name}: only used with tasks.source=file")

    @property
    def file_format(self) -> str:
        """The format of ``path``: ``format`` if set, else inferred from the extension."""
        return self.format or _SUFFIX_FORMATS[PurePath(str(self.path)).suffix]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TasksConfig:
        """Build from a plain mapping (``OmegaConf.to_container(cfg.tasks)``); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TasksConfigError(f"tasks.{unknown[0]}: unknown key (known: {sorted(known)})")
        return cls(**dict(data))
