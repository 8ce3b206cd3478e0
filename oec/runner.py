"""Many rollouts into one store: the machinery ``oec.collect`` and ``oec.evaluate`` share.

:func:`load_rollout_config` validates every section a rollout reads, for the policies the mode
needs (:data:`oec.switch.ROLES`), before any model or sandbox is touched. :func:`run_rollouts`
runs each missing (task, sample) pair on worker threads (sandbox commands and generation release
the GIL; one model is shared) and appends every finished rollout, fsynced, from the main thread,
so an interrupted run resumes where it stopped. A worker claims its pair in the store before the
rollout starts (:meth:`oec.store.TrajectoryStore.claim`), so a second collector on the same store
skips what the first is running or has stored.

On a stop signal (:class:`oec.runtime.StopRequest`) no rollout is launched any more, the queued
ones are dropped, and the ones in flight get ``grace_s`` to finish and be stored. What is still
running then is abandoned: its claim is released, its sandbox closed (:func:`oec.env.close_open_sandboxes`)
and, since a worker thread may be inside native code (generation) where interpreter shutdown
aborts, the process ends with ``os._exit`` once the store is closed (:meth:`StopRequest.exit`).

A budget (``collect.budget_usd``, ``evaluate.budget_usd``) stops a run the same way, without the
grace: once the spend reaches it, no rollout is launched any more, the queued ones are dropped, and
the ones in flight finish and are stored (each is bounded by ``agent.limits.max_cost_usd``), so the
spend may pass the budget by what those cost. The spend counts every rollout in the store, those of
earlier runs too, so a resumed run does not spend the budget again; a rollout that failed with an
exception is not stored and not counted, nor are rollouts another writer of the same store stores
while this run goes on (it reads the store's spend once, at the start).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oec.config import ConfigError, parse, to_container
from oec.env import EnvConfig, close_open_sandboxes
from oec.policies import PolicyBuilder, PolicyConfig, make_policy_builder
from oec.policies.pricing import Price
from oec.progress import RolloutProgress
from oec.rollout import AgentConfig, RolloutSettings, rollout_seed, run_rollout
from oec.runtime import StopRequest
from oec.store import Key, StoreError, TaskSource, TrajectoryStore
from oec.student import StudentModel
from oec.switch import ROLES, SwitchConfig
from oec.tasks import LoadResult, TasksConfig, load_from_config
from oec.types import Author, Task, Trajectory
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
    """The student description (``model``): tokenizer, template, context length of ``hf`` and
    ``openai`` policies."""
    prices: dict[str, Price] = field(default_factory=dict)
    """``prices``: dollars per million tokens by model name, for API and served policies."""

    def builders(self) -> dict[Author, PolicyBuilder]:
        """Per-rollout builders of the policies; ``hf`` weights load here, once."""
        return {
            role: make_policy_builder(config, role, self.student, self.prices)
            for role, config in self.policies.items()
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
        "env": section(EnvConfig, "env"),
        "agent": section(AgentConfig, "agent"),
        "filter": section(FilterConfig, "filter"),
        "model": section(StudentModel, "model"),
        "prices": section(dict[str, Price], "prices"),
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
        prices=parts["prices"],
    )


def store_config(cfg: DictConfig, config: RolloutConfig, **extra: Any) -> dict[str, Any]:
    """The part of the resolved config that defines a store's rollouts (compared on resume):
    only the policies the mode uses, and the student description only when a policy reads it."""
    sections = ["seed", "tasks", "env", "switch", "filter", "agent", *config.policies]
    if any(c.backend in ("hf", "openai") for c in config.policies.values()):
        sections.append("model")
    return {key: to_container(cfg[key], key) for key in sections} | extra


def select_tasks(options: TasksConfig) -> LoadResult:
    """The tasks ``options`` select; bad rows are logged and skipped, and no task at all ends the run.

    A missing or unreadable tasks file raises :class:`~oec.config.ConfigError` naming ``tasks.path``."""
    loaded = load_from_config(options)
    for error in loaded.errors:
        log.error("skipping task: %s", error)
    if not loaded.tasks:
        raise SystemExit(
            f"no tasks to run: the task source selected nothing on split {options.split!r} (see errors above)"
        )
    return loaded


def task_source(loaded: LoadResult) -> TaskSource:
    """The tasks file ``loaded`` was read from (the bundled one for embedded tasks) and its hash."""
    return TaskSource.of_file(loaded.source)


def run_into_store(
    root: str,
    recorded: dict[str, Any],
    config: RolloutConfig,
    loaded: LoadResult,
    stop: StopRequest,
    *,
    samples_per_task: int,
    num_workers: int,
    grace_s: float,
    budget_usd: float | None = None,
    allow_config_change: bool = False,
    allow_task_change: bool = False,
) -> tuple[TrajectoryStore, RunOutcome]:
    """Open (or resume) the store at ``root`` and run every missing rollout into it: the part of
    ``oec.collect`` and ``oec.evaluate`` that is the same. A refused store ends the run with one
    ``store error`` line; a stop signal ends it with the signal's status once the store is closed."""
    try:
        store = TrajectoryStore.open(
            root,
            config=recorded,
            allow_config_change=allow_config_change,
            task_source=task_source(loaded),
            allow_task_change=allow_task_change,
        )
    except StoreError as exc:
        raise SystemExit(f"store error: {exc}") from None
    try:
        outcome = run_rollouts(
            loaded.tasks, store, config, samples_per_task, num_workers, stop, grace_s, budget_usd
        )
    finally:
        store.close()
    if stop.requested:
        if outcome.workers_left:
            closed = close_open_sandboxes()
            log.warning("closed the %d sandboxes of abandoned rollouts", closed)
        stop.exit(threads_left=outcome.workers_left)
    return store, outcome


@dataclass
class RunOutcome:
    """What :func:`run_rollouts` did; ``abandoned`` and ``cancelled`` are non-empty only after a stop."""

    stored: int = 0
    failures: int = 0
    claimed_elsewhere: list[Key] = field(default_factory=list)
    """Pairs another live writer was rolling out or had stored meanwhile: not run here."""
    abandoned: list[Key] = field(default_factory=list)
    """In flight when the grace ran out: not stored, their sandboxes closed before the exit."""
    cancelled: int = 0
    """Queued pairs never started because of the stop."""
    workers_left: bool = False
    """Some worker thread still runs (an abandoned rollout): the process must not wait for it."""
    spent_before_usd: float = 0.0
    """What the rollouts already in the store when the run started cost."""
    spent_usd: float = 0.0
    """What the rollouts stored by this run cost."""
    budget_usd: float | None = None
    budget_reached: bool = False
    """The spend reached ``budget_usd``: no rollout was launched from then on."""
    over_budget: int = 0
    """Pairs never started because the spend reached the budget."""

    def budget_line(self) -> str | None:
        """One sentence on the budget stop, or None when the budget did not stop the run."""
        if not self.budget_reached:
            return None
        return (
            f"budget reached: ${self.spent_before_usd + self.spent_usd:.2f} spent of "
            f"${self.budget_usd:.2f} (${self.spent_usd:.2f} in this run); "
            f"{self.over_budget} rollouts were not launched"
        )


_STARTED, _FINISHED, _FAILED, _SKIPPED = "started", "finished", "failed", "skipped"
_POLL_S = 0.2


def run_rollouts(
    tasks: list[Task],
    store: TrajectoryStore,
    config: RolloutConfig,
    samples_per_task: int,
    num_workers: int,
    stop: StopRequest | None = None,
    grace_s: float = 20.0,
    budget_usd: float | None = None,
) -> RunOutcome:
    """Run every (task, sample) rollout missing from ``store`` until done, ``stop`` is requested, or
    the store's spend reaches ``budget_usd`` (None: no budget)."""
    stop = stop or StopRequest()
    outcome = RunOutcome(budget_usd=budget_usd)
    if budget_usd is not None:
        outcome.spent_before_usd = sum(t.cost_usd for t in store.read())
    done = store.done_keys()
    work: queue.SimpleQueue[tuple[Task, int]] = queue.SimpleQueue()
    total = 0
    for task in tasks:
        for index in range(samples_per_task):
            if (task.instance_id, index) not in done:
                work.put((task, index))
                total += 1
    skipped = len(tasks) * samples_per_task - total
    if skipped:
        log.info("resuming: %d rollouts already in %s are skipped", skipped, store.root)
    if stop.requested:  # during start-up: do not load models for nothing
        log.warning("stopped by %s before any rollout started", stop.name)
        outcome.cancelled = total
        return outcome
    if budget_usd is not None and outcome.spent_before_usd >= budget_usd:
        outcome.budget_reached, outcome.over_budget = True, total
        log.warning("%s", outcome.budget_line())
        return outcome
    builders = config.builders()
    results: queue.SimpleQueue[tuple[str, Key, Any]] = queue.SimpleQueue()
    over_budget = threading.Event()
    # Spend of the store's rollouts and of those finished here, summed by the workers as each rollout
    # finishes, before the worker takes its next pair: a finished rollout's cost is known at once.
    spend_lock = threading.Lock()
    spent = outcome.spent_before_usd

    def finished(trajectory: Trajectory) -> None:
        nonlocal spent
        if budget_usd is None:
            return
        with spend_lock:
            spent += trajectory.cost_usd
            if spent >= budget_usd and not over_budget.is_set():
                over_budget.set()
                log.warning(
                    "budget reached: $%.2f spent of $%.2f; no more rollouts are launched, those in "
                    "flight finish and are stored",
                    spent,
                    budget_usd,
                )

    def worker() -> None:
        while not (stop.requested or over_budget.is_set()):
            try:
                task, index = work.get_nowait()
            except queue.Empty:
                return
            if over_budget.is_set():  # reached while this pair was being taken: it stays queued
                work.put((task, index))
                return
            key = (task.instance_id, index)
            try:
                if not store.claim(key):
                    results.put((_SKIPPED, key, None))
                    continue
                results.put((_STARTED, key, None))
                trajectory = run_rollout(
                    task,
                    index,
                    rollout_seed(config.seed, task.instance_id, index),
                    config.settings,
                    builders.get("student"),
                    builders.get("expert"),
                )
            except Exception as exc:
                store.release(key)
                results.put((_FAILED, key, exc))
            else:
                finished(trajectory)
                results.put((_FINISHED, key, trajectory))

    in_flight: set[Key] = set()

    def record(kind: str, key: Key, value: Any) -> None:
        if kind == _STARTED:
            in_flight.add(key)
            return
        in_flight.discard(key)
        if kind == _SKIPPED:
            outcome.claimed_elsewhere.append(key)
            progress.skipped()
        elif kind == _FAILED:
            outcome.failures += 1
            log.error("rollout %s #%d failed; it is not stored", *key, exc_info=value)
            progress.failed()
        else:
            store.append(value)
            outcome.stored += 1
            outcome.spent_usd += value.cost_usd
            progress.advance(value)

    # Daemon threads: one abandoned after the grace must not hold the interpreter's exit.
    threads = [threading.Thread(target=worker, name=f"rollout-{i}", daemon=True) for i in range(num_workers)]
    deadline: float | None = None
    progress = RolloutProgress(
        total=total,
        mode=config.settings.switch.mode,
        spent_usd=outcome.spent_before_usd,
        budget_usd=budget_usd,
    )
    with progress:
        for thread in threads:
            thread.start()
        while True:
            if stop.requested and deadline is None:
                deadline = time.monotonic() + grace_s
                log.warning(
                    "%s received: no more rollouts are launched; those in flight get %.0f s to finish",
                    stop.name,
                    grace_s,
                )
            try:
                record(*results.get(timeout=_POLL_S))
            except queue.Empty:
                if not any(thread.is_alive() for thread in threads) and results.empty():
                    break
                if deadline is not None and (stop.forced or time.monotonic() >= deadline):
                    break
        # What finished while the last poll timed out is stored too.
        while not results.empty():
            record(*results.get())
    if outcome.claimed_elsewhere:
        log.info(
            "%d rollouts were skipped: another writer of %s was running or had stored them",
            len(outcome.claimed_elsewhere),
            store.root,
        )
    outcome.budget_reached = over_budget.is_set()
    if outcome.budget_reached and not stop.requested:
        outcome.over_budget = _drop(work)
    if stop.requested:
        outcome.cancelled = _drop(work)
        outcome.abandoned = sorted(in_flight)
        outcome.workers_left = any(thread.is_alive() for thread in threads)
        for key in outcome.abandoned:
            store.release(key)
        log.warning(
            "stopped by %s: %d rollouts stored in this run, %d abandoned in flight (%s), %d never started",
            stop.name,
            outcome.stored,
            len(outcome.abandoned),
            ", ".join(f"{i}#{n}" for i, n in outcome.abandoned) or "none",
            outcome.cancelled,
        )
    return outcome


def _drop(work: queue.SimpleQueue[tuple[Task, int]]) -> int:
    """Empty the queue of pairs not started; how many there were."""
    dropped = 0
    while True:
        try:
            work.get_nowait()
        except queue.Empty:
            return dropped
        dropped += 1
