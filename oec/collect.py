"""``python -m oec.collect +exp=NAME``: run verified, filtered rollouts into a trajectory store.

Modes come from the switch schedule: ``always`` = expert only (BC), ``never`` = student only
(on-policy), anything else = OEC. Every (task, sample) pair is one rollout; pairs already in the
store are skipped, so rerunning the same command resumes (see :mod:`oec.runner`). SIGTERM, SIGINT
and SIGUSR2 stop it cleanly: in-flight rollouts get ``collect.stop_grace_s`` to finish and be
stored, then it exits 143 / 130 (SIGUSR2: submitit's requeue, see :mod:`oec.runtime`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import hydra
from omegaconf import DictConfig

from oec.config import AtLeast, ConfigError, parse
from oec.progress import print_collection_summary
from oec.runner import load_rollout_config, run_into_store, select_tasks, store_config
from oec.runtime import StopRequest


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
    allow_task_change: bool = False
    """Resume a store whose tasks file (or embedded tasks) changed since it was created."""
    stop_grace_s: Annotated[float, AtLeast(0)] = 20.0
    """On SIGTERM/SIGINT/SIGUSR2, how long in-flight rollouts may still finish and be stored
    (under SLURM's 30 s KillWait)."""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    stop = StopRequest.install()
    try:
        options = parse(CollectConfig, cfg.collect, "collect")
        config = load_rollout_config(cfg)
        loaded = select_tasks(config.tasks)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    store, outcome = run_into_store(
        options.store,
        store_config(cfg, config),
        config,
        loaded,
        stop,
        samples_per_task=options.samples_per_task,
        num_workers=options.num_workers,
        grace_s=options.stop_grace_s,
        allow_config_change=options.allow_config_change,
        allow_task_change=options.allow_task_change,
    )
    print_collection_summary(list(store.read()), title=f"collection summary: {options.store}")
    if outcome.failures or loaded.errors:
        raise SystemExit(
            f"{outcome.failures} rollouts failed and {len(loaded.errors)} task rows were skipped"
        )


if __name__ == "__main__":
    main()
