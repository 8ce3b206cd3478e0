"""Turn-wise metrics: a small protocol and the metrics between (or of) the two groups at one turn.

A metric sees one turn index at a time: each group's records at that turn (pooled over the group's
rollouts of the shared instances) and a matrix of instance weights, one row per evaluation. Row b
says how many times each shared instance counts: all ones for the estimate on the data, bootstrap
multiplicities for replicate b (an instance drawn twice counts all its rollouts twice, an instance
not drawn counts zero). A metric returns, per output label, one value per row; NaN where a row
leaves a group without weight. Evaluating every replicate in one call lets count metrics vectorise
over replicates and lets an embedding metric embed the turn's texts once.

Labels: :data:`STUDENT` / :data:`EXPERT` for a per-group value (a rate), :data:`BETWEEN` for a
value between the groups (a divergence; directional ones are student relative to expert).

Adding a metric: any object with ``name``, ``description`` and ``__call__(student, expert,
weights)`` as in :class:`TurnMetric`. The paper's embedding metrics are :class:`EmbeddingMetric`
with an embedder (texts -> (n, d) array), a view (which text of a turn is embedded: the model's
reply or the environment's answer, :data:`VIEWS`) and a distance between fitted Gaussians; their
names end in the view (``frechet_assistant``, ``gaussian_kl_observation``)::

    embed = load_embedder("my_package.embed:encode")      # or any callable
    metrics = [*default_metrics(), *embedding_metrics(embed, views=("assistant",), pca=16)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

import numpy as np

from analysis.gaussian import Gaussian, fit_gaussian, frechet_distance, gaussian_kl, pca_project
from analysis.turns import TurnRecord

STUDENT = "student"
EXPERT = "expert"
BETWEEN = "student_vs_expert"

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts -> (len(texts), d) array, one embedding per text."""

VIEWS: dict[str, Callable[[TurnRecord], str]] = {
    "assistant": attrgetter("text"),
    "observation": attrgetter("observation"),
}
"""View name -> the text of a turn it embeds: the model's reply (its action), or the environment's
answer to it (the observation or format-error notice that call produced)."""


@dataclass(frozen=True)
class TurnGroup:
    """One group's records at one turn, with the index (into the shared instances) of each record."""

    records: tuple[TurnRecord, ...]
    instance: np.ndarray

    def record_weights(self, weights: np.ndarray) -> np.ndarray:
        """(rows, n) weight of every record under each row of instance ``weights`` (rows, instances)."""
        return weights[:, self.instance]

    def flags(self, field: Callable[[TurnRecord], bool]) -> np.ndarray:
        return np.array([field(r) for r in self.records], dtype=float)


class TurnMetric(Protocol):
    name: str
    description: str
    """Axis label of the metric's plot (what the value measures, with its unit)."""

    def __call__(self, student: TurnGroup, expert: TurnGroup, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Label -> value under each row of ``weights`` (rows, instances): arrays of shape (rows,)."""
        ...


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits (in [0, 1]) between the rows of two probability arrays."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / m), 0.0)
        return terms.sum(axis=-1)

    return np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0)


@dataclass(frozen=True)
class ActionJSD:
    """Jensen-Shannon divergence (base 2) between the groups' action-category distributions at a turn.

    The vocabulary is the categories either group used at this turn. ``smoothing`` is a pseudo-count
    added to every category of each group before normalising (additive smoothing). JSD is finite
    without it; the pseudo-count damps the upward bias of the plug-in estimate on few samples
    (two groups of 5 draws from one distribution rarely look identical). 0 gives the plug-in value.
    """

    smoothing: float = 0.5
    name: str = "action_jsd"
    description: str = "action-category JSD (bits)"

    def __post_init__(self) -> None:
        if self.smoothing < 0:
            raise ValueError(f"smoothing: must be >= 0, got {self.smoothing}")

    def __call__(self, student: TurnGroup, expert: TurnGroup, weights: np.ndarray) -> dict[str, np.ndarray]:
        vocabulary = sorted({r.category for r in (*student.records, *expert.records)})
        index = {category: i for i, category in enumerate(vocabulary)}

        def distribution(group: TurnGroup) -> tuple[np.ndarray, np.ndarray]:
            one_hot = np.zeros((len(group.records), len(vocabulary)))
            one_hot[np.arange(len(group.records)), [index[r.category] for r in group.records]] = 1
            w = group.record_weights(weights)
            counts = w @ one_hot + self.smoothing
            return _divide(counts, counts.sum(axis=1, keepdims=True)), w.sum(axis=1) > 0

        p, has_student = distribution(student)
        q, has_expert = distribution(expert)
        # A row that leaves a group without turns has no distribution (not the smoothing's uniform one).
        return {BETWEEN: np.where(has_student & has_expert, jensen_shannon(p, q), np.nan)}


@dataclass(frozen=True)
class RateMetric:
    """Per-group share of turns with a property (e.g. format errors), each group on its own records."""

    name: str
    description: str
    field: Callable[[TurnRecord], bool]

    def __call__(self, student: TurnGroup, expert: TurnGroup, weights: np.ndarray) -> dict[str, np.ndarray]:
        def rate(group: TurnGroup) -> np.ndarray:
            w = group.record_weights(weights)
            return _divide(w @ group.flags(self.field), w.sum(axis=1))

        return {STUDENT: rate(student), EXPERT: rate(expert)}


FORMAT_ERROR_RATE = RateMetric(
    "format_error_rate", "share of turns with a format error", attrgetter("format_error")
)
REPEAT_RATE = RateMetric(
    "repeat_rate", "share of turns repeating the previous action", attrgetter("repeated")
)


def default_metrics(smoothing: float = 0.5) -> list[TurnMetric]:
    """The metrics that need no model: action JSD, format-error rate, repeated-action rate."""
    return [ActionJSD(smoothing), FORMAT_ERROR_RATE, REPEAT_RATE]


@dataclass(frozen=True)
class EmbeddingMetric:
    """A distance between Gaussians fitted to each group's turn embeddings (the paper's analysis).

    The turn's texts in ``view`` (both groups) are embedded once per call. With ``pca`` set, the
    pooled student + expert embeddings of THIS turn (every record, unweighted, as observed) are
    projected onto their top-``pca`` principal components; the projection is fitted once per turn and
    kept fixed across bootstrap replicates, so replicates differ only in which instances they draw.
    Each weight row then refits the two Gaussians with the records' frequency weights. A row leaving
    a group with a total weight under 2 gives NaN. ``ridge`` is added to the covariance diagonals
    (needed for KL when there are fewer samples than dimensions; for unit-norm embeddings
    per-coordinate variances are about 1/d).
    """

    name: str
    description: str
    embed: Embedder
    distance: Callable[[Gaussian, Gaussian], float]
    ridge: float = 1e-3
    view: str = "assistant"
    pca: int | None = None

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view: must be one of {tuple(VIEWS)}, got {self.view!r}")
        if self.pca is not None and self.pca < 1:
            raise ValueError(f"pca: must be >= 1 component, got {self.pca}")

    def vectors(self, student: TurnGroup, expert: TurnGroup) -> np.ndarray:
        """The (student + expert records, d or ``pca``) vectors the Gaussians are fitted to."""
        text = VIEWS[self.view]
        texts = [text(r) for r in (*student.records, *expert.records)]
        vectors = np.asarray(self.embed(texts), dtype=float)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(
                f"{self.name}: the embedder returned shape {vectors.shape} for {len(texts)} texts "
                "(expected (texts, dim))"
            )
        return vectors if self.pca is None else pca_project(vectors, self.pca)

    def __call__(self, student: TurnGroup, expert: TurnGroup, weights: np.ndarray) -> dict[str, np.ndarray]:
        vectors = self.vectors(student, expert)
        xs, xe = vectors[: len(student.records)], vectors[len(student.records) :]
        ws, we = student.record_weights(weights), expert.record_weights(weights)
        values = np.full(len(weights), np.nan)
        for row in range(len(weights)):
            if ws[row].sum() >= 2 and we[row].sum() >= 2:
                values[row] = self.distance(
                    fit_gaussian(xs, ws[row], self.ridge), fit_gaussian(xe, we[row], self.ridge)
                )
        return {BETWEEN: values}


def frechet_metric(
    embed: Embedder, ridge: float = 1e-3, view: str = "assistant", pca: int | None = None
) -> EmbeddingMetric:
    return EmbeddingMetric(
        f"frechet_{view}", f"Frechet distance, {view} embeddings", embed, frechet_distance, ridge, view, pca
    )


def gaussian_kl_metric(
    embed: Embedder, ridge: float = 1e-3, view: str = "assistant", pca: int | None = None
) -> EmbeddingMetric:
    return EmbeddingMetric(
        f"gaussian_kl_{view}",
        f"KL(student || expert), {view} (nats)",
        embed,
        gaussian_kl,
        ridge,
        view,
        pca,
    )


def embedding_metrics(
    embed: Embedder, views: Sequence[str] = tuple(VIEWS), ridge: float = 1e-3, pca: int | None = None
) -> list[TurnMetric]:
    """The paper's two distances (Frechet, KL(student || expert)) for each view, in that order."""
    return [
        metric(embed, ridge, view, pca) for view in views for metric in (frechet_metric, gaussian_kl_metric)
    ]
