"""The evaluation report: resolved / unresolved / infra_error counts, the resolve rate with a 95%
Wilson interval, the format-valid rate, and the result files.

The resolve rate is over graded rollouts only: a rollout whose verdict is not ``graded`` says nothing
about the model, so it is left out of the denominator and counted apart: ``infra_error`` (the sandbox
or container broke, :class:`oec.env.base.SandboxInfraError`) and, by status, under ``ungraded``
(also ``task_error``: the task's own test patch does not apply). When swebench's harness graded the
predictions (``evaluate.harness=swebench``, :mod:`oec.verify.swebench_harness`), the counts are its
own, per instance, and ``harness`` says so.

A library module, so the entry (``python -m oec.evaluate``) stays thin and tests and tools import
the numbers without Hydra. ``format_valid_rate`` reads the loop's record of malformed calls
(:func:`oec.types.malformed_turns`); it never re-parses replies. :func:`write_results` writes
``report.json``, ``per_task.csv`` and ``predictions.jsonl`` (``instance_id``,
``model_name_or_path``, ``model_patch``: the format swebench's harness reads).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

from oec.types import Trajectory, malformed_turns


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


def ungraded_counts(trajectories: list[Trajectory]) -> dict[str, int]:
    """How many rollouts have each verdict status other than ``graded`` (e.g. ``task_error``)."""
    return dict(Counter(t.verdict.status for t in trajectories if t.verdict is not None and t.ungraded))


def outcome_counts(resolved: int, unresolved: int, infra_error: int) -> dict[str, object]:
    """The counts and the resolve rate (with its Wilson interval) over resolved + unresolved."""
    graded = resolved + unresolved
    low, high = wilson_interval(resolved, graded)
    return {
        "graded": graded,
        "resolved": resolved,
        "unresolved": unresolved,
        "infra_error": infra_error,
        "resolve_rate": resolved / graded if graded else 0.0,
        "resolve_rate_ci95": [low, high],
    }


def evaluation_report(trajectories: list[Trajectory], model: str) -> dict[str, object]:
    """The report of our own verdicts (``harness``: ``ours``), one count per rollout."""
    graded = [t for t in trajectories if not t.ungraded]
    resolved = sum(t.resolved for t in graded)
    ungraded = ungraded_counts(trajectories)
    return {
        "model": model,
        "harness": "ours",
        "rollouts": len(trajectories),
        "tasks": len({t.instance_id for t in trajectories}),
        **outcome_counts(resolved, len(graded) - resolved, ungraded.get("infra_error", 0)),
        "ungraded": ungraded,
        "format_valid_rate": format_valid_rate(trajectories),
        "mean_turns": sum(t.num_turns for t in trajectories) / max(1, len(trajectories)),
        "exit_status": dict(Counter(t.exit_status for t in trajectories)),
    }


def write_results(
    trajectories: list[Trajectory], model: str, out_dir: Path, graded_by: dict[str, object] | None = None
) -> dict[str, object]:
    """Write report.json, per_task.csv and predictions.jsonl; returns the report.

    ``graded_by`` replaces the report's counts with another harness's (its :func:`outcome_counts`
    plus ``harness``); per_task.csv keeps our verdicts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = evaluation_report(trajectories, model) | (graded_by or {})
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out_dir / "per_task.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["instance_id", "sample_index", "resolved", "verdict", "exit_status", "turns", "error"]
        )
        for t in sorted(trajectories, key=lambda t: t.key):
            error, status = (t.verdict.error, t.verdict.status) if t.verdict else ("not verified", "")
            writer.writerow(
                [t.instance_id, t.sample_index, t.resolved, status, t.exit_status, t.num_turns, error or ""]
            )
    write_predictions(trajectories, model, out_dir)
    return report


def write_predictions(trajectories: list[Trajectory], model: str, out_dir: Path) -> Path:
    """Write predictions.jsonl (swebench's format: sample 0 of each task) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "predictions.jsonl"
    with path.open("w") as handle:
        for t in sorted(trajectories, key=lambda t: t.key):
            if t.sample_index == 0:
                row = {"instance_id": t.instance_id, "model_name_or_path": model, "model_patch": t.patch}
                handle.write(json.dumps(row) + "\n")
    return path
