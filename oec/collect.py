"""``python -m oec.collect +exp=NAME``: run verified, filtered rollouts into a trajectory store.

Modes come from the switch schedule: ``always`` = expert only (BC), ``never`` = student only
(on-policy), anything else = OEC. Every (task, sample) pair is one rollout; pairs already in the
store are skipped, so rerunning the same command resumes. Rollouts run on ``collect.num_workers``
threads (sandbox commands and generation release the GIL; one model is shared), and each finished
rollout is appended and fsynced by the main thread before the next is counted.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import hydra
from omegaconf import DictConfig

from oec.agent.loop import AgentLimits
from oec.agent.prompts import Prompts
from oec.config import ConfigError, parse, to_container
from oec.env import SandboxConfig
from oec.policies import PolicyConfig, make_policy_builder
from oec.progress import RolloutProgress, print_summary
from oec.rollout import RolloutSettings, rollout_seed, run_rollout
from oec.runtime import exit_on_sigterm
from oec.store import TrajectoryStore
from oec.switch import SwitchConfig
from oec.tasks import LoadResult, TasksConfig, TasksConfigError, load_from_config
from oec.types import Task
from oec.verify import FilterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectConfig:
    """``collect`` config: where rollouts go and how many run."""

    store: str
    samples_per_task: int = 1
    num_workers: int = 1
    allow_config_change: bool = False

    def __post_init__(self) -> None:
        if self.samples_per_task < 1:
            raise ValueError(f"collect.samples_per_task: must be >= 1, got {self.samples_per_task}")
        if self.num_workers < 1:
            raise ValueError(f"collect.num_workers: must be >= 1, got {self.num_workers}")


@dataclass(frozen=True)
class AgentConfig:
    """``agent`` config group: episode limits, prompt templates and the verification timeout."""

    limits: AgentLimits = field(default_factory=AgentLimits)
    prompts: Prompts = field(default_factory=Prompts)
    verify_timeout_s: float = 600.0


def rollout_settings(cfg: DictConfig) -> RolloutSettings:
    agent = parse(AgentConfig, cfg.agent, "agent")
    return RolloutSettings(
        switch=parse(SwitchConfig, cfg.switch, "switch"),
        env=parse(SandboxConfig, cfg.env, "env"),
        limits=agent.limits,
        filters=parse(FilterConfig, cfg.filter, "filter"),
        prompts=agent.prompts,
        verify_timeout_s=agent.verify_timeout_s,
    )


def collect(
    tasks: list[Task],
    store: TrajectoryStore,
    settings: RolloutSettings,
    student: PolicyConfig | None,
    expert: PolicyConfig | None,
    samples_per_task: int,
    num_workers: int,
    seed: int,
) -> int:
    """Run every missing (task, sample) rollout into ``store``; returns the number of failures."""
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
    mode = settings.switch.mode
    student_builder = make_policy_builder(student) if student and mode != "bc" else None
    expert_builder = make_policy_builder(expert) if expert and mode != "on_policy" else None
    failures = 0
    with RolloutProgress(total=len(work), mode=mode) as progress, ThreadPoolExecutor(num_workers) as pool:
        pending: dict[Future, tuple[Task, int]] = {
            pool.submit(
                run_rollout,
                task,
                index,
                rollout_seed(seed, task.instance_id, index),
                settings,
                student_builder,
                expert_builder,
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


def collection_config(cfg: DictConfig) -> dict:
    """The part of the resolved config that defines a store's rollouts (checked on resume)."""
    keys = ("seed", "tasks", "env", "student", "expert", "switch", "filter", "agent")
    config = {key: to_container(cfg[key]) for key in keys if key in cfg}
    # Where the store lives and how fast it is filled do not change what is in it.
    config["collect"] = {"samples_per_task": cfg.collect.samples_per_task}
    return config


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    exit_on_sigterm()
    try:
        settings = rollout_settings(cfg)
        options = parse(CollectConfig, cfg.collect, "collect")
        student = parse(PolicyConfig, cfg.student, "student") if settings.switch.mode != "bc" else None
        expert = parse(PolicyConfig, cfg.expert, "expert") if settings.switch.mode != "on_policy" else None
        task_options = TasksConfig.from_dict(to_container(cfg.tasks))
    except (ConfigError, TasksConfigError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    loaded = select_tasks(task_options)
    store = TrajectoryStore.open(
        options.store, config=collection_config(cfg), allow_config_change=options.allow_config_change
    )
    try:
        failures = collect(
            loaded.tasks,
            store,
            settings,
            student,
            expert,
            options.samples_per_task,
            options.num_workers,
            int(cfg.seed),
        )
    finally:
        store.close()
    print_summary(list(store.read()), title=f"collection summary: {options.store}")
    if failures or loaded.errors:
        raise SystemExit(f"{failures} rollouts failed and {len(loaded.errors)} task rows were skipped")


if __name__ == "__main__":
    main()
