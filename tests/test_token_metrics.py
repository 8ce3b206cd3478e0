"""Token-level metrics at the student's own states: which states count, how actions are compared, the
first divergence, and the whole CLI on real OEC rollouts of the tiny student and the oracle."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.token_metrics import StateRecord, first_divergence, main, same_action, student_states
from analysis.turnwise import bootstrap_weights
from oec.policies.oracle import OraclePolicy
from oec.store import read_trajectories
from oec.tasks.loaders import load_tasks
from oec.types import Message, Trajectory

REPO = Path(__file__).resolve().parents[1]
LS = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"


def conversation(authors: list[str]) -> Trajectory:
    messages = [Message("system", "s", "system", -1), Message("user", "fix it", "user", -1)]
    for turn, author in enumerate(authors):
        messages.append(Message("assistant", LS, author, turn))
        messages.append(Message("user", "OBSERVATION", "env", turn, kind="observation"))
    handover = authors.index("expert") if "expert" in authors else None
    return Trajectory("t", 0, "oec", 0, messages, {}, "submitted", "", handover, handover)


def test_student_states_stop_at_the_first_expert_call() -> None:
    states = list(student_states(conversation(["student", "student", "expert", "expert"])))
    assert [turn for turn, _, _ in states] == [0, 1, 2]
    assert [expert is not None for _, _, expert in states] == [False, False, True]
    # The state of turn t is everything before call t: its last message answers call t - 1.
    assert states[2][1][-1].turn == 1 and states[2][1][-1].author == "env"
    assert [turn for turn, _, _ in student_states(conversation(["student"] * 3))] == [0, 1, 2]
    assert [turn for turn, _, _ in student_states(conversation(["expert"] * 3))] == [0]


def test_actions_compare_as_typed_calls() -> None:
    assert same_action("I look.\n\n" + LS, "Something else.\n\n" + LS)
    assert not same_action(LS, LS.replace("ls", "ls -a"))
    assert not same_action("no call at all", "no call at all")


def test_first_divergence_is_the_first_disagreement_per_rollout() -> None:
    def record(instance: str, turn: int, agreement: bool) -> StateRecord:
        return StateRecord("store", instance, 0, turn, "queried", 1.0, 3, agreement, agreement)

    records = [
        record("a", 0, True),
        record("a", 1, False),
        record("a", 2, True),
        record("b", 0, True),
        record("c", 0, False),
        dataclasses.replace(record("c", 0, True), store="other"),
    ]
    weights = np.vstack([np.ones((1, 3)), bootstrap_weights(3, 50, 0)])
    summary = first_divergence(records, ["a", "b", "c"], weights)
    # c#0 of the other store is another rollout, one that never diverged.
    assert summary["rollouts"] == 4 and summary["diverged_rollouts"] == 2
    assert summary["diverged_fraction"] == pytest.approx(2 / 4)
    assert summary["first_divergence_turn"] == pytest.approx(0.5)


@pytest.mark.slow
def test_cli_on_oec_rollouts_of_the_tiny_student_and_the_oracle(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "oec.collect",
            "+exp=demo",
            "switch=fixed",
            "switch.k=2",
            "tasks.limit=3",
            "student.max_new_tokens=24",
            "agent.limits.max_calls=4",
            f"collect.store={store}",
            f"env.parent_dir={tmp_path / 'sandboxes'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    out = tmp_path / "out"
    argv = ["--store", str(store), "--out", str(out), "--max-new-tokens", "24"]
    assert main([*argv, "--min-samples", "3", "--bootstrap", "100"]) == 0

    states = list(csv.DictReader((out / "states.csv").open()))
    # k = 2: states 0 and 1 were the student's (the oracle queried), at 2 the expert took over.
    assert [(s["turn"], s["expert_source"]) for s in states[:3]] == [
        ("0", "queried"),
        ("1", "queried"),
        ("2", "recorded"),
    ]
    assert len(states) == 9
    # A random-init student spreads its mass over the vocabulary: about ln(151k) nats per token.
    assert all(10 < float(s["expert_nll"]) < 14 for s in states)
    rows = list(csv.DictReader((out / "token_metrics.csv").open()))
    assert {(r["turn"], r["metric"]) for r in rows} == {
        (str(t), m) for t in range(3) for m in ("expert_nll", "agreement", "undiverged")
    }
    assert all(float(r["low"]) <= float(r["value"]) <= float(r["high"]) for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["rollouts"] == 3 and summary["queried_expert_actions"] == 6
    assert summary["first_divergence"]["rollouts"] == 3
    assert all((out / f"{m}.png").stat().st_size > 0 for m in ("expert_nll", "agreement", "undiverged"))

    # A queried action is the one the switch would have made the oracle take: at the handover state,
    # the query gives exactly what the expert recorded there.
    tasks = {t.instance_id: t for t in load_tasks("embedded", materialize_snapshots=False).tasks}
    for trajectory in read_trajectories(store):
        turn, state, expert = list(student_states(trajectory))[-1]
        assert expert is not None and turn == trajectory.handover_turn
        queried = OraclePolicy(tasks[trajectory.instance_id], trajectory.seed).act(state, turn).content
        assert queried == expert.content

    assert main([*argv, "--modes", "bc"]) == 2
