"""``python -m oec.collect +exp=NAME``: run verified, filtered rollouts into a trajectory store.

Modes come from the switch schedule: ``always`` = expert only (BC), ``never`` = student only
(on-policy), anything else = OEC. Every (task, sample) pair is one rollout; pairs already in the
store are skipped, so rerunning the same command resumes (see :mod:`oec.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import hydra
from omegaconf import DictConfig

from oec.config import AtLeast, ConfigError, parse
from oec.progress import print_collection_summary
from oec.runner import load_rollout_config, run_rollouts, select_tasks, store_config
from oec.runtime import exit_on_sigterm
from oec.store import TrajectoryStore


@dataclass(frozen=True)
class CollectConfig:
    """``collect`` config: where rollouts go and how many run."""

    store: str
    """Store folder; rerunning the same command resumes it."""
    samples_per_task: Annotated[int, AtLeast(1)] = 1
    """Rollouts per task (distinct seeds)."""
    num_workers: Annotated[int, AtLeast(1)] = 1
    """Rollouts in parallel (threads; one model is shared)."""
    allow_config_change: bool = False
    """Resume a store whose recorded config differs."""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    exit_on_sigterm()
    try:
        options = parse(CollectConfig, cfg.collect, "collect")
        config = load_rollout_config(cfg)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    loaded = select_tasks(config.tasks)
    store = TrajectoryStore.open(
        options.store, config=store_config(cfg, config), allow_config_change=options.allow_config_change
    )
    try:
        failures = run_rollouts(loaded.tasks, store, config, options.samples_per_task, options.num_workers)
    finally:
        store.close()
    print_collection_summary(list(store.read()), title=f"collection summary: {options.store}")
    if failures or loaded.errors:
        raise SystemExit(f"{failures} rollouts failed and {len(loaded.errors)} task rows were skipped")


if __name__ == "__main__":
    main()
