"""Typed config of an SFT data mix (Hydra group ``data``) and of its loss mask (group ``mask``).

A mix is a list of sources, each a trajectory store read as one arm (``bc``, ``on_policy``, ``oec``),
plus the rules that turn their trajectories into examples: which turns are supervised, which
trajectories are kept, how many per instance, the train/val split and the sequence-length policy.
``load_data_config`` validates a config node before any tokenizer or model is loaded; errors name the
full key, e.g. ``data.sources[1].arm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oec.config import ConfigError, parse, to_container
from oec.data.render import MaskPolicy
from oec.types import Mode


@dataclass(frozen=True)
class SourceConfig:
    """One trajectory store in the mix (its values are checked by :class:`DataConfig`)."""

    # Store directory (written by ``python -m oec.collect``).
    path: str
    # Trajectories whose mode is this arm are read; it also labels the examples in the summary.
    arm: Mode
    # Loss mask of this source; null means ``data.mask``. On-policy data has no expert turns, so an
    # on_policy source needs ``assistant`` or ``student``.
    mask: MaskPolicy | None = None
    # At most this many distinct examples from this source (a seeded choice); null keeps them all.
    max_examples: int | None = None
    # Multiplies this source's training examples per epoch: 0.5 keeps a seeded half, 2.0 repeats
    # each example twice, 1.5 repeats a seeded half. Validation examples are never repeated.
    weight: float = 1.0
    # Overrides ``data.per_instance_cap`` for this source.
    per_instance_cap: int | None = None


@dataclass(frozen=True)
class DataConfig:
    """An SFT data mix and how it is batched."""

    sources: list[SourceConfig]
    # Which assistant turns are trained on: expert (OEC), assistant (all: the no-masking ablation), student.
    mask: MaskPolicy = "expert"
    # At most this many examples per task instance and source (a seeded choice); null: no cap.
    per_instance_cap: int | None = None
    # Keep only trajectories that were resolved and passed the filters.
    accepted_only: bool = True
    # Drop an example whose rendered ids and mask equal an earlier one of the same instance (any source).
    dedupe: bool = True
    # Fraction of task instances (not examples) held out for validation, so no instance is in both.
    val_fraction: float = 0.05
    # Seeds the choices above (caps, weights, split); the batch order has its own seed (see datamodule).
    seed: int = 0
    # Longer examples are cut after the last supervised turn that fits; null: no limit.
    max_seq_len: int | None = 32768
    # Examples per micro-batch and data-parallel rank.
    micro_batch_size: int = 1
    # Concatenate a micro-batch into one row (position_ids restart per example) instead of padding.
    packing: bool = False
    # DataLoader worker processes.
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("data.sources: the mix has no sources")
        for index, source in enumerate(self.sources):
            _check_source(source, f"data.sources[{index}]")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction: must be in [0, 1), got {self.val_fraction}")
        _check_cap(self.per_instance_cap, "data.per_instance_cap")
        if self.max_seq_len is not None and self.max_seq_len < 2:
            raise ValueError(f"data.max_seq_len: must be >= 2 or null, got {self.max_seq_len}")
        if self.micro_batch_size < 1:
            raise ValueError(f"data.micro_batch_size: must be >= 1, got {self.micro_batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers: must be >= 0, got {self.num_workers}")


def _check_cap(value: int | None, key: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{key}: must be >= 1 or null, got {value}")


def _check_source(source: SourceConfig, key: str) -> None:
    if not source.path:
        raise ValueError(f"{key}.path: is empty")
    _check_cap(source.max_examples, f"{key}.max_examples")
    _check_cap(source.per_instance_cap, f"{key}.per_instance_cap")
    if source.weight < 0:
        raise ValueError(f"{key}.weight: must be >= 0, got {source.weight}")


def load_data_config(node: Any, key: str = "data") -> DataConfig:
    """Validate a ``data`` config node (an OmegaConf node or a plain dict) into a :class:`DataConfig`."""
    try:
        data = to_container(node)
    except Exception as exc:  # OmegaConf raises MissingMandatoryValue, InterpolationResolutionError...
        raise ConfigError(f"{key}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
    sources = data.get("sources")
    if not isinstance(sources, list):
        raise ConfigError(f"{key}.sources: expected a list of sources, got {sources!r}")
    parsed = [parse(SourceConfig, source, f"{key}.sources[{i}]") for i, source in enumerate(sources)]
    return parse(DataConfig, {**data, "sources": parsed}, key)
