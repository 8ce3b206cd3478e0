"""Many rollouts into one store: the machinery ``oec.collect`` and ``oec.evaluate`` share.

:func:`load_rollout_config` validates every section a rollout reads, for the policies the mode
needs (:data:`oec.switch.ROLES`), before any model or sandbox is touched. :func:`run_rollouts`
runs each missing (task, sample) pair on a thread pool (sandbox commands and generation release
the GIL; one model is shared) and appends every finished rollout, fsynced, from the main thread,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oec.config import ConfigError, parse, to_container
from oec.env import SandboxConfig
from oec.policies import PolicyBuilder, PolicyConfig, make_policy_builder
from oec.progress import RolloutProgress
from oec.rollout import AgentConfig, RolloutSettings, rollout_seed, run_rollout
from oec.store import TrajectoryStore
from oec.student import StudentModel
from oec.switch import ROLES, SwitchConfig
from oec.tasks import LoadResult, TasksConfig, load_from_config
from oec.types import Author, Task
from oec.verify import FilterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutConfig:
    """Everything that defines a store's rollouts, validated: tasks, settings and the policies used."""

    seed: int
    tasks: TasksConfig
    settings: RolloutSettings
    policies: dict[Author, PolicyConfig]
    """The policies the mode needs, by mount point (``student``, ``expert``)."""
    student: StudentModel
    """The student description (``model``): tokenizer, template, context length of ``hf`` policies."""

    def builders(self) -> dict[Author, PolicyBuilder]:
        """Per-rollout builders of the policies; ``hf`` weights load here, once."""
        return {
            role: make_policy_builder(config, role, self.student) for role, config in self.policies.items()
        }


def load_rollout_config(cfg: DictConfig, switch: SwitchConfig | None = None) -> RolloutConfig:
    """Validate the sections of ``cfg`` a rollout reads; ``switch`` replaces ``cfg.switch`` (evaluation).

    Every section is checked before anything fails, so one error names every missing or bad key.
    """
    errors: list[str] = []

    def section(hint: Any, key: str) -> Any:
        try:
            if OmegaConf.select(cfg, key) is None:
                what = f"choose its backend with policy@{key}=..." if key in ROLES["oec"] else "missing"
                raise ConfigError(f"{key}: no value; {what}")
            return parse(hint, cfg[key], key)
        except ConfigError as exc:
            errors.append(str(exc))
            return None

    switch = switch or section(SwitchConfig, "switch")
    roles = ROLES[switch.mode] if switch is not None else ()
    parts = {
        "seed": section(int, "seed"),
        "tasks": section(TasksConfig, "tasks"),
        "env": section(SandboxConfig, "env"),
        "agent": section(AgentConfig, "agent"),
        "filter": section(FilterConfig, "filter"),
        "model": section(StudentModel, "model"),
        **{role: section(PolicyConfig, role) for role in roles},
    }
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else "\n  " + "\n  ".join(errors))
    settings = RolloutSettings(switch=switch, env=parts["env"], agent=parts["agent"], filters=parts["filter"])
    return RolloutConfig(
        seed=parts["seed"],
        tasks=parts["tasks"],
        settings=settings,
        policies={role: parts[role] for role in roles},
        student=parts["model"],
    )


def store_config(cfg: DictConfig, config: RolloutConfig, **extra: Any) -> dict[str, Any]:
    """The part of the resolved config that defines a store's rollouts (compared on resume):
    only the policies the mode uses, and the student description only when a policy reads it."""
    sections = ["seed", "tasks", "env", "switch", "filter", "agent", *config.policies]
    if any(c.backend == "hf" for c in config.policies.values()):
        sections.append("model")
    return {key: to_container(cfg[key], key) for key in sections} | extra


def select_tasks(options: TasksConfig) -> LoadResult:
    """The tasks ``options`` select; bad rows are logged and skipped, and no task at all ends the run."""
    loaded = load_from_config(options)
    for error in loaded.errors:
        log.error("skipping task: %s", error)
    if not loaded.tasks:
        raise SystemExit(
            f"no tasks to run: the task source selected nothing on split {options.split!r} (see errors above)"
        )
    return loaded


def run_rollouts(
    tasks: list[Task],
    store: TrajectoryStore,
    config: RolloutConfig,
    samples_per_task: int,
    num_workers: int,
) -> int:
    """Run every (task, sample) rollout missing from ``store``; returns the number that failed."""
    done = store.done_keys()
    work = [
        (task, index)
        for task in tasks
        for index in range(samples_per_task)
        if (task.instance_id, index) not in done
    ]
    skipped = len(tasks) * samples_per_task - len(work)
    if skipped:
        log.info("resuming: %d rollouts already in %s are skipped", skipped, store.root)
    builders = config.builders()
    failures = 0
    mode = config.settings.switch.mode
    with RolloutProgress(total=len(work), mode=mode) as progress, ThreadPoolExecutor(num_workers) as pool:
        pending: dict[Future, tuple[Task, int]] = {
            pool.submit(
                run_rollout,
                task,
                index,
                rollout_seed(config.seed, task.instance_id, index),
                config.settings,
                builders.get("student"),
                builders.get("expert"),
            ): (task, index)
            for task, index in work
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    task, index = pending.pop(future)
                    try:
                        trajectory = future.result()
                    except Exception:
                        failures += 1
                        log.exception("rollout %s #%d failed; it is not stored", task.instance_id, index)
                        progress.failed()
                        continue
                    store.append(trajectory)
                    progress.advance(trajectory)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            raise
    return failures
