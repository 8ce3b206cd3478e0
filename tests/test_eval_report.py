"""The evaluation report: Wilson interval, format-valid rate from the loop's record, result files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from oec.eval_report import evaluation_report, format_valid_rate, wilson_interval, write_results
from oec.progress import summary_rows
from oec.types import EnvKind, Message, Trajectory, Verdict, VerdictStatus

CALL = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"


def rollout(
    instance: str, sample: int, kinds: list[EnvKind], resolved: bool, status: VerdictStatus = "graded"
) -> Trajectory:
    """A student rollout whose calls were answered with ``kinds``, in turn order."""
    messages = [Message("system", "sys", "system", -1), Message("user", "issue", "user", -1)]
    for turn, kind in enumerate(kinds):
        messages.append(Message("assistant", CALL, "student", turn))
        messages.append(Message("user", f"answer {turn}", "env", turn, kind))
    return Trajectory(
        instance_id=instance,
        sample_index=sample,
        mode="on_policy",
        seed=sample,
        messages=messages,
        models={"student": "tiny"},
        exit_status="submitted" if resolved else "call_limit",
        patch=f"diff for {instance}#{sample}\n",
        verdict=Verdict(resolved=resolved, error=None if resolved else "tests failed", status=status),
    )


@pytest.mark.parametrize(
    ("successes", "total", "interval"),
    [(5, 10, (0.2366, 0.7634)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (0, 0, (0.0, 1.0))],
)
def test_wilson_interval_known_values(successes: int, total: int, interval: tuple[float, float]) -> None:
    assert wilson_interval(successes, total) == pytest.approx(interval, abs=1e-4)


def test_format_valid_rate_counts_the_recorded_malformed_calls() -> None:
    # The call text is well formed every time: only the record says which calls were rejected.
    trajectories = [
        rollout("a", 0, ["observation", "format_error", "observation"], True),
        rollout("b", 0, ["invalid_call"], False),
    ]
    assert format_valid_rate(trajectories) == 2 / 4
    assert format_valid_rate([]) is None


def test_write_results(tmp_path: Path) -> None:
    trajectories = [
        rollout("b", 0, ["observation"], False),
        rollout("a", 1, ["observation"], False),
        rollout("a", 0, ["observation", "observation"], True),
    ]
    report = write_results(trajectories, "tiny", tmp_path / "out")
    assert report == evaluation_report(trajectories, "tiny")
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == {
        "model": "tiny",
        "harness": "ours",
        "rollouts": 3,
        "tasks": 2,
        "graded": 3,
        "resolved": 1,
        "unresolved": 2,
        "infra_error": 0,
        "resolve_rate": 1 / 3,
        "resolve_rate_ci95": list(wilson_interval(1, 3)),
        "ungraded": {},
        "format_valid_rate": 1.0,
        "mean_turns": 4 / 3,
        "exit_status": {"call_limit": 2, "submitted": 1},
    }
    with (tmp_path / "out" / "per_task.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["instance_id", "sample_index", "resolved", "verdict", "exit_status", "turns", "error"],
        ["a", "0", "True", "graded", "submitted", "2", ""],
        ["a", "1", "False", "graded", "call_limit", "1", "tests failed"],
        ["b", "0", "False", "graded", "call_limit", "1", "tests failed"],
    ]
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert predictions == [
        {"instance_id": "a", "model_name_or_path": "tiny", "model_patch": "diff for a#0\n"},
        {"instance_id": "b", "model_name_or_path": "tiny", "model_patch": "diff for b#0\n"},
    ]


def test_task_errors_are_out_of_the_resolve_rate_and_counted_apart() -> None:
    trajectories = [
        rollout("a", 0, ["observation"], True),
        rollout("b", 0, ["observation"], False),
        rollout("c", 0, ["observation"], False, status="task_error"),
        rollout("c", 1, ["observation"], False, status="task_error"),
    ]
    report = evaluation_report(trajectories, "tiny")
    assert (report["rollouts"], report["graded"], report["ungraded"]) == (4, 2, {"task_error": 2})
    assert report["resolve_rate"] == 1 / 2
    assert report["resolve_rate_ci95"] == list(wilson_interval(1, 2))
    only_errors = evaluation_report(trajectories[2:], "tiny")
    assert (only_errors["graded"], only_errors["resolve_rate"]) == (0, 0.0)
    [row] = summary_rows(trajectories)
    assert (row["rollouts"], row["ungraded"], row["resolved"]) == (4, "task_error:2", 1)
    assert summary_rows(trajectories[:2])[0]["ungraded"] == "-"
