"""``python -m oec.evaluate +exp=NAME``: the student alone on held-out tasks, through the same loop.

Evaluation is collection with the switch set to ``never``, on ``evaluate.split`` (held-out by
default), into its own resumable store. It then writes, next to that store: ``report.json``
(resolve rate with a 95% Wilson interval, format-valid action rate, exit statuses),
``per_task.csv`` and ``predictions.jsonl`` in the format swebench's harness reads
(``instance_id``, ``model_name_or_path``, ``model_patch``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from oec.collect import collect, collection_config, rollout_settings, select_tasks
from oec.config import ConfigError, parse, to_container
from oec.eval_report import write_results
from oec.policies import PolicyConfig
from oec.runtime import exit_on_sigterm
from oec.store import TrajectoryStore
from oec.switch import SwitchConfig
from oec.tasks import TasksConfig, TasksConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` config: which split the student is scored on and where results go."""

    store: str
    split: str | None = "test"
    samples_per_task: int = 1
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.samples_per_task < 1:
            raise ValueError(f"evaluate.samples_per_task: must be >= 1, got {self.samples_per_task}")
        if self.num_workers < 1:
            raise ValueError(f"evaluate.num_workers: must be >= 1, got {self.num_workers}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    exit_on_sigterm()
    try:
        options = parse(EvaluateConfig, cfg.evaluate, "evaluate")
        settings = dataclasses.replace(rollout_settings(cfg), switch=SwitchConfig(schedule="never"))
        student = parse(PolicyConfig, cfg.student, "student")
        tasks_config = TasksConfig.from_dict(to_container(cfg.tasks))
        task_options = dataclasses.replace(tasks_config, split=options.split)
    except (ConfigError, TasksConfigError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    loaded = select_tasks(task_options)
    config = collection_config(cfg) | {"evaluate": dict(cfg.evaluate), "switch": {"schedule": "never"}}
    store = TrajectoryStore.open(options.store, config=config)
    try:
        failures = collect(
            loaded.tasks,
            store,
            settings,
            student,
            None,
            options.samples_per_task,
            options.num_workers,
            int(cfg.seed),
        )
    finally:
        store.close()
    wanted = {t.instance_id for t in loaded.tasks}
    trajectories = [t for t in store.read() if t.instance_id in wanted]
    report = write_results(trajectories, student.model_name, Path(options.store))
    low, high = report["resolve_rate_ci95"]
    print(
        f"eval/resolve_rate {report['resolve_rate']:.3f} (95% CI {low:.3f}-{high:.3f}) "
        f"over {report['rollouts']} rollouts; eval/format_valid_rate {report['format_valid_rate']}"
    )
    if failures:
        raise SystemExit(f"{failures} evaluation rollouts failed")


if __name__ == "__main__":
    main()
