"""The testbed's design as a typed config (``conf/science/<preset>.yaml``): tasks, student, stores,
arms, budgets, seeds and evaluation.

A design names four trajectory stores collected once per testbed run on the training tasks:
``bc`` (the expert alone), ``oec_early`` and ``oec_late`` (the base student, i.e. the BC arm's
seed-``base_seed`` model, hands over to the expert at a call drawn from an early or a late window)
and ``on_policy`` (the base student alone). An arm trains a fresh student per seed on shares of an
equal budget of supervised expert tokens drawn from those stores, for the same number of optimiser
steps, and is evaluated on the training tasks rolled out afresh (sampled decoding, new seeds) and on
held-out tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from omegaconf import OmegaConf

from oec.config import AtLeast, AtMost, NonEmpty, parse
from oec.types import Mode

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "science"

StoreName = Literal["bc", "oec_early", "oec_late", "on_policy"]
STORE_MODES: dict[str, Mode] = {"bc": "bc", "oec_early": "oec", "oec_late": "oec", "on_policy": "on_policy"}
"""The rollout mode each store holds (the ``arm`` of a data source reading it)."""


@dataclass(frozen=True)
class Share:
    """One source of an arm: a store and the fraction of the arm's token budget drawn from it."""

    store: StoreName
    share: Annotated[float, AtLeast(0.0), AtMost(1.0)] = 1.0


@dataclass(frozen=True)
class Arm:
    """A training arm: its sources and which assistant turns its loss supervises."""

    sources: Annotated[list[Share], NonEmpty()]
    mask: Literal["expert", "assistant", "student"] = "expert"
    about: str = ""
    """One line for the report: what the arm is."""

    def __post_init__(self) -> None:
        total = sum(s.share for s in self.sources)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"sources: the shares must sum to 1, got {total:g}")


@dataclass(frozen=True)
class Window:
    """Switch steps drawn uniformly from ``lo..hi`` (model calls, both ends included)."""

    lo: Annotated[int, AtLeast(0)]
    hi: Annotated[int, AtLeast(0)]

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"hi: must be >= lo, got lo={self.lo}, hi={self.hi}")


@dataclass(frozen=True)
class Collection:
    """How the base student's stores are collected."""

    expert_samples_per_task: Annotated[int, AtLeast(1)] = 2
    """The expert's rollouts per task in ``bc`` (and ``expert_heldout``); the oracle varies by seed."""
    samples_per_task: Annotated[int, AtLeast(1)] = 6
    """Rollouts per training task in each of ``oec_early``, ``oec_late`` and ``on_policy``."""
    temperature: Annotated[float, AtLeast(0.0)] = 0.7
    """The base student's sampling temperature while collecting (distinct states per sample)."""
    handover_after_format_errors: Annotated[int, AtLeast(1)] | None = None
    """The switch's adaptive handover in the OEC stores; null keeps every switch at its drawn step,
    so the early and late windows stay apart."""
    early: Window = field(default_factory=lambda: Window(1, 3))
    late: Window = field(default_factory=lambda: Window(4, 7))


@dataclass(frozen=True)
class Evaluation:
    """How each trained student is scored."""

    temperature: Annotated[float, AtLeast(0.0)] = 0.7
    """Sampled decoding on the training tasks (in-distribution): the student meets its own mistakes."""
    samples_per_task: Annotated[int, AtLeast(1)] = 2
    """Fresh rollouts per training task and seed (seeds apart from collection's)."""
    heldout_samples_per_task: Annotated[int, AtLeast(1)] = 1
    """Greedy rollouts per held-out task and seed."""
    seed_offset: Annotated[int, AtLeast(1)] = 1000
    """Evaluation rollouts of seed s use run seed ``seed_offset + s``: none replays a collected one."""
    token_metrics: bool = True
    """Measure the expert-action NLL, agreement and first divergence at every evaluated student state."""


@dataclass(frozen=True)
class TestbedConfig:
    """``conf/science/<preset>.yaml``: one designed experiment (see the module docstring)."""

    train_tasks: Annotated[int, AtLeast(2)] | Annotated[list[str], NonEmpty()]
    """The training tasks: N (the first N of the task source's train split) or a list of instance ids
    of that split. They are collected on, trained on, and rolled out afresh for the in-distribution
    evaluation."""
    heldout_tasks: Annotated[int, AtLeast(1)] | Annotated[list[str], NonEmpty()]
    """The held-out tasks, N (the first N of the test split) or instance ids of it: in no store."""
    seeds: Annotated[list[int], NonEmpty()]
    """Each arm trains one student per seed: the seed sets its initialisation, data order and the
    seeded choice of examples within the budget."""
    steps: Annotated[int, AtLeast(1)]
    """Optimiser steps of every training run (every arm and the base student alike)."""
    arms: Annotated[dict[str, Arm], NonEmpty()]
    select: list[str] = field(default_factory=list)
    """Run only these arms (and what they need); empty: every arm. The report covers the arms run."""
    budget_tokens: Annotated[int, AtLeast(1)] | None = None
    """Supervised expert tokens per arm (on-policy: supervised tokens); null: the largest budget every
    arm can fill from the stores, found after collection."""
    base_seed: int = 0
    """The BC arm's student of this seed collects the OEC and on-policy stores."""
    exp: str = "demo"
    """The experiment config (``+exp=``) every stage composes: tasks, expert, student."""
    model: str = "tiny"
    """The student's scale (``model=``, ``conf/model/``): its tokenizer, context and init."""
    max_new_tokens: Annotated[int, AtLeast(1)] = 160
    """Longest student reply, in rollouts and in the greedy agreement probe."""
    overrides: list[str] = field(default_factory=list)
    """Hydra overrides for every collect, train and evaluate stage (e.g. ``model=...`` on a GPU)."""
    max_calls: Annotated[int, AtLeast(1)] = 12
    """Model calls per episode, in collection and evaluation."""
    collection: Collection = field(default_factory=Collection)
    evaluation: Evaluation = field(default_factory=Evaluation)
    jobs: Annotated[int, AtLeast(1)] = 2
    """Stages run at once (each single-threaded when > 1: ``OMP_NUM_THREADS=1``)."""
    bootstrap: Annotated[int, AtLeast(10)] = 1000
    """Replicates of the two-level bootstrap (seeds, then tasks) behind every interval."""
    wandb_project: str = "oec-science"

    def __post_init__(self) -> None:
        if "bc" not in self.arms:
            raise ValueError("arms: the design needs a 'bc' arm (its base_seed student collects the stores)")
        if self.base_seed not in self.seeds:
            raise ValueError(f"base_seed: {self.base_seed} is not one of seeds {self.seeds}")
        unknown = [a for a in self.select if a not in self.arms]
        if unknown:
            raise ValueError(f"select: unknown arms {unknown} (arms: {sorted(self.arms)})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: repeated seeds in {self.seeds}")

    @property
    def selected_arms(self) -> dict[str, Arm]:
        """The arms this run trains: ``select`` in the design's order, or all of them."""
        return {name: arm for name, arm in self.arms.items() if not self.select or name in self.select}


def task_overrides(tasks: int | list[str]) -> list[str]:
    """The ``tasks`` overrides that select ``tasks`` (a count or instance ids) within a split."""
    if isinstance(tasks, int):
        return [f"tasks.limit={tasks}"]
    return ["tasks.limit=null", f"tasks.instance_ids=[{','.join(tasks)}]"]


def load_design(preset: str, overrides: list[str]) -> TestbedConfig:
    """The preset ``conf/science/<preset>.yaml`` (or a YAML path) with ``key=value`` overrides."""
    path = Path(preset) if preset.endswith((".yaml", ".yml")) else CONF_DIR / f"{preset}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
        raise ValueError(f"--preset: no design {path} (presets: {known})")
    node = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(overrides))
    return parse(TestbedConfig, node, "science")
