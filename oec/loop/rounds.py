"""The stages of round r of :mod:`oec.loop` and where they write, under the loop's run directory::

    stores/round_<r>/   the rollouts round r collected on the train split (its student, then the expert)
    train/round_<r>/    round r's training run on the stores it aggregates; model/ is round r's student
    eval/round_<r>/     that student alone on the held-out split: store, report.json, per_task.csv
    logs/               each stage's output, and the Hydra folders of collection and evaluation

Each stage is ``python -m oec.collect|train|evaluate`` with the overrides the loop was given, then
the loop's own for the stage, then ``loop.round_overrides`` of the round.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oec.loop.config import LoopConfig
from oec.stages import Stage
from oec.store import load_manifest

STEPS = ("collect", "train", "evaluate")
"""A round's stages, in order."""


def override_key(override: str) -> str:
    """The key a Hydra override sets: ``+switch.lo=3`` -> ``switch.lo``, ``switch=fixed`` -> ``switch``."""
    return override.split("=", 1)[0].lstrip("+~")


def sets(override: str, key: str) -> bool:
    """Whether ``override`` sets ``key`` or something under it."""
    name = override_key(override)
    return name == key or name.startswith((f"{key}.", f"{key}/"))


def quoted(value: object) -> str:
    """``value`` as a quoted Hydra override value (paths may hold spaces, colons or commas)."""
    text = str(value)
    if "'" in text or "\\" in text:
        raise ValueError(f"{text!r}: quotes and backslashes cannot be passed in a Hydra override")
    return f"'{text}'"


@dataclass(frozen=True)
class Layout:
    """Where round r's stages write under the loop's run directory ``root``."""

    root: Path

    def store(self, r: int) -> Path:
        return self.root / "stores" / f"round_{r}"

    def train_dir(self, r: int) -> Path:
        return self.root / "train" / f"round_{r}"

    def model(self, r: int) -> Path:
        return self.train_dir(r) / "model"

    def evaluation(self, r: int) -> Path:
        return self.root / "eval" / f"round_{r}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def store_sources(store: Path) -> list[dict[str, str]]:
    """The data sources that read ``store``: one per mode its rollouts have (the arm of that mode)."""
    modes = sorted(load_manifest(store)["counts"]["by_mode"])
    if not modes:
        raise SystemExit(f"{store}: the store holds no rollouts, so there is nothing to train on")
    # On-policy rollouts have no expert turns: their student turns are supervised (conf/data/on_policy.yaml).
    mask = {"on_policy": {"mask": "assistant"}}
    return [{"arm": m, "store": str(store)} | mask.get(m, {}) for m in modes]


def sources_override(sources: list[dict[str, str]]) -> str:
    """The ``data.sources=[...]`` override that trains on exactly ``sources``."""
    items = ("{" + ",".join(f"{k}:{quoted(v)}" for k, v in source.items()) + "}" for source in sources)
    return f"data.sources=[{','.join(items)}]"


@dataclass(frozen=True)
class RoundPlanner:
    """Builds the stages of each round from the loop config, the overrides every stage gets, the
    experiment's name and its resolved switch config (which ``loop.switch_shift_per_round`` shifts)."""

    layout: Layout
    loop: LoopConfig
    common: list[str]
    name: str
    switch: dict[str, Any]

    def collecting_student(self, r: int) -> str | None:
        """The ``student.model`` that collects round r; None: the expert alone (a BC round 0)."""
        if r > 0:
            return str(self.layout.model(r - 1))
        return None if self.loop.starts_with_bc else self.loop.initial_student

    def trained_stores(self, r: int) -> list[Path]:
        return [self.layout.store(i) for i in self.loop.trained_rounds(r)]

    def train_sources(self, r: int) -> list[dict[str, str]]:
        """Round r's data sources; they read the manifests of the stores it trains on."""
        return [source for store in self.trained_stores(r) for source in store_sources(store)]

    def stage(self, step: str, r: int) -> Stage:
        """Round r's ``collect``, ``train`` or ``evaluate`` stage; ``train`` reads the collected stores'
        manifests, so it is built once they exist."""
        if step == "collect":
            return self._collect(r)
        if step == "train":
            return self._train(r)
        return self._evaluate(r)

    def _stage(self, step: str, r: int, own: list[str], done: Path, common: list[str] | None = None) -> Stage:
        argv = [sys.executable, "-m", f"oec.{step}", *(self.common if common is None else common)]
        argv += [f"name={self.name}_round_{r}", *own, *self.loop.overrides_of(r)]
        return Stage(f"round {r} {step}", argv, done)

    def _collect(self, r: int) -> Stage:
        store, student = self.layout.store(r), self.collecting_student(r)
        own = [f"collect.store={quoted(store)}", "tasks.split=train"]
        own.append(f"hydra.run.dir={quoted(self.layout.logs / f'round_{r}' / 'collect')}")
        if student is None:
            # Expert-only (BC) rollouts: the switch overrides given for the OEC rounds do not apply.
            common = [o for o in self.common if not sets(o, "switch")]
            return self._stage("collect", r, [*own, "switch=always"], store / "manifest.json", common)
        own += [f"student.model={quoted(student)}", *self.loop.switch_overrides(r, self.switch)]
        return self._stage("collect", r, own, store / "manifest.json")

    def _train(self, r: int) -> Stage:
        own = [sources_override(self.train_sources(r)), "train.resume=true"]
        own.append(f"hydra.run.dir={quoted(self.layout.train_dir(r))}")
        return self._stage("train", r, own, self.layout.model(r) / "oec_export.json")

    def _evaluate(self, r: int) -> Stage:
        out = self.layout.evaluation(r)
        own = [f"student.model={quoted(self.layout.model(r))}", f"evaluate.store={quoted(out)}"]
        own.append(f"hydra.run.dir={quoted(self.layout.logs / f'round_{r}' / 'evaluate')}")
        return self._stage("evaluate", r, own, out / "report.json")
