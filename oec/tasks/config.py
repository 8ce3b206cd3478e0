"""Typed configuration of the ``tasks`` Hydra group (conf/tasks/*.yaml): one variant per task source.

``TasksConfig`` is the choice of source by its ``source`` key; a field of another source is an error
naming it (``tasks.cache_dir: belongs to source='embedded'``). Entry modules build it with
``oec.config.parse(TasksConfig, cfg.tasks, "tasks")``.

The row sources (``swe_bench``, ``swe_gym``, ``swe_smith`` and the generic ``file``) share their
fields (:class:`RowsSource`) and differ in how a row becomes a task: which columns it has, how its
image is named when it carries none, and which grading rule applies (:mod:`oec.tasks.rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Literal

from oec.config import AtLeast, NonEmpty
from oec.tasks.rows import RowFormat, check_image_template

Split = Literal["train", "test"]
FileFormat = Literal["jsonl", "parquet", "datasets"]
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
class RowsSource:
    """Fields shared by the sources that read task rows from a local file or folder."""

    path: Annotated[str, NonEmpty()]
    """The rows: a JSONL file, a parquet file, or a folder saved by ``datasets``' ``save_to_disk``."""
    format: FileFormat | None = None
    """``jsonl``, ``parquet`` or ``datasets``; null infers it from the extension (none: ``datasets``)."""
    split: Split | None = None
    """Keep only ``train`` or ``test`` tasks; null keeps all. Rows without a split field get this one
    (or, from a saved ``DatasetDict``, the name of their split when it is ``train`` or ``test``)."""
    instance_ids: tuple[str, ...] | None = None
    """Keep only these instances (in file order); null keeps all."""
    limit: Annotated[int, AtLeast(1)] | None = None
    """Keep at most this many tasks after the other filters (first ones in file order)."""
    repos_dir: str | None = None
    """Directory of local repository mirrors (``owner__name``); sets Task.snapshot for the local runtime."""
    image_template: str | None = None
    """Image of a row that names none, as a ``str.format`` template over ``instance_id``, ``owner``,
    ``name`` and ``commit8`` (lower case, as image names must be), e.g.
    ``registry.local/{owner}_{name}:{commit8}``. null: the source's published naming (none for ``file``).
    A row's own image is never replaced."""
    workdir: Annotated[str, NonEmpty()] = "/testbed"
    """Where the repository is inside the task's image (every published SWE image: /testbed)."""

    def __post_init__(self) -> None:
        suffix = PurePath(self.path).suffix
        if self.format is None and suffix and suffix not in _SUFFIX_FORMATS:
            raise ValueError(
                f"format: cannot infer the format of {self.path!r} from its extension; "
                "set tasks.format to jsonl, parquet or datasets"
            )
        if not self.workdir.startswith("/"):
            raise ValueError(f"workdir: must be an absolute path, got {self.workdir!r}")
        if self.image_template is not None:
            try:
                check_image_template(self.image_template)
            except ValueError as exc:
                raise ValueError(f"image_template: {exc}") from None

    @property
    def file_format(self) -> FileFormat:
        """The format of ``path``: ``format`` if set, else inferred from the extension."""
        return self.format or _SUFFIX_FORMATS.get(PurePath(self.path).suffix, "datasets")

    @property
    def row_format(self) -> RowFormat | None:
        """The layout of every row (:mod:`oec.tasks.rows`); None: inferred per row."""
        return None


@dataclass(frozen=True)
class FileTasks(RowsSource):
    """Rows of any of the three layouts; each row's layout is inferred from its columns."""

    source: Literal["file"] = "file"


@dataclass(frozen=True)
class SweBenchTasks(RowsSource):
    """SWE-bench rows (Full, Lite, Verified): the classic columns, or swebench 5.x rows that also
    carry ``image``, ``eval_script`` and ``log_parser``. Graded as swebench does (strict)."""

    source: Literal["swe_bench"] = "swe_bench"

    @property
    def row_format(self) -> RowFormat:
        return "swe-bench"


@dataclass(frozen=True)
class SweGymTasks(RowsSource):
    """SWE-Gym rows (SWE-bench's columns, images under ``xingyaoww/``). Graded as swebench does."""

    source: Literal["swe_gym"] = "swe_gym"

    @property
    def row_format(self) -> RowFormat:
        return "swe-gym"


@dataclass(frozen=True)
class SweSmithTasks(RowsSource):
    """SWE-smith rows: ``patch`` introduces the bug, ``image_name`` names the image of the clean
    repository. Graded with SWE-smith's rule (a listed test the log does not mention passed)."""

    source: Literal["swe_smith"] = "swe_smith"

    @property
    def row_format(self) -> RowFormat:
        return "swe-smith"


TasksConfig = EmbeddedTasks | FileTasks | SweBenchTasks | SweGymTasks | SweSmithTasks
"""Where tasks come from and which of them to use, chosen by ``source``."""
RowsConfig = FileTasks | SweBenchTasks | SweGymTasks | SweSmithTasks
"""The task sources that read rows from ``path``."""
