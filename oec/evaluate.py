"""``python -m oec.evaluate +exp=NAME``: the student alone on held-out tasks, through the same loop.

Evaluation is collection with the switch set to ``never``, on ``evaluate.split`` (held-out by
default), into its own resumable store. It then writes, next to that store: ``report.json``
(resolve rate with a 95% Wilson interval, format-valid action rate, exit statuses),
``per_task.csv`` and ``predictions.jsonl`` in the format swebench's harness reads
(``instance_id``, ``model_name_or_path``, ``model_patch``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from oec.collect import collect, collection_config, rollout_settings, select_tasks
from oec.config import ConfigError, parse, to_container
from oec.policies import PolicyConfig
from oec.runtime import exit_on_sigterm
from oec.store import TrajectoryStore
from oec.switch import SwitchConfig
from oec.tasks import TasksConfig, TasksConfigError
from oec.types import Trajectory, malformed_turns

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


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (well-behaved at 0 and n)."""
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def format_valid_rate(trajectories: list[Trajectory]) -> float | None:
    """Share of student calls that were not malformed (:func:`oec.types.malformed_turns`)."""
    valid = total = 0
    for trajectory in trajectories:
        malformed = set(malformed_turns(trajectory.messages))
        for message in trajectory.messages:
            if message.author == "student":
                total += 1
                valid += message.turn not in malformed
    return valid / total if total else None


def evaluation_report(trajectories: list[Trajectory], model: str) -> dict[str, object]:
    resolved = sum(t.resolved for t in trajectories)
    low, high = wilson_interval(resolved, len(trajectories))
    return {
        "model": model,
        "rollouts": len(trajectories),
        "tasks": len({t.instance_id for t in trajectories}),
        "resolved": resolved,
        "resolve_rate": resolved / len(trajectories) if trajectories else 0.0,
        "resolve_rate_ci95": [low, high],
        "format_valid_rate": format_valid_rate(trajectories),
        "mean_turns": sum(t.num_turns for t in trajectories) / max(1, len(trajectories)),
        "exit_status": dict(Counter(t.exit_status for t in trajectories)),
    }


def write_results(trajectories: list[Trajectory], model: str, out_dir: Path) -> dict[str, object]:
    """Write report.json, per_task.csv and predictions.jsonl; returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = evaluation_report(trajectories, model)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out_dir / "per_task.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instance_id", "sample_index", "resolved", "exit_status", "turns", "error"])
        for t in sorted(trajectories, key=lambda t: t.key):
            error = t.verdict.error if t.verdict else "not verified"
            writer.writerow(
                [t.instance_id, t.sample_index, t.resolved, t.exit_status, t.num_turns, error or ""]
            )
    with (out_dir / "predictions.jsonl").open("w") as handle:
        for t in sorted(trajectories, key=lambda t: t.key):
            if t.sample_index == 0:
                row = {"instance_id": t.instance_id, "model_name_or_path": model, "model_patch": t.patch}
                handle.write(json.dumps(row) + "\n")
    return report


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
