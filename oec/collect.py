"""``python -m oec.collect +exp=NAME``: run verified, filtered rollouts into a trajectory store.

Modes come from the switch schedule: ``always`` = expert only (BC), ``never`` = student only
(on-policy), anything else = OEC. Every (task, sample) pair is one rollout; pairs already in the
store are skipped, so rerunning the same command resumes (see :mod:`oec.runner`). SIGTERM, SIGINT
and SIGUSR2 stop it cleanly: in-flight rollouts get ``collect.stop_grace_s`` to finish and be
stored, then it exits 143 / 130 (SIGUSR2: submitit's requeue, see :mod:`oec.runtime`).
``collect.budget_usd`` stops launching rollouts once the store's spend reaches it (see
:mod:`oec.runner`). ``collect.shard`` runs one shard of a SLURM array into its own store (see
:mod:`oec.shard`); ``python -m oec.store merge`` joins the shard stores.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Annotated

import hydra
from omegaconf import DictConfig

from oec.config import Above, AtLeast, ConfigError, parse
from oec.progress import print_collection_summary
from oec.runner import load_rollout_config, run_into_store, select_tasks, store_config
from oec.runtime import StopRequest
from oec.shard import ShardConfig

log = logging.getLogger(__name__)


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
    budget_usd: Annotated[float, Above(0)] | None = None
    """Total spend of the run in dollars (every rollout in the store counts, earlier runs' too); once
    reached no rollout is launched and those in flight finish. Null: no budget. Sharded, each shard
    gets ``budget_usd / shard.count``."""
    shard: ShardConfig = field(default_factory=ShardConfig)
    """``{index: I, count: N}``: with N > 1, run only the tasks of shard I of N (stable hash of the
    instance id) into ``<store>.shard-I-of-N``. The default, 0 of 1: every task, into ``store``."""

    def shard_budget_usd(self) -> float | None:
        """This process's part of the budget."""
        return None if self.budget_usd is None else self.budget_usd / self.shard.count


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    stop = StopRequest.install()
    try:
        options = parse(CollectConfig, cfg.collect, "collect")
        config = load_rollout_config(cfg)
        loaded = select_tasks(config.tasks)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    root, recorded = options.store, store_config(cfg, config)
    shard = options.shard
    if shard.count > 1:
        loaded = dataclasses.replace(loaded, tasks=shard.select(loaded.tasks))
        root, recorded = shard.store(root), recorded | {"shard": shard.as_dict()}
        log.info("shard %d of %d: %d tasks, into %s", shard.index, shard.count, len(loaded.tasks), root)
    store, outcome = run_into_store(
        root,
        recorded,
        config,
        loaded,
        stop,
        samples_per_task=options.samples_per_task,
        num_workers=options.num_workers,
        grace_s=options.stop_grace_s,
        budget_usd=options.shard_budget_usd(),
        allow_config_change=options.allow_config_change,
        allow_task_change=options.allow_task_change,
    )
    print_collection_summary(
        list(store.read()), title=f"collection summary: {root}", note=outcome.budget_line()
    )
    if outcome.failures or loaded.errors:
        raise SystemExit(
            f"{outcome.failures} rollouts failed and {len(loaded.errors)} task rows were skipped"
        )


if __name__ == "__main__":
    main()
