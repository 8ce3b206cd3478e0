"""Turn-wise covariate-shift analysis: turn records, metrics, paired bootstrap, Gaussian distances, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.covariate_shift import COLUMNS, main
from analysis.embedders import hashed_bag_of_words, load_embedder
from analysis.gaussian import Gaussian, fit_gaussian, frechet_distance, gaussian_kl, sqrtm_psd
from analysis.metrics import BETWEEN, EXPERT, STUDENT, default_metrics, frechet_metric, jensen_shannon
from analysis.turns import (
    FORMAT_ERROR,
    AnalysisError,
    GroupSpec,
    action_category,
    bash_category,
    load_group,
    shared_instances,
    turn_records,
)
from analysis.turnwise import bootstrap_weights, turnwise
from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.prompts import format_error, observation
from oec.store import TrajectoryStore
from oec.types import Message, Trajectory


def bash(command: str) -> str:
    return render_action(Action("Let me check.", ToolCall("bash", {"command": command})))


SUBMIT = render_action(Action("Done.", ToolCall("submit", {})))
GARBAGE = "I think I should look at the code"


def rollout(
    instance: str, sample: int, replies: list[str], authors: list[str] | str, mode: str = "bc"
) -> Trajectory:
    """A trajectory of ``replies`` (one per model call) by ``authors``, each answered by the loop."""
    authors = [authors] * len(replies) if isinstance(authors, str) else authors
    messages = [Message("system", "sys", "system", -1), Message("user", "issue", "user", -1)]
    for turn, (reply, author) in enumerate(zip(replies, authors, strict=True)):
        messages.append(Message("assistant", reply, author, turn))
        if reply == GARBAGE:
            messages.append(Message("user", format_error("no call"), "env", turn, "format_error"))
        else:
            messages.append(Message("user", observation(f"output {turn}"), "env", turn, "observation"))
    return Trajectory(
        instance_id=instance,
        sample_index=sample,
        mode=mode,
        seed=sample,
        messages=messages,
        models={},
        exit_status="submitted",
        patch="",
    )


def make_store(root: Path, trajectories: list[Trajectory]) -> Path:
    with TrajectoryStore.open(root, {"name": root.name}) as store:
        for trajectory in trajectories:
            store.append(trajectory)
    return root


PLAN = [bash("ls"), bash("cat a.py"), bash("pytest -q"), SUBMIT]


def oec_rollouts() -> list[Trajectory]:
    """Two OEC rollouts on each of task-0..4: student turns 0-1, expert turns 2-4."""
    replies = [bash("ls"), bash("cat a"), bash("git diff"), bash("pytest"), SUBMIT]
    authors = ["student", "student", "expert", "expert", "expert"]
    return [rollout(f"task-{i}", s, replies, authors, "oec") for i in range(5) for s in range(2)]


OTHER = [bash("grep -rn x ."), bash("sed -n 1,5p a.py"), bash("git diff"), SUBMIT]


def group(plans: list[list[str]], author: str, instances: int = 6) -> list[Trajectory]:
    return [
        rollout(f"task-{i}", s, plan, author, "on_policy" if author == "student" else "bc")
        for i in range(instances)
        for s, plan in enumerate(plans)
    ]


def rollouts(trajectories: list[Trajectory], author: str) -> dict:
    result: dict = {}
    for t in trajectories:
        result.setdefault(t.instance_id, []).append(turn_records(t, author))
    return result


@pytest.mark.parametrize(
    ("command", "category"),
    [
        ("cd /repo && python -m pytest tests -q", "bash:pytest"),
        ("FOO=1 python3.11 script.py", "bash:python"),
        ("/usr/bin/grep -rn 'a|b' .", "bash:grep"),
        ("head -n 20 a.py | nl", "bash:cat"),
        ("ls -la", "bash:ls"),
        ("git status; git diff", "bash:git"),
        ("grep 'unclosed", "bash:grep"),
        ("echo hi", "bash:other"),
        ("cd /repo", "bash:other"),
    ],
)
def test_bash_category(command: str, category: str) -> None:
    assert bash_category(command) == category


def test_action_category_of_tools_and_format_errors() -> None:
    view = render_action(Action("", ToolCall("str_replace_editor", {"command": "view", "path": "a.py"})))
    assert action_category(view) == "str_replace_editor:view"
    assert action_category(SUBMIT) == "submit"
    assert action_category(bash("pytest")) == "bash:pytest"
    assert action_category(GARBAGE) == FORMAT_ERROR


def test_turn_records_of_a_mixed_rollout() -> None:
    unknown_tool = render_action(Action("", ToolCall("search", {"q": "x"})))
    trajectory = rollout(
        "t",
        0,
        [bash("pytest -q"), bash("pytest  -q"), GARBAGE, bash("pytest -q"), bash("pytest -q"), unknown_tool],
        ["student", "student", "student", "expert", "expert", "expert"],
        "oec",
    )
    # The loop rejects a parseable call of an unknown tool: a malformed call too.
    trajectory.messages[-1] = Message("user", format_error("unknown tool"), "env", 5, "invalid_call")
    student = turn_records(trajectory, "student")
    expert = turn_records(trajectory, "expert")
    assert [r.turn for r in student] == [0, 1, 2] and [r.turn for r in expert] == [3, 4, 5]
    assert [r.repeated for r in student] == [False, True, False]
    # Turn 3 follows a format error, so it repeats nothing; turn 4 repeats turn 3.
    assert [r.repeated for r in expert] == [False, True, False]
    assert [r.format_error for r in student + expert] == [False, False, True, False, False, True]
    assert [r.category for r in student + expert] == ["bash:pytest"] * 2 + [FORMAT_ERROR] + [
        "bash:pytest"
    ] * 2 + [FORMAT_ERROR]


def test_jensen_shannon_known_values() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [0.75, 0.25]])
    m = np.array([0.5, 0.5])
    expected = 0.5 * (p[2] * np.log2(p[2] / m)).sum() + 0.5 * (q[2] * np.log2(q[2] / m)).sum()
    assert jensen_shannon(p, q) == pytest.approx([1.0, 0.0, expected])


def test_jsd_is_zero_for_identical_groups() -> None:
    plans = [PLAN, OTHER]
    student, expert = rollouts(group(plans, "student"), "student"), rollouts(group(plans, "expert"), "expert")
    instances = shared_instances(student, expert)
    result = turnwise(student, expert, instances, default_metrics(), replicates=200, seed=0)
    jsd = [r for r in result.rows if r.metric == "action_jsd"]
    assert [r.turn for r in jsd] == [0, 1, 2, 3]
    assert all(r.group == BETWEEN and r.value == r.low == r.high == r.estimate == 0 for r in jsd)
    assert all(r.n == 12 and r.instances == 6 and r.replicates == 200 for r in jsd)


def test_jsd_is_positive_for_differing_groups_and_bands_hold_the_mean() -> None:
    student = rollouts(group([PLAN, PLAN, OTHER], "student"), "student")
    expert = rollouts(group([OTHER, OTHER, PLAN], "expert"), "expert")
    instances = shared_instances(student, expert)
    result = turnwise(student, expert, instances, default_metrics(smoothing=0), replicates=300, seed=1)
    jsd = [r for r in result.rows if r.metric == "action_jsd" and r.turn < 3]
    # Plug-in JSD of (2/3, 1/3) against (1/3, 2/3).
    p, q = np.array([[2 / 3, 1 / 3]]), np.array([[1 / 3, 2 / 3]])
    assert all(r.estimate == pytest.approx(jensen_shannon(p, q)[0]) for r in jsd)
    assert all(r.value > 0.05 for r in jsd)
    assert all(r.low <= r.value <= r.high for r in result.rows)
    smoothed = turnwise(student, expert, instances, default_metrics(smoothing=5), replicates=10, seed=1)
    assert smoothed.rows[0].estimate < jsd[0].estimate


def test_rates_per_group() -> None:
    student = rollouts(group([[bash("ls"), GARBAGE, bash("ls"), bash("ls"), SUBMIT]], "student"), "student")
    expert = rollouts(
        group([[bash("ls"), bash("cat a"), bash("ls"), bash("pytest"), SUBMIT]], "expert"), "expert"
    )
    result = turnwise(student, expert, shared_instances(student, expert), default_metrics(), replicates=50)
    value = {(r.turn, r.metric, r.group): r.value for r in result.rows}
    assert value[(1, "format_error_rate", STUDENT)] == 1.0
    assert value[(1, "format_error_rate", EXPERT)] == 0.0
    assert value[(3, "repeat_rate", STUDENT)] == 1.0
    assert value[(2, "repeat_rate", STUDENT)] == 0.0
    assert all(value[(t, "repeat_rate", EXPERT)] == 0.0 for t in range(5))


def test_bootstrap_is_seeded_and_paired() -> None:
    weights = bootstrap_weights(7, 20, seed=3)
    assert weights.shape == (20, 7) and (weights.sum(axis=1) == 7).all()
    assert (weights == bootstrap_weights(7, 20, seed=3)).all()
    assert not (weights == bootstrap_weights(7, 20, seed=4)).all()
    student = rollouts(group([PLAN, OTHER, OTHER], "student"), "student")
    expert = rollouts(group([OTHER, PLAN, PLAN], "expert"), "expert")
    instances = shared_instances(student, expert)
    varied = {i: [[*r] for r in rs] for i, rs in student.items()}
    varied["task-0"] = varied["task-0"][:1]
    runs = [turnwise(varied, expert, instances, default_metrics(), replicates=100, seed=s) for s in (0, 0, 5)]
    assert runs[0].rows == runs[1].rows
    assert runs[0].rows != runs[2].rows


def test_sparse_turns_are_skipped() -> None:
    short = group([PLAN[:2]], "student", instances=3)
    student = rollouts([*short, rollout("task-0", 9, PLAN, "student")], "student")
    expert = rollouts(group([PLAN], "expert", instances=3), "expert")
    result = turnwise(student, expert, ["task-0", "task-1", "task-2"], default_metrics(), min_samples=2)
    assert {r.turn for r in result.rows} == {0, 1}
    assert [(s.turn, s.n_student, s.n_expert) for s in result.skipped] == [(2, 1, 3), (3, 1, 3)]
    capped = turnwise(
        student, expert, ["task-0", "task-1", "task-2"], default_metrics(), max_turn=0, min_samples=2
    )
    assert {r.turn for r in capped.rows} == {0} and not capped.skipped


def test_gaussian_distances_on_known_cases() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    g = Gaussian(np.array([1.0, 2.0, 3.0]), cov)
    assert frechet_distance(g, g) == pytest.approx(0, abs=1e-9)
    assert gaussian_kl(g, g) == pytest.approx(0, abs=1e-9)
    shift = np.array([3.0, -1.0, 0.5])
    moved = Gaussian(g.mean + shift, cov)
    assert frechet_distance(g, moved) == pytest.approx(shift @ shift)
    assert gaussian_kl(g, moved) == pytest.approx(0.5 * shift @ np.linalg.solve(cov, shift))
    # Isotropic scales: Frechet = d (s1 - s2)^2; 1-D KL has the textbook closed form.
    assert frechet_distance(
        Gaussian(np.zeros(4), np.eye(4)), Gaussian(np.zeros(4), 9 * np.eye(4))
    ) == pytest.approx(16)
    kl = gaussian_kl(
        Gaussian(np.array([1.0]), np.array([[4.0]])), Gaussian(np.array([0.0]), np.array([[1.0]]))
    )
    assert kl == pytest.approx(np.log(1 / 2) + (4 + 1) / 2 - 0.5)
    # Non-commuting 2x2 covariances: tr sqrt(A) = sqrt(tr A + 2 sqrt(det A)) for 2x2 PSD A.
    s1, s2 = np.array([[2.0, 0.6], [0.6, 1.0]]), np.array([[1.0, -0.4], [-0.4, 3.0]])
    trace_root = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert frechet_distance(Gaussian(np.zeros(2), s1), Gaussian(np.zeros(2), s2)) == pytest.approx(expected)
    assert sqrtm_psd(cov) @ sqrtm_psd(cov) == pytest.approx(cov)


def test_fit_gaussian_weights_and_singular_kl() -> None:
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 1.0]])
    weighted = fit_gaussian(x, np.array([2.0, 1.0, 0.0]))
    repeated = fit_gaussian(x[[0, 0, 1]])
    assert weighted.mean == pytest.approx(repeated.mean) and weighted.cov == pytest.approx(repeated.cov)
    assert repeated.cov == pytest.approx(np.cov(x[[0, 0, 1]].T))
    singular = fit_gaussian(x[:2])
    with pytest.raises(ValueError, match="singular"):
        gaussian_kl(singular, singular)
    assert gaussian_kl(fit_gaussian(x[:2], ridge=1e-3), fit_gaussian(x[:2], ridge=1e-3)) == pytest.approx(0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_gaussian(x[:1])


def test_embedding_metric_plugs_into_turnwise() -> None:
    plans = [PLAN, OTHER]
    student, expert = rollouts(group(plans, "student"), "student"), rollouts(group(plans, "expert"), "expert")
    instances = shared_instances(student, expert)
    metric = frechet_metric(hashed_bag_of_words)
    same = turnwise(student, expert, instances, [metric], replicates=20)
    assert all(r.value == pytest.approx(0, abs=1e-9) for r in same.rows)
    expert = rollouts(group([OTHER], "expert"), "expert")
    shifted = turnwise(student, expert, instances, [metric], replicates=20)
    # Turns 0-2 differ; turn 3 is the same submit call in both groups.
    assert all(r.estimate > 0.01 for r in shifted.rows if r.turn < 3)
    # Every instance holds the same rollouts, so replicates agree up to rounding.
    assert all(r.low - 1e-12 <= r.value <= r.high + 1e-12 for r in shifted.rows)
    vectors = hashed_bag_of_words(["pytest -q", "pytest -q", ""])
    assert vectors.shape == (3, 32) and vectors[0] == pytest.approx(vectors[1])
    assert np.linalg.norm(vectors[0]) == pytest.approx(1) and not vectors[2].any()
    bad = frechet_metric(lambda texts: np.zeros((1, 2)))
    with pytest.raises(ValueError, match="frechet_assistant: the embedder returned shape"):
        turnwise(student, expert, instances, [bad], replicates=2)


def test_cli_writes_csv_plots_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mixed = oec_rollouts()
    student = make_store(tmp_path / "oec", [*mixed, rollout("only-student", 0, PLAN, "student", "on_policy")])
    expert = make_store(tmp_path / "bc", group([OTHER, PLAN], "expert", instances=5))
    out = tmp_path / "out"
    code = main(
        [
            "--student",
            str(student),
            "--expert",
            str(expert),
            "--out",
            str(out),
            "--bootstrap",
            "30",
            "--min-samples",
            "4",
            "--embedder",
            "analysis.embedders:hashed_bag_of_words",
        ]
    )
    assert code == 0
    with (out / "turnwise.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    embedding = [f"{m}_{v}" for v in ("assistant", "observation") for m in ("frechet", "gaussian_kl")]
    names = ("action_jsd", "format_error_rate", "repeat_rate", *embedding)
    assert {(r["turn"], r["metric"]) for r in rows} == {(t, m) for t in "01" for m in names}
    with (out / "skipped_turns.csv").open() as f:
        assert [r["turn"] for r in csv.DictReader(f)] == ["2", "3"]
    for name in names:
        assert (out / f"{name}.all_turns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"]["student"]["tasks_left_out"] == ["only-student"]
    assert summary["groups"]["expert"]["rollouts"] == 10 and len(summary["shared_tasks"]) == 5
    assert "turn-wise covariate shift over 5 shared tasks" in capsys.readouterr().out


def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expert = make_store(tmp_path / "bc", group([PLAN], "expert", instances=2))
    empty = make_store(tmp_path / "empty", [])
    elsewhere = make_store(tmp_path / "elsewhere", [rollout("other-task", 0, PLAN, "student")])
    cases = {
        str(tmp_path / "missing"): "no trajectory store at",
        str(empty): f"student group: store {empty} holds no trajectories",
        str(
            elsewhere
        ): "no shared tasks: the student group has other-task; the expert group has task-0, task-1",
        str(expert): "student group: no student-authored turns",
    }
    for store, message in cases.items():
        assert main(["--student", store, "--expert", str(expert), "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    assert (
        main(
            [
                "--student",
                str(expert),
                "--student-author",
                "expert",
                "--expert",
                str(expert),
                "--out",
                str(tmp_path / "o"),
                "--min-samples",
                "3",
            ]
        )
        == 2
    )
    assert "no turn has at least 3 records in both groups" in capsys.readouterr().err
    with pytest.raises(ValueError, match="expected 'module:attribute'"):
        load_embedder("analysis.embedders")
    with pytest.raises(AnalysisError, match="expert group: no store given"):
        load_group(GroupSpec("expert", (), "expert"))
    with pytest.raises(AnalysisError, match="max_per_instance: must be >= 1"):
        load_group(GroupSpec("expert", (expert,), "expert"), max_per_instance=-1)
    assert (
        main(
            [
                "--student",
                str(expert),
                "--student-author",
                "expert",
                "--expert",
                str(expert),
                "--out",
                str(tmp_path / "o"),
                "--max-turn",
                "-1",
            ]
        )
        == 2
    )
    assert "max_turn: must be >= 0" in capsys.readouterr().err
