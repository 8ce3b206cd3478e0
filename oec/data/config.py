"""Typed config of an SFT data mix (Hydra group ``data``) and of its loss mask (group ``mask``).

A mix is a list of sources, each a trajectory store read as one arm (``bc``, ``on_policy``, ``oec``,
``dagger``),
plus the rules that turn their trajectories into examples: which turns are supervised, which
trajectories are kept, how many per instance, the train/val split and what history is shown.
Stores are named by arm under ``data.stores_dir`` (one folder per model scale), so a mix names arms,
not paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from oec.config import AtLeast, Below, NonEmpty
from oec.data.render import MaskPolicy
from oec.types import Mode


@dataclass(frozen=True)
class SourceConfig:
    """One trajectory store in the mix."""

    arm: Mode
    """Trajectories whose mode is this arm are read; it also labels the examples in the summary."""
    store: str | None = None
    """The store folder: a name under ``data.stores_dir`` or a path; null: the arm's own store
    (``<stores_dir>/<arm>``, where ``python -m oec.collect +exp=<arm>`` writes)."""
    mask: MaskPolicy | None = None
    """Loss mask of this source; null means ``data.mask``. On-policy data has no expert turns, so an
    on_policy source needs ``assistant`` or ``student``."""
    max_examples: Annotated[int, AtLeast(1)] | None = None
    """At most this many distinct examples from this source (a seeded choice); null keeps them all."""
    max_budget_tokens: Annotated[int, AtLeast(1)] | None = None
    """At most this many budget tokens from this source: whole examples in a seeded order, each taken
    if it still fits. Budget tokens are the supervised tokens the expert wrote; an ``on_policy``
    source, which has none, counts its supervised tokens. Equal budgets give arms the same number
    of supervised expert tokens whatever their masks (the no-masking ablation supervises student
    tokens on top); null: no limit."""
    weight: Annotated[float, AtLeast(0)] = 1.0
    """Multiplies this source's training examples per epoch: 0.5 keeps a seeded half, 2.0 repeats
    each example twice, 1.5 repeats a seeded half. Validation examples are never repeated."""
    per_instance_cap: Annotated[int, AtLeast(1)] | None = None
    """Overrides ``data.per_instance_cap`` for this source."""


@dataclass(frozen=True)
class DataConfig:
    """An SFT data mix and how it is batched. The longest example is the student's context length
    (``model.max_seq_len``): longer ones are cut after the last supervised turn that fits."""

    sources: Annotated[list[SourceConfig], NonEmpty()]
    stores_dir: str = "."
    """Where stores named by ``sources[*].store`` live (the config sets ``${paths.stores}``)."""
    mask: MaskPolicy = "expert"
    """Which assistant turns are trained on: expert (OEC), assistant (every one: the no-masking
    ablation) or student."""
    history: Literal["full", "elided"] = "full"
    """What the student is trained on: ``full``, every observation as the expert saw it (default, as in
    the SWE-smith recipe: one example per trajectory, nothing the model could use is hidden), or
    ``elided``, the inference view (:func:`oec.chat.student_view` with ``model.last_n_observations``)
    of the whole conversation. ``elided`` shows earlier turns fewer observations than they saw at
    inference, since one example serves every turn; ``full`` shows them more."""
    per_instance_cap: Annotated[int, AtLeast(1)] | None = None
    """At most this many examples per task instance and source (a seeded choice); null: no cap."""
    accepted_only: bool = True
    """Keep only trajectories that were resolved and passed the filters (the DAgger mix turns it off:
    its labels are right whatever the student's outcome, see conf/data/dagger.yaml)."""
    dedupe: bool = True
    """Drop an example whose rendered ids and mask equal an earlier one of the same instance (any source)."""
    val_fraction: Annotated[float, AtLeast(0), Below(1)] = 0.05
    """Fraction of task instances (not examples) held out for validation, so no instance is in both."""
    seed: int = 0
    """Seeds the choices above (caps, weights, split); the batch order has its own seed (see datamodule)."""
    micro_batch_size: Annotated[int, AtLeast(1)] = 1
    """Examples per micro-batch and data-parallel rank."""
    packing: bool = False
    """Concatenate a micro-batch into one row (position_ids restart per example) instead of padding."""
    num_workers: Annotated[int, AtLeast(0)] = 0
    """DataLoader worker processes."""

    def store_path(self, source: SourceConfig) -> Path:
        """The folder of ``source``'s store."""
        return Path(self.stores_dir) / (source.store or source.arm)
