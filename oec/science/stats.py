"""Intervals of the testbed: a two-level bootstrap over seeds and tasks, paired across arms.

An outcome is recorded per cell (seed, task) as a sum and a count (e.g. resolved rollouts and graded
rollouts of that task under that seed's student). A replicate draws the seeds with replacement, then
the tasks with replacement, and estimates the mean over the drawn cells, each weighted by how often
it was drawn: ``sum_st w_s v_t sums[s, t] / sum_st w_s v_t counts[s, t]``. Every arm and every
turn is evaluated on the same draws, so differences between arms are paired (the same seeds and
tasks on both sides) and their intervals are those of the differences, not of two separate means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Draws:
    """Multinomial draw counts: ``seeds`` (replicates, n_seeds), ``tasks`` (replicates, n_tasks)."""

    seeds: np.ndarray
    tasks: np.ndarray

    @classmethod
    def make(cls, n_seeds: int, n_tasks: int, replicates: int, seed: int = 0) -> Draws:
        rng = np.random.default_rng(seed)
        return cls(
            seeds=rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=replicates).astype(float),
            tasks=rng.multinomial(n_tasks, np.full(n_tasks, 1 / n_tasks), size=replicates).astype(float),
        )


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% percentile interval (2.5-97.5%) and the cells behind it."""

    value: float
    low: float
    high: float
    n: int
    """Observations (the sum of the counts)."""

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    def cell(self, digits: int = 2) -> str:
        if np.isnan(self.value):
            return "-"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def replicates(sums: np.ndarray, counts: np.ndarray, draws: Draws) -> np.ndarray:
    """The bootstrap replicates of the weighted mean of ``sums / counts`` over (seed, task) cells; NaN
    where a replicate drew no observation."""
    numerator = np.einsum("bs,bt,st->b", draws.seeds, draws.tasks, sums)
    denominator = np.einsum("bs,bt,st->b", draws.seeds, draws.tasks, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def summarise(point: float, reps: np.ndarray, n: int) -> Estimate:
    """Percentile interval of the finite replicates around ``point``."""
    finite = reps[np.isfinite(reps)]
    if not np.isfinite(point) or finite.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Estimate(float(point), float(low), float(high), n)


def estimate(sums: np.ndarray, counts: np.ndarray, draws: Draws) -> tuple[Estimate, np.ndarray]:
    """The mean over every observation, its interval, and the replicates (for paired differences)."""
    total = counts.sum()
    point = sums.sum() / total if total else float("nan")
    reps = replicates(sums, counts, draws)
    return summarise(point, reps, int(total)), reps


def difference(a: tuple[Estimate, np.ndarray], b: tuple[Estimate, np.ndarray]) -> Estimate:
    """``a - b`` with the interval of the paired replicate differences."""
    return summarise(a[0].value - b[0].value, a[1] - b[1], min(a[0].n, b[0].n))


def slope(per_turn: dict[int, tuple[Estimate, np.ndarray]]) -> Estimate:
    """Least-squares slope of a per-turn mean against the turn index, per replicate (turns whose
    replicate is NaN are left out of that replicate's fit)."""
    turns = sorted(per_turn)
    if len(turns) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    x = np.array(turns, dtype=float)
    points = np.array([per_turn[t][0].value for t in turns])
    reps = np.stack([per_turn[t][1] for t in turns], axis=1)

    def fit(y: np.ndarray) -> float:
        keep = np.isfinite(y)
        if keep.sum() < 2:
            return float("nan")
        return float(np.polyfit(x[keep], y[keep], 1)[0])

    return summarise(fit(points), np.array([fit(row) for row in reps]), sum(per_turn[t][0].n for t in turns))
