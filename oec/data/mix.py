"""Build an SFT data mix: trajectory stores -> rendered examples, selected, split and summarised.

For each source (a store read as one arm), in order: read its trajectories; keep those of the
source's arm (and, by default, only accepted ones); split a DAgger trajectory into one view per
labelled turn (:func:`oec.data.render.training_views`); render them with the loss mask
(:func:`oec.data.render.render_many`; refusals are counted by reason); drop duplicates (same instance,
same ids and mask, across all sources, first source wins, even if a cap below later drops that
first copy); cap examples per instance; cap examples per source. The surviving examples are split
into train/val by task instance (a seeded shuffle of the instance ids, shared by all sources, so an
instance never lands on both sides); then each
source's training examples are re-weighted (repeated or subsampled) by its ``weight``.

Every random choice draws from its own ``random.Random`` seeded by ``data.seed`` and a purpose
string, so a mix is reproducible and changing one source does not reshuffle another.

Bad input fails loudly: a missing or empty store, or a mix that selects nothing, raises an error
naming the source and the reason; a source that contributes nothing and refused examples are
logged as warnings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table
from transformers import PreTrainedTokenizerBase

from oec.chat import student_view
from oec.data.config import DataConfig, SourceConfig
from oec.data.render import REFUSAL_REASONS, Example, RenderError, render_many, training_views
from oec.store import StoreError, read_trajectories
from oec.student import StudentModel
from oec.types import Trajectory

log = logging.getLogger(__name__)

# Trajectories per batched tokenizer call: enough to keep its threads busy, few enough that the
# encodings it holds (ids, offsets, tokens of 32k-token conversations) stay small.
RENDER_CHUNK = 32


class MixError(ValueError):
    """The mix cannot be built (missing or empty store, nothing selected); the message names the cause."""


@dataclass
class SourceStats:
    """What happened to one source's trajectories, step by step."""

    key: str
    path: str
    arm: str
    mask: str
    read: int = 0
    other_mode: Counter[str] = field(default_factory=Counter)
    not_accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    over_instance_cap: int = 0
    over_max_examples: int = 0
    over_token_budget: int = 0
    budget_tokens: int = 0
    selected: int = 0
    train: int = 0
    val: int = 0

    def describe(self) -> str:
        """One line naming where this source's trajectories went."""
        parts = [f"{self.read} read"]
        if self.other_mode:
            parts.append(f"{sum(self.other_mode.values())} of another arm ({dict(self.other_mode)})")
        if self.not_accepted:
            parts.append(f"{self.not_accepted} not accepted")
        if self.refused:
            parts.append(f"{sum(self.refused.values())} refused ({dict(self.refused)})")
        for name in ("duplicates", "over_instance_cap", "over_max_examples", "over_token_budget"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name.replace('_', ' ')}")
        parts.append(f"{self.selected} selected")
        return ", ".join(parts)


@dataclass(frozen=True)
class SplitStats:
    examples: int
    supervised_tokens: int
    tokens: int
    truncated: int

    @classmethod
    def of(cls, examples: list[Example]) -> SplitStats:
        return cls(
            examples=len(examples),
            supervised_tokens=sum(e.num_supervised for e in examples),
            tokens=sum(e.num_tokens for e in examples),
            truncated=sum(1 for e in examples if e.truncated),
        )

    @classmethod
    def total(cls, parts: list[SplitStats]) -> SplitStats:
        return cls(
            *(
                sum(getattr(p, name) for p in parts)
                for name in ("examples", "supervised_tokens", "tokens", "truncated")
            )
        )


@dataclass
class MixSummary:
    """Per-source bookkeeping and per-(split, arm) totals of a built mix."""

    sources: list[SourceStats]
    splits: dict[tuple[str, str], SplitStats]

    @property
    def refused(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for source in self.sources:
            total.update(source.refused)
        return total

    def metrics(self) -> dict[str, float]:
        """Flat ``data/*`` numbers for the logger."""
        out: dict[str, float] = {}
        for split in ("train", "val"):
            rows = [s for (name, _), s in self.splits.items() if name == split]
            out[f"data/{split}/examples"] = sum(s.examples for s in rows)
            out[f"data/{split}/supervised_tokens"] = sum(s.supervised_tokens for s in rows)
            out[f"data/{split}/tokens"] = sum(s.tokens for s in rows)
        for (split, arm), stats in self.splits.items():
            out[f"data/{split}/{arm}/examples"] = stats.examples
            out[f"data/{split}/{arm}/supervised_tokens"] = stats.supervised_tokens
        out["data/budget_tokens"] = sum(s.budget_tokens for s in self.sources)
        for reason in REFUSAL_REASONS:
            out[f"data/refused/{reason}"] = self.refused[reason]
        return out

    def tables(self) -> list[Table]:
        """Totals per (split, arm), then what happened to each source's trajectories."""
        splits = Table(title="data mix", title_justify="left")
        for column in (
            "split",
            "arm",
            "examples",
            "supervised tokens",
            "tokens",
            "supervised %",
            "truncated",
        ):
            splits.add_column(column, justify="left" if column in ("split", "arm") else "right")
        for split in ("train", "val"):
            rows = sorted((arm, s) for (name, arm), s in self.splits.items() if name == split)
            if len(rows) > 1:
                rows.append(("all", SplitStats.total([s for _, s in rows])))
            for arm, s in rows:
                share = 100 * s.supervised_tokens / s.tokens if s.tokens else 0.0
                cells = (s.examples, s.supervised_tokens, s.tokens)
                splits.add_row(
                    split, arm, *(f"{c:,}" for c in cells), f"{share:.1f}", f"{s.truncated:,}",
                    style="bold" if arm == "all" else None,
                )  # fmt: skip
        sources = Table(title="sources", title_justify="left")
        sources.add_column("")
        for source in self.sources:
            sources.add_column(source.key, justify="right", overflow="fold")
        rows = {
            "path": [s.path for s in self.sources],
            "arm / mask": [f"{s.arm} / {s.mask}" for s in self.sources],
            "read": [s.read for s in self.sources],
            "other arm": [sum(s.other_mode.values()) for s in self.sources],
            "not accepted": [s.not_accepted for s in self.sources],
            **{f"refused: {r}": [s.refused[r] for s in self.sources] for r in REFUSAL_REASONS},
            "duplicates": [s.duplicates for s in self.sources],
            "over per-instance cap": [s.over_instance_cap for s in self.sources],
            "over max_examples": [s.over_max_examples for s in self.sources],
            "over token budget": [s.over_token_budget for s in self.sources],
            "budget tokens": [s.budget_tokens for s in self.sources],
            "selected": [s.selected for s in self.sources],
            "train (weighted)": [s.train for s in self.sources],
            "val": [s.val for s in self.sources],
        }
        for name, values in rows.items():
            sources.add_row(name, *(f"{v:,}" if isinstance(v, int) else v for v in values))
        return [splits, sources]


def print_mix_summary(summary: MixSummary, console: Console | None = None) -> None:
    """Print the summary tables (to stdout unless ``console`` says otherwise)."""
    console = console or Console()
    for table in summary.tables():
        console.print(table)


class Mix(NamedTuple):
    train: list[Example]
    val: list[Example]
    summary: MixSummary


def read_store(path: str | Path, key: str) -> list[Trajectory]:
    """All trajectories of the store at ``path``; ``key`` names the config entry in errors."""
    folder = Path(path)
    if not folder.is_dir():
        raise MixError(f"{key}: trajectory store {folder} does not exist")
    try:
        trajectories = list(read_trajectories(folder))
    except StoreError as err:
        raise MixError(f"{key}: {err}") from err
    if not trajectories:
        raise MixError(f"{key}: trajectory store {folder} is empty (no trajectories)")
    return trajectories


def _rng(seed: int, *purpose: object) -> random.Random:
    # String seeds hash with SHA-512 inside random.Random: stable across runs and PYTHONHASHSEED.
    return random.Random(":".join(str(p) for p in (seed, *purpose)))


def _fingerprint(example: Example) -> tuple[str, str]:
    digest = hashlib.sha1(example.input_ids.tobytes())
    digest.update(example.loss_mask.tobytes())
    return example.instance_id, digest.hexdigest()


def _select_source(
    index: int,
    source: SourceConfig,
    config: DataConfig,
    tokenizer: PreTrainedTokenizerBase,
    student: StudentModel | None,
    seen: set[tuple[str, str]],
) -> tuple[list[Example], SourceStats]:
    key = f"data.sources[{index}]"
    mask = source.mask or config.mask
    path = config.store_path(source)
    stats = SourceStats(key=key, path=str(path), arm=source.arm, mask=mask)
    trajectories = read_store(path, f"{key}.store")
    stats.read = len(trajectories)
    kept: list[Trajectory] = []
    for trajectory in trajectories:
        if trajectory.mode != source.arm:
            stats.other_mode[trajectory.mode] += 1
        elif config.accepted_only and not trajectory.accepted:
            stats.not_accepted += 1
        elif config.history == "elided" and student is not None:
            for part in training_views(trajectory, mask):
                view = student_view(part.messages, student.last_n_observations)
                kept.append(dataclasses.replace(part, messages=view))
        else:
            kept += training_views(trajectory, mask)
    examples: list[Example] = []
    refusals: list[str] = []
    max_seq_len = student.max_seq_len if student is not None else None
    for begin in range(0, len(kept), RENDER_CHUNK):
        chunk = kept[begin : begin + RENDER_CHUNK]
        for result in render_many(chunk, tokenizer, mask, max_seq_len, source.arm):
            if isinstance(result, RenderError):
                stats.refused[result.reason] += 1
                refusals.append(str(result))
                continue
            if config.dedupe:
                fingerprint = _fingerprint(result)
                if fingerprint in seen:
                    stats.duplicates += 1
                    continue
                seen.add(fingerprint)
            examples.append(result)
    if refusals:
        log.warning(
            "%s (%s): %d trajectories refused %s; first: %s",
            key, stats.path, len(refusals), dict(stats.refused), refusals[0],
        )  # fmt: skip

    cap = source.per_instance_cap or config.per_instance_cap
    if cap is not None:
        by_instance: dict[str, list[Example]] = defaultdict(list)
        for example in examples:
            by_instance[example.instance_id].append(example)
        rng = _rng(config.seed, "instance_cap", index)
        kept = set()
        for instance in sorted(by_instance):
            group = by_instance[instance]
            kept.update(id(e) for e in (rng.sample(group, cap) if len(group) > cap else group))
        stats.over_instance_cap = len(examples) - len(kept)
        examples = [e for e in examples if id(e) in kept]
    if source.max_examples is not None and len(examples) > source.max_examples:
        chosen = {
            id(e) for e in _rng(config.seed, "max_examples", index).sample(examples, source.max_examples)
        }
        stats.over_max_examples = len(examples) - len(chosen)
        examples = [e for e in examples if id(e) in chosen]
    if source.max_budget_tokens is not None:
        examples, stats.over_token_budget = _within_budget(
            examples, source.max_budget_tokens, _rng(config.seed, "token_budget", index)
        )
    stats.budget_tokens = sum(budget_tokens(e) for e in examples)
    stats.selected = len(examples)
    if not examples:
        log.warning("%s (%s) contributes no examples: %s", key, stats.path, stats.describe())
    return examples, stats


def budget_tokens(example: Example) -> int:
    """What ``example`` costs of a token budget (:attr:`SourceConfig.max_budget_tokens`): the
    supervised tokens of the expert's turns, or every supervised token of on-policy data."""
    if example.arm == "on_policy":
        return example.num_supervised
    return sum(s.end - s.start for s in example.spans if s.supervised and s.author == "expert")


def _within_budget(examples: list[Example], budget: int, rng: random.Random) -> tuple[list[Example], int]:
    """Whole examples in a seeded order, each kept if it still fits ``budget``; and how many were left."""
    order = list(examples)
    rng.shuffle(order)
    chosen: set[int] = set()
    spent = 0
    for example in order:
        cost = budget_tokens(example)
        if spent + cost <= budget:
            chosen.add(id(example))
            spent += cost
    return [e for e in examples if id(e) in chosen], len(examples) - len(chosen)


def _val_instances(instances: set[str], fraction: float, seed: int) -> set[str]:
    if fraction == 0 or len(instances) < 2:
        return set()
    order = sorted(instances)
    _rng(seed, "split").shuffle(order)
    count = min(len(order) - 1, max(1, round(fraction * len(order))))
    return set(order[:count])


def _weighted(examples: list[Example], weight: float, rng: random.Random) -> list[Example]:
    repeats = math.floor(weight)
    extra = round((weight - repeats) * len(examples))
    return examples * repeats + rng.sample(examples, extra)


def build_mix(
    config: DataConfig, tokenizer: PreTrainedTokenizerBase, student: StudentModel | None = None
) -> Mix:
    """Render, select and split the mix described by ``config``; raises :class:`MixError` on bad input.

    ``student`` (the description) sets the longest example and, with ``data.history=elided``, the
    view; None renders whole conversations without a length limit.
    """
    if config.history == "elided" and student is None:
        raise MixError("data.history: 'elided' needs the student description (model.last_n_observations)")
    seen: set[tuple[str, str]] = set()
    selected = [_select_source(i, s, config, tokenizer, student, seen) for i, s in enumerate(config.sources)]
    instances = {e.instance_id for examples, _ in selected for e in examples}
    if not instances:
        causes = "; ".join(f"{stats.key} ({stats.path}): {stats.describe()}" for _, stats in selected)
        raise MixError(f"data: the mix selects no examples: {causes}")
    val_instances = _val_instances(instances, config.val_fraction, config.seed)

    train: list[Example] = []
    val: list[Example] = []
    for index, ((examples, stats), source) in enumerate(zip(selected, config.sources, strict=True)):
        source_train = [e for e in examples if e.instance_id not in val_instances]
        source_val = [e for e in examples if e.instance_id in val_instances]
        source_train = _weighted(source_train, source.weight, _rng(config.seed, "weight", index))
        stats.train, stats.val = len(source_train), len(source_val)
        train += source_train
        val += source_val
    if not train:
        raise MixError(
            f"data: the mix has no training examples after the split (val_fraction={config.val_fraction}, "
            f"weights {[s.weight for s in config.sources]})"
        )

    splits: dict[tuple[str, str], SplitStats] = {}
    for split, examples in (("train", train), ("val", val)):
        for arm in sorted({e.arm for e in examples}):
            splits[(split, arm)] = SplitStats.of([e for e in examples if e.arm == arm])
    return Mix(train, val, MixSummary([stats for _, stats in selected], splits))
