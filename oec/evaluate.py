"""``python -m oec.evaluate +exp=NAME student.model=CHECKPOINT``: the student alone on held-out tasks.

Evaluation is collection with the switch set to ``never``, on ``evaluate.split`` (held-out by
default), into its own resumable store (see :mod:`oec.runner`). It then writes, next to that store,
``report.json``, ``per_task.csv`` and ``predictions.jsonl`` (see :mod:`oec.eval_report`). A stop
signal ends it like collection (``evaluate.stop_grace_s``), without a report: rerun to resume.

Who grades: ``evaluate.harness=ours`` (default) reports the verdicts the rollouts carry (our sandbox
and grader, per rollout). ``evaluate.harness=swebench`` also hands ``predictions.jsonl`` to swebench's
harness (:mod:`oec.verify.swebench_harness`) and reports its counts (per task, sample 0) when the
docker daemon, every image and the swebench 5.x columns are present; otherwise it says why and keeps
our verdicts. Either way the report has resolved / unresolved / infra_error counts and the Wilson
interval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import hydra
from omegaconf import DictConfig

from oec.config import Above, AtLeast, ConfigError, NonEmpty, parse
from oec.eval_report import write_predictions, write_results
from oec.progress import print_collection_summary
from oec.runner import load_rollout_config, run_into_store, select_tasks, store_config
from oec.runtime import StopRequest
from oec.switch import Never
from oec.tasks.config import Split
from oec.types import Task
from oec.verify.swebench_harness import HarnessUnavailable, grade_with_harness, unavailable_reason


@dataclass(frozen=True)
class SwebenchHarnessConfig:
    """``evaluate.swebench``: options of ``python -m swebench.harness.run_evaluation``."""

    run_id: Annotated[str, NonEmpty()] = "oec"
    """Names the harness's log folder (``logs/run_evaluation/<run_id>``) and its run report."""
    max_workers: Annotated[int, AtLeast(1)] = 4
    timeout_s: Annotated[int, AtLeast(1)] = 1800
    """Per-instance test timeout."""


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` config: which split the student is scored on and where results go."""

    store: str
    """Per-rollout store; report.json, per_task.csv and predictions.jsonl are written next to it."""
    split: Split | None = "test"
    """Split of the task source the student is scored on (replaces ``tasks.split``)."""
    samples_per_task: Annotated[int, AtLeast(1)] = 1
    num_workers: Annotated[int, AtLeast(1)] = 1
    allow_task_change: bool = False
    """Resume a store whose tasks file (or embedded tasks) changed since it was created."""
    stop_grace_s: Annotated[float, AtLeast(0)] = 20.0
    """On SIGTERM/SIGINT/SIGUSR2, how long in-flight rollouts may still finish and be stored."""
    harness: Literal["ours", "swebench"] = "ours"
    """Who grades the report: our verdicts, or swebench's harness on predictions.jsonl (module docstring)."""
    swebench: SwebenchHarnessConfig = field(default_factory=SwebenchHarnessConfig)
    budget_usd: Annotated[float, Above(0)] | None = None
    """Total spend in dollars (every rollout in the store counts); once reached no rollout is
    launched and those in flight finish; the report covers what was stored. Null: no budget."""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    stop = StopRequest.install()
    try:
        options = parse(EvaluateConfig, cfg.evaluate, "evaluate")
        config = load_rollout_config(cfg, switch=Never())
        config = dataclasses.replace(config, tasks=dataclasses.replace(config.tasks, split=options.split))
        loaded = select_tasks(config.tasks)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    recorded = store_config(cfg, config, switch={"schedule": "never"}, evaluate={"split": options.split})
    store, outcome = run_into_store(
        options.store,
        recorded,
        config,
        loaded,
        stop,
        samples_per_task=options.samples_per_task,
        num_workers=options.num_workers,
        grace_s=options.stop_grace_s,
        budget_usd=options.budget_usd,
        allow_task_change=options.allow_task_change,
    )
    wanted = {t.instance_id for t in loaded.tasks}
    trajectories = [t for t in store.read() if t.instance_id in wanted]
    print_collection_summary(
        trajectories, title=f"evaluation summary: {options.store}", note=outcome.budget_line()
    )
    model_name = config.policies["student"].model_name
    out_dir = Path(options.store)
    graded_by = None
    if options.harness == "swebench":
        predictions = write_predictions(trajectories, model_name, out_dir)
        graded_by = _grade_with_swebench(loaded.tasks, predictions, model_name, options.swebench)
    report = write_results(trajectories, model_name, out_dir, graded_by)
    low, high = report["resolve_rate_ci95"]
    print(
        f"eval/resolve_rate {report['resolve_rate']:.3f} (95% CI {low:.3f}-{high:.3f}) graded by "
        f"{report['harness']}: {report['resolved']} resolved, {report['unresolved']} unresolved, "
        f"{report['infra_error']} infra_error (not in the rate); "
        f"eval/format_valid_rate {report['format_valid_rate']}"
    )
    if outcome.failures:
        raise SystemExit(f"{outcome.failures} evaluation rollouts failed")


def _grade_with_swebench(
    tasks: list[Task], predictions: Path, model: str, harness: SwebenchHarnessConfig
) -> dict[str, object] | None:
    """swebench's counts for the report, or None (with the reason printed) to keep ours."""
    reason = unavailable_reason(tasks)
    if reason is None:
        try:
            return grade_with_harness(
                tasks, predictions, model, harness.run_id, harness.max_workers, harness.timeout_s
            ).counts()
        except HarnessUnavailable as exc:
            reason = str(exc)
    print(f"evaluate.harness=swebench: not used, the report keeps our own verdicts: {reason}")
    return None


if __name__ == "__main__":
    main()
