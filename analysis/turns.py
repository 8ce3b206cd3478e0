"""Per-turn records of stored trajectories: what each model call did, in the terms the metrics compare.

A turn is one model call; its index is the message's ``turn`` (0-based, counted over the whole
rollout whoever made the call). One :class:`TurnRecord` is made per assistant message of the
selected author, so an OEC rollout switched at k gives student records for turns 0..k-1 to a
student group and expert records for turns k.. to an expert group: each group is compared where
it really acted, at the absolute turn depth of the conversation.

Action categories coarsen a tool call into a small vocabulary (so per-turn distributions are
estimable from tens of samples): ``bash:<program>`` with the program normalised
(:data:`BASH_PROGRAMS`, anything else ``bash:other``), ``str_replace_editor:<command>``,
``submit``, another tool's name, and :data:`FORMAT_ERROR`. A turn is a format error when the loop
recorded its call as malformed (:func:`oec.types.malformed_turns`, as the format-error filter reads
it); only a well-formed call is parsed for its category. Action identity is the repetition filter's
(:func:`oec.verify.filters.action_key`): a turn repeats when its tool call equals the previous model
call's (whitespace runs collapsed). A record keeps two texts for the embedding metrics' views: the
model's reply (``text``) and the environment's answer to that call (``observation``: the content of
the env message(s) of the same turn, an observation or a format-error notice; empty when the episode
ended without one).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oec.agent.actions import FormatError, parse_action
from oec.store import StoreError, read_trajectories
from oec.types import Trajectory, malformed_turns
from oec.verify.filters import action_key

FORMAT_ERROR = "FORMAT_ERROR"

BASH_PROGRAMS: dict[str, str] = {
    "pytest": "pytest",
    "py.test": "pytest",
    "python": "python",
    "grep": "grep",
    "egrep": "grep",
    "rg": "grep",
    "cat": "cat",
    "head": "cat",
    "tail": "cat",
    "nl": "cat",
    "ls": "ls",
    "tree": "ls",
    "find": "find",
    "git": "git",
    "sed": "sed",
}
"""Program name -> category; programs that read files the same way share one category."""

_SEGMENT_SPLIT = re.compile(r"&&|\|\||;|\|")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")


class AnalysisError(ValueError):
    """Input the analysis cannot use; the message names the store, group or field."""


@dataclass(frozen=True)
class TurnRecord:
    """One model call of one rollout, reduced to what the turn-wise metrics compare."""

    instance_id: str
    sample_index: int
    turn: int
    author: str
    category: str
    format_error: bool
    repeated: bool
    text: str
    """The assistant message's content: the model's action (reasoning and tool call)."""
    observation: str = ""
    """The environment's answer to this call (its env messages of the same turn, joined by a newline)."""


def _words(segment: str) -> list[str]:
    try:
        return shlex.split(segment)
    except ValueError:
        # An unbalanced quote: the first word is still the program.
        return segment.split()


def bash_category(command: str) -> str:
    """``bash:<program>`` of the command's first real program.

    Leading ``cd DIR`` segments and ``VAR=value`` assignments are skipped (``cd /repo && pytest``
    is a test run), a path is reduced to its basename, ``python3.11`` to ``python`` and
    ``python -m pytest`` to ``pytest``.
    """
    for segment in _SEGMENT_SPLIT.split(command):
        words = [w for w in _words(segment) if not _ASSIGNMENT.match(w)]
        if not words or words[0] == "cd":
            continue
        program = words[0].rsplit("/", 1)[-1]
        if _PYTHON.match(program):
            module = words[2] if len(words) > 2 and words[1] == "-m" else None
            program = "pytest" if module in ("pytest", "py.test") else "python"
        return f"bash:{BASH_PROGRAMS.get(program, 'other')}"
    return "bash:other"


def action_category(content: str) -> str:
    """Category of an assistant reply's tool call; :data:`FORMAT_ERROR` when it does not parse."""
    try:
        call = parse_action(content).call
    except FormatError:
        return FORMAT_ERROR
    if call.name == "bash":
        return bash_category(call.arguments.get("command", ""))
    if call.name == "str_replace_editor":
        return f"str_replace_editor:{call.arguments.get('command', '?')}"
    return call.name


def turn_records(trajectory: Trajectory, author: str) -> list[TurnRecord]:
    """Records of the model calls ``author`` made in ``trajectory``, in turn order."""
    errors = set(malformed_turns(trajectory.messages))
    answers: dict[int, list[str]] = {}
    for message in trajectory.messages:
        if message.author == "env":
            answers.setdefault(message.turn, []).append(message.content)
    records = []
    previous = None
    for message in trajectory.messages:
        if message.role != "assistant":
            continue
        key = action_key(message)
        if message.author == author:
            error = message.turn in errors
            records.append(
                TurnRecord(
                    instance_id=trajectory.instance_id,
                    sample_index=trajectory.sample_index,
                    turn=message.turn,
                    author=message.author,
                    category=FORMAT_ERROR if error else action_category(message.content),
                    format_error=error,
                    repeated=key is not None and key == previous,
                    text=message.content,
                    observation="\n".join(answers.get(message.turn, [])),
                )
            )
        previous = key
    return records


Rollouts = dict[str, list[list[TurnRecord]]]
"""instance_id -> one list of turn records per rollout."""


@dataclass(frozen=True)
class GroupSpec:
    """Where one group's turns come from: stores, the author whose turns count, optional filters."""

    name: str
    stores: tuple[Path, ...]
    author: str
    modes: tuple[str, ...] = ()
    """Trajectory modes to keep (``bc``, ``on_policy``, ``oec``, ``dagger``); empty keeps all."""
    accepted_only: bool = False


def _read(spec: GroupSpec) -> Iterable[tuple[int, Trajectory]]:
    for index, root in enumerate(spec.stores):
        try:
            trajectories = list(read_trajectories(root, accepted_only=spec.accepted_only))
        except StoreError as exc:
            raise AnalysisError(f"{spec.name} group: {exc}") from exc
        if not trajectories:
            which = "accepted trajectories" if spec.accepted_only else "trajectories"
            raise AnalysisError(f"{spec.name} group: store {root} holds no {which}")
        for trajectory in trajectories:
            yield index, trajectory


def load_group(spec: GroupSpec, max_per_instance: int | None = None) -> Rollouts:
    """Turn records per instance of every rollout in which ``spec.author`` made a call.

    With ``max_per_instance`` each instance keeps its first rollouts in (store order, sample index)
    order, so a cap selects the same rollouts on every run.
    """
    if not spec.stores:
        raise AnalysisError(f"{spec.name} group: no store given")
    if max_per_instance is not None and max_per_instance < 1:
        raise AnalysisError(f"max_per_instance: must be >= 1 or None, got {max_per_instance}")
    found: dict[str, list[tuple[int, int, list[TurnRecord]]]] = {}
    for store_index, trajectory in _read(spec):
        if spec.modes and trajectory.mode not in spec.modes:
            continue
        records = turn_records(trajectory, spec.author)
        if records:
            entry = (store_index, trajectory.sample_index, records)
            found.setdefault(trajectory.instance_id, []).append(entry)
    if not found:
        modes = ", ".join(spec.modes) or "any"
        raise AnalysisError(
            f"{spec.name} group: no {spec.author}-authored turns in {', '.join(map(str, spec.stores))} "
            f"(modes: {modes}; accepted only: {spec.accepted_only})"
        )
    rollouts: Rollouts = {}
    for instance, entries in sorted(found.items()):
        entries.sort(key=lambda entry: entry[:2])
        rollouts[instance] = [records for *_, records in entries[:max_per_instance]]
    return rollouts


def shared_instances(student: Rollouts, expert: Rollouts) -> list[str]:
    """Instances both groups have rollouts for, sorted; an error naming both sets when there are none."""
    shared = sorted(set(student) & set(expert))
    if not shared:

        def show(names: Sequence[str]) -> str:
            names = sorted(names)
            return ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")

        raise AnalysisError(
            f"no shared tasks: the student group has {show(list(student))}; "
            f"the expert group has {show(list(expert))}"
        )
    return shared
