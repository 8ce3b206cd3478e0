"""Foreign trajectories to our :class:`Trajectory`, and an import of files into a store.

A reader gives a :class:`Source`: the problem statement, one :class:`Turn` per model call (its
action as our typed :class:`Action`, and the observation it got), the exit status, the patch and the
model name. :func:`to_trajectory` renders it exactly as a collected rollout is stored: the student's
system prompt and task prompt (:class:`oec.agent.prompts.Prompts`), each action written with
:func:`oec.agent.actions.render_action` (so it renders and masks like the student's own calls), each
observation with :func:`oec.agent.prompts.observation` (a source observation that already starts
with our ``OBSERVATION:`` line, as SWE-agent's ``next_step_template`` writes it, keeps only one);
``submit`` ends the conversation, as in the loop. Every action must validate against our tools and
survive the render -> parse round trip, otherwise the file (or row) is skipped (:class:`Skip`) with a
named reason; a trajectory is imported whole or not at all, so every assistant turn is kept.

Verdicts are never invented: a source without a resolved flag gets ``verdict=None``. Acceptance
applies :func:`oec.verify.filters.apply_filters` with the default :class:`FilterConfig`; an unknown
verdict is not accepted (reason ``unverified``) unless ``accept_unknown`` is set, in which case it is
accepted when the quality filters pass.

``sample_index``: for formats of one trajectory per file (:data:`Reader`), the position of the
file in the sorted list of files of one import; for formats of many rows per file (:data:`RowReader`),
the rank of the row among the rows of its instance (:func:`import_rows`). Either way several
trajectories of one instance never collide, and importing the same files into the same store again
finds every pair already stored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from oec.agent.actions import Action, FormatError, parse_action, render_action
from oec.agent.prompts import OBSERVATION_PREFIX, Prompts, observation
from oec.agent.tools import NO_OUTPUT, TOOL_DOCS, InvalidToolCall, validate
from oec.store import TrajectoryStore, sha256_of
from oec.types import ExitStatus, Message, Trajectory, Verdict
from oec.verify.filters import FilterConfig, apply_filters

ImportAuthor = Literal["expert", "student"]


class Skip(Exception):
    """A source file that cannot be converted; ``reason`` is a short name counted in the report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ImportOptions:
    """How an import reads its sources (recorded in the store's config)."""

    author: ImportAuthor = "expert"
    """Who made the source's assistant turns: ``expert`` (a demonstrator; mode ``bc``) or
    ``student`` (the student's own rollouts; mode ``on_policy``)."""
    accept_unknown: bool = False
    """Accept trajectories whose source has no resolved flag when they pass the quality filters."""
    foreign_tools_as_bash: bool = False
    """Keep a call to a tool we do not have (e.g. SWE-agent's windowed editor ``open``, ``edit``,
    ``find_file``) as a ``bash`` call of the command line the source agent ran in its shell, instead
    of skipping the trajectory (``unmappable_tool:<name>``). Such a command does not exist in our
    sandbox, so the student learns a call that fails there: opt-in only."""


@dataclass(frozen=True)
class Turn:
    """One model call of the source: the action, and the observation it got (None after ``submit``)."""

    action: Action
    observation: str | None


@dataclass(frozen=True)
class Source:
    """What a reader extracts from one source file."""

    instance_id: str
    problem_statement: str
    turns: list[Turn]
    exit_status: ExitStatus
    patch: str
    model: str
    resolved: bool | None = None
    """The source's resolved flag; None when it has none (the verdict stays unknown)."""
    token_counts: dict[str, int] = field(default_factory=dict)
    """Prompt and completion tokens of the source's model calls, keyed ``prompt`` / ``completion``."""


def message_text(content: object) -> str:
    """A chat message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def bash_observation(output: str, exit_code: int | None) -> str:
    """What our ``bash`` tool shows for a command's output and exit code (see ``ToolBox._observe``)."""
    if output or exit_code is None:
        return output
    if exit_code == 0:
        return NO_OUTPUT
    return f"Your command did not produce any output and exited with status {exit_code}."


def checked_action(action: Action) -> Action:
    """``action`` if our tools accept its call and it survives render -> parse unchanged; else Skip."""
    try:
        validate(action.call)
    except InvalidToolCall as exc:
        raise Skip("invalid_call", str(exc)) from exc
    try:
        parsed = parse_action(render_action(action))
    except FormatError as exc:
        raise Skip("unrenderable_action", str(exc)) from exc
    if parsed != action:
        raise Skip("unrenderable_action", f"{action.call.name} call does not survive render -> parse")
    return action


def to_trajectory(
    source: Source, options: ImportOptions, sample_index: int, filters: FilterConfig | None = None
) -> Trajectory:
    """The stored form of ``source``: our prompts, the student's action format, filters applied."""
    if not source.turns:
        raise Skip("no_turns")
    prompts = Prompts()
    messages = [
        Message("system", prompts.render_student_system(TOOL_DOCS), "system", -1),
        Message("user", prompts.render_task(source.problem_statement), "user", -1),
    ]
    for turn, step in enumerate(source.turns):
        action = checked_action(step.action)
        messages.append(Message("assistant", render_action(action), options.author, turn))
        if action.call.name == "submit":
            if turn != len(source.turns) - 1:
                raise Skip("submit_not_last", f"submit at call {turn} of {len(source.turns)}")
            break
        if step.observation is not None:
            shown = step.observation.removeprefix(OBSERVATION_PREFIX)  # SWE-smith's template adds one too
            messages.append(Message("user", observation(shown), "env", turn, "observation"))
    tokens = {f"{options.author}_{name}": count for name, count in source.token_counts.items()}
    trajectory = Trajectory(
        instance_id=source.instance_id,
        sample_index=sample_index,
        mode="bc" if options.author == "expert" else "on_policy",
        seed=0,
        messages=messages,
        models={options.author: source.model},
        exit_status=source.exit_status,
        patch=source.patch,
        verdict=None if source.resolved is None else Verdict(resolved=source.resolved),
        token_counts=tokens,
    )
    accepted, reasons = apply_filters(trajectory, filters or FilterConfig())
    if trajectory.verdict is None:
        # apply_filters reads a missing verdict as unresolved; name it for what it is.
        reasons = [r for r in reasons if r != "unresolved"] + (
            [] if options.accept_unknown else ["unverified"]
        )
        accepted = not reasons
    trajectory.accepted, trajectory.filter_reasons = accepted, reasons
    return trajectory


Reader = Callable[[Path, ImportOptions], Source]
"""A format of one trajectory per file."""


@dataclass(frozen=True)
class Row:
    """One row of a file of many trajectories (JSONL, parquet, a saved ``datasets`` folder)."""

    label: str
    """Where the row is: ``<file>:<row>`` (``<folder>/<split>:<row>`` for a ``datasets`` folder)."""
    order: str
    """Orders the trajectories of one instance (e.g. SWE-smith's ``traj_id``); ties keep file order."""
    outcome: Source | Skip


RowReader = Callable[[Path, ImportOptions], Iterator[Row]]
"""A format of many trajectories per file."""

DATASET_MARKERS = ("dataset_dict.json", "state.json")
"""Files that make a folder a saved ``datasets`` folder (``save_to_disk``), read as one source."""


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in DATASET_MARKERS)


def source_files(paths: Sequence[str | Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Every file named in ``paths``, and every file ending in one of ``suffixes`` under a folder
    among them (recursively), sorted and without repeats; a saved ``datasets`` folder is one source
    itself. A missing path is a FileNotFoundError."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if is_saved_dataset(path):
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"import: {path} does not exist")
    return sorted(found)


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | Skip]]:
    """(label, row) of every row of a JSONL file, a parquet file or a saved ``datasets`` folder."""
    if is_saved_dataset(path):
        from datasets import Dataset, load_from_disk

        loaded = load_from_disk(str(path))
        splits = {"": loaded} if isinstance(loaded, Dataset) else dict(sorted(loaded.items()))
        for split, dataset in splits.items():
            prefix = f"{path}/{split}" if split else str(path)
            for index, row in enumerate(dataset):
                yield f"{prefix}:{index}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}:{index}", row
    else:
        with path.open(encoding="utf-8") as lines:
            for index, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{path}:{index}", Skip("invalid_json", str(exc))
                    continue
                if not isinstance(row, dict):
                    row = Skip("not_a_row", f"a JSON {type(row).__name__}, not an object")
                yield f"{path}:{index}", row


@dataclass
class ImportReport:
    """What one import did: how many trajectories it stored and, per reason, how many it skipped."""

    imported: int = 0
    accepted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    files: dict[str, str] = field(default_factory=dict)
    """Each source file (or row) -> ``imported <instance>#<sample>`` or ``skipped: <reason and detail>``."""


def _read_file(reader: Reader, path: Path, options: ImportOptions) -> Source | Skip:
    try:
        return reader(path, options)
    except Skip as skip:
        return skip


def import_files(
    format_name: str,
    reader: Reader,
    files: Sequence[Path],
    out: str | Path,
    options: ImportOptions,
) -> ImportReport:
    """Convert each file with ``reader`` and append the trajectories to the store at ``out``;
    ``sample_index`` is the file's position in ``files``."""
    entries = ((str(p), i, _read_file(reader, p, options)) for i, p in enumerate(files))
    return _store(format_name, files, entries, out, options)


def import_rows(
    format_name: str,
    reader: RowReader,
    files: Sequence[Path],
    out: str | Path,
    options: ImportOptions,
) -> ImportReport:
    """Convert every row of each file with ``reader`` and append the trajectories to the store at
    ``out``. ``sample_index`` numbers the trajectories of one instance across the import, by
    :attr:`Row.order`, then file, then row, so they never collide and a second import of the same
    files gives the same keys."""
    rows = [(row, f, r) for f, path in enumerate(files) for r, row in enumerate(reader(path, options))]
    by_instance: dict[str, list[tuple[str, int, int]]] = {}
    for row, f, r in rows:
        if isinstance(row.outcome, Source):
            by_instance.setdefault(row.outcome.instance_id, []).append((row.order, f, r))
    rank = {(f, r): index for group in by_instance.values() for index, (_, f, r) in enumerate(sorted(group))}
    entries = ((row.label, rank.get((f, r), 0), row.outcome) for row, f, r in rows)
    return _store(format_name, files, entries, out, options)


def _store(
    format_name: str,
    files: Sequence[Path],
    entries: Iterable[tuple[str, int, Source | Skip]],
    out: str | Path,
    options: ImportOptions,
) -> ImportReport:
    """Append each entry's trajectory (label, sample_index, source) to the store at ``out``.

    The store's config records the import (format, files with their SHA-256, options, filters), so
    its records' ``config_hash`` names where they came from; reopening a store made by another import
    config is refused by :meth:`TrajectoryStore.open`.
    """
    filters = FilterConfig()
    config = {
        "import": {
            "format": format_name,
            "sources": [{"path": str(p), "sha256": sha256_of(p)} for p in files],
            **asdict(options),
            "filters": asdict(filters),
        }
    }
    report = ImportReport()
    with TrajectoryStore.open(out, config) as store:
        done = store.done_keys()
        for label, sample_index, source in entries:
            try:
                if isinstance(source, Skip):
                    raise source
                trajectory = to_trajectory(source, options, sample_index, filters)
                if trajectory.key in done:
                    raise Skip("already_stored", f"{trajectory.instance_id}#{sample_index}")
            except Skip as skip:
                report.skipped[skip.reason] += 1
                report.files[label] = f"skipped: {skip}"
                continue
            store.append(trajectory)
            done.add(trajectory.key)
            report.imported += 1
            report.accepted += int(trajectory.accepted)
            report.files[label] = f"imported {trajectory.instance_id}#{sample_index}"
    return report


def load_json(path: Path) -> object:
    """The JSON document in ``path``, or Skip ``invalid_json``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Skip("invalid_json", str(exc)) from exc
