"""Evaluate turn-wise metrics per turn index with a paired bootstrap over the shared instances.

As in the reference analysis, confidence bands come from resampling INSTANCES, not turns or
rollouts: rollouts of one task are correlated, and the question is how the shift would look on
other tasks. The bootstrap is paired: replicate b draws one multiset of shared instances and uses
it for both groups, every turn and every metric, so the bands of different turns and metrics come
from the same resamples.

For each turn t and metric label a :class:`Row` carries ``value`` (the mean over the bootstrap
replicates), ``low``/``high`` (the percentile band, 95% by default), ``estimate`` (the metric on
the data as observed), ``replicates`` (replicates where the metric was defined: a replicate whose
instances have no turn t in a group is left out), ``n`` (turn-t records behind the value; for a
between-groups label the smaller group's count) and ``instances`` (shared instances with a turn-t
record, likewise). Turns where either group has fewer than ``min_samples`` records are skipped and
listed in :attr:`TurnwiseResult.skipped`; turns before ``first_turn`` are not considered at all
(``first_turn=1`` drops turn 0, the reply to the bare task prompt, whose state every rollout shares).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.metrics import EXPERT, STUDENT, TurnGroup, TurnMetric
from analysis.turns import Rollouts, TurnRecord


@dataclass(frozen=True)
class Row:
    turn: int
    metric: str
    group: str
    value: float
    low: float
    high: float
    n: int
    instances: int
    estimate: float
    replicates: int


@dataclass(frozen=True)
class SkippedTurn:
    turn: int
    n_student: int
    n_expert: int


@dataclass
class TurnwiseResult:
    instances: list[str]
    rows: list[Row] = field(default_factory=list)
    skipped: list[SkippedTurn] = field(default_factory=list)
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Turn -> (student, expert) record counts, for every turn considered (analysed or skipped)."""


def bootstrap_weights(n_instances: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n_instances) multiplicities of instances drawn with replacement, ``n_instances`` each."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_instances, size=(replicates, n_instances))
    weights = np.zeros((replicates, n_instances))
    np.add.at(weights, (np.repeat(np.arange(replicates), n_instances), draws.ravel()), 1.0)
    return weights


def turn_groups(rollouts: Rollouts, instances: Sequence[str]) -> dict[int, TurnGroup]:
    """Turn index -> the group's records at that turn over ``instances`` (others are ignored)."""
    by_turn: dict[int, list[tuple[int, TurnRecord]]] = {}
    for position, instance in enumerate(instances):
        for rollout in rollouts.get(instance, []):
            for record in rollout:
                by_turn.setdefault(record.turn, []).append((position, record))
    return {
        turn: TurnGroup(tuple(r for _, r in pairs), np.array([p for p, _ in pairs], dtype=int))
        for turn, pairs in by_turn.items()
    }


def turnwise(
    student: Rollouts,
    expert: Rollouts,
    instances: Sequence[str],
    metrics: Sequence[TurnMetric],
    *,
    replicates: int = 500,
    seed: int = 0,
    max_turn: int | None = None,
    min_samples: int = 5,
    confidence: float = 0.95,
    first_turn: int = 0,
) -> TurnwiseResult:
    """Every metric at every turn ``first_turn``..``max_turn`` (default: the last turn any group reached)."""
    if replicates < 1:
        raise ValueError(f"bootstrap: must be >= 1 replicate, got {replicates}")
    if min_samples < 2:
        raise ValueError(f"min_samples: must be >= 2, got {min_samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    if max_turn is not None and max_turn < 0:
        raise ValueError(f"max_turn: must be >= 0, got {max_turn}")
    if first_turn < 0:
        raise ValueError(f"first_turn: must be >= 0, got {first_turn}")
    if not instances:
        raise ValueError("turnwise: no shared instances")
    groups = {STUDENT: turn_groups(student, instances), EXPERT: turn_groups(expert, instances)}
    last = max(max(g, default=-1) for g in groups.values())
    if max_turn is not None:
        last = min(last, max_turn)
    # Row 0 evaluates the data as observed; rows 1.. are the bootstrap replicates.
    weights = np.vstack([np.ones((1, len(instances))), bootstrap_weights(len(instances), replicates, seed)])
    tail = (1 - confidence) / 2 * 100
    result = TurnwiseResult(list(instances))
    empty = TurnGroup((), np.zeros(0, dtype=int))
    for turn in range(first_turn, last + 1):
        at = {name: turn_group.get(turn, empty) for name, turn_group in groups.items()}
        n = {name: len(g.records) for name, g in at.items()}
        result.counts[turn] = (n[STUDENT], n[EXPERT])
        if min(n.values()) < min_samples:
            result.skipped.append(SkippedTurn(turn, n[STUDENT], n[EXPERT]))
            continue
        covered = {name: len(set(g.instance.tolist())) for name, g in at.items()}
        for metric in metrics:
            for label, values in metric(at[STUDENT], at[EXPERT], weights).items():
                boot = values[1:][np.isfinite(values[1:])]
                low, high = np.percentile(boot, [tail, 100 - tail]) if len(boot) else (np.nan, np.nan)
                result.rows.append(
                    Row(
                        turn=turn,
                        metric=metric.name,
                        group=label,
                        value=float(boot.mean()) if len(boot) else float("nan"),
                        low=float(low),
                        high=float(high),
                        n=n.get(label, min(n.values())),
                        instances=covered.get(label, min(covered.values())),
                        estimate=float(values[0]),
                        replicates=len(boot),
                    )
                )
    return result
