"""The evaluation report: resolve rate with a 95% Wilson interval, format-valid rate, result files.

The resolve rate is over graded rollouts only: a rollout whose verdict is not ``graded`` (a
``task_error``: the task's own test patch does not apply) says nothing about the model, so it is
left out of the denominator and counted apart under ``ungraded`` (by status).

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


def evaluation_report(trajectories: list[Trajectory], model: str) -> dict[str, object]:
    graded = [t for t in trajectories if not t.ungraded]
    resolved = sum(t.resolved for t in graded)
    low, high = wilson_interval(resolved, len(graded))
    return {
        "model": model,
        "rollouts": len(trajectories),
        "tasks": len({t.instance_id for t in trajectories}),
        "graded": len(graded),
        "ungraded": ungraded_counts(trajectories),
        "resolved": resolved,
        "resolve_rate": resolved / len(graded) if graded else 0.0,
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
        writer.writerow(
            ["instance_id", "sample_index", "resolved", "verdict", "exit_status", "turns", "error"]
        )
        for t in sorted(trajectories, key=lambda t: t.key):
            error, status = (t.verdict.error, t.verdict.status) if t.verdict else ("not verified", "")
            writer.writerow(
                [t.instance_id, t.sample_index, t.resolved, status, t.exit_status, t.num_turns, error or ""]
            )
    with (out_dir / "predictions.jsonl").open("w") as handle:
        for t in sorted(trajectories, key=lambda t: t.key):
            if t.sample_index == 0:
                row = {"instance_id": t.instance_id, "model_name_or_path": model, "model_patch": t.patch}
                handle.write(json.dumps(row) + "\n")
    return report
