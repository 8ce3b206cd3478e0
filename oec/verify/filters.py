"""Filters that decide which verified trajectories are kept for training, with named reasons.

Acceptance is rejection sampling on the verified reward plus quality filters: a trajectory is
accepted iff it is resolved and no filter names a reason. The paper drops resolved trajectories
that loop or repeat actions but does not publish the rule, so the repetition filter exposes its
thresholds as knobs (``filter.repetition``); turning it off is the "without the repetition filter"
ablation. Rejected trajectories are still stored, with their reasons, so ablations can use them.

Reason names: ``unresolved``, ``task_error`` (or another verdict status that is not ``graded``:
the tests could not judge the patch, see :data:`oec.types.VerdictStatus`),
``repetition:identical_consecutive``, ``repetition:ngram``, ``repetition:identical_observations``,
``format_errors`` and ``exit_status:<status>``.

A turn counts as a format error when its call was malformed, as the loop recorded it
(:func:`oec.types.malformed_turns`: a reply that does not parse, or a call the toolbox rejected).
An action's identity is its tool call with whitespace runs in every argument collapsed, so
re-running ``pytest  -q`` and ``pytest -q`` counts as the same action.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from oec.agent.actions import FormatError, parse_action
from oec.config import AtLeast
from oec.types import ExitStatus, Message, Trajectory, malformed_turns

ActionKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class RepetitionConfig:
    """``filter.repetition``: loop detection. A threshold of null disables that check."""

    enabled: bool = True
    """Master switch; false is the "without the repetition filter" ablation."""
    max_identical_consecutive_actions: Annotated[int, AtLeast(1)] | None = 2
    """Longest allowed run of the same action; a third identical call in a row is a loop."""
    ngram_size: Annotated[int, AtLeast(1)] = 2
    """Length of the action n-grams counted by ``max_ngram_repeats``."""
    max_ngram_repeats: Annotated[int, AtLeast(1)] | None = 3
    """Most times any one action n-gram may occur (overlapping), e.g. an edit/run cycle redone."""
    max_identical_consecutive_observations: Annotated[int, AtLeast(1)] | None = None
    """Longest allowed run of identical observations (off by default: silent commands repeat)."""


@dataclass(frozen=True)
class FilterConfig:
    """``filter`` config group: which resolved trajectories are accepted for training."""

    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    max_format_errors: Annotated[int, AtLeast(0)] | None = 2
    """Most format-error turns a kept trajectory may contain (null: no limit)."""
    allowed_exit_statuses: list[ExitStatus] = field(default_factory=lambda: ["submitted"])
    """Exit statuses a kept trajectory may have; others are rejected as ``exit_status:<status>``."""


class Filter(Protocol):
    def __call__(self, trajectory: Trajectory) -> list[str]:
        """Names of the reasons to reject ``trajectory``; empty when it passes."""
        ...


def action_key(message: Message) -> ActionKey | None:
    """Identity of the action in an assistant message; None when it is not a well-formed call."""
    try:
        call = parse_action(message.content).call
    except FormatError:
        return None
    return call.name, tuple(sorted((k, " ".join(v.split())) for k, v in call.arguments.items()))


def _longest_run(items: Iterable[object]) -> int:
    longest = run = 0
    previous: object = object()
    for item in items:
        run = run + 1 if item == previous else 1
        longest = max(longest, run)
        previous = item
    return longest


@dataclass(frozen=True)
class RepetitionFilter:
    """Rejects loops: identical consecutive actions, repeated action n-grams, identical observations."""

    config: RepetitionConfig

    def __call__(self, trajectory: Trajectory) -> list[str]:
        cfg = self.config
        actions = [key for m in trajectory.messages if m.role == "assistant" and (key := action_key(m))]
        reasons = []
        limit = cfg.max_identical_consecutive_actions
        if limit is not None and _longest_run(actions) > limit:
            reasons.append("repetition:identical_consecutive")
        n = cfg.ngram_size
        ngrams = Counter(tuple(actions[i : i + n]) for i in range(len(actions) - n + 1))
        if cfg.max_ngram_repeats is not None and ngrams and max(ngrams.values()) > cfg.max_ngram_repeats:
            reasons.append("repetition:ngram")
        limit = cfg.max_identical_consecutive_observations
        observations = [m.content for m in trajectory.messages if m.author == "env"]
        if limit is not None and _longest_run(observations) > limit:
            reasons.append("repetition:identical_observations")
        return reasons


@dataclass(frozen=True)
class FormatErrorFilter:
    max_format_errors: int

    def __call__(self, trajectory: Trajectory) -> list[str]:
        return ["format_errors"] if len(malformed_turns(trajectory.messages)) > self.max_format_errors else []


@dataclass(frozen=True)
class ExitStatusFilter:
    allowed: frozenset[str]

    def __call__(self, trajectory: Trajectory) -> list[str]:
        return [] if trajectory.exit_status in self.allowed else [f"exit_status:{trajectory.exit_status}"]


def resolved_filter(trajectory: Trajectory) -> list[str]:
    """The verified reward: ``unresolved``, or the verdict's status when the tests could not judge
    the patch (``task_error``), so a broken task never passes for a failure of the agent."""
    if trajectory.verdict is not None and trajectory.ungraded:
        return [trajectory.verdict.status]
    return [] if trajectory.resolved else ["unresolved"]


def build_filters(config: FilterConfig) -> list[Filter]:
    """The filters ``config`` enables, the verified-reward check first."""
    filters: list[Filter] = [resolved_filter]
    if config.repetition.enabled:
        filters.append(RepetitionFilter(config.repetition))
    if config.max_format_errors is not None:
        filters.append(FormatErrorFilter(config.max_format_errors))
    filters.append(ExitStatusFilter(frozenset(config.allowed_exit_statuses)))
    return filters


def apply_filters(trajectory: Trajectory, config: FilterConfig) -> tuple[bool, list[str]]:
    """(accepted, reasons): accepted iff resolved (hence graded) and no filter names a reason."""
    reasons = [reason for check in build_filters(config) for reason in check(trajectory)]
    return not reasons, reasons
