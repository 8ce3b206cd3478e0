"""DAgger relabelling and intervene-and-return through the real collection path: the demo's config
(``+exp=[demo,dagger]``), the runner and store, the agent loop in real sandboxes, the scripted oracle
as the expert and a scripted student; then the labels as training data, with the real tokenizer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from analysis.token_metrics import student_states
from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.prompts import OBSERVATION_PREFIX
from oec.data.config import DataConfig, SourceConfig
from oec.data.mix import MixError, build_mix
from oec.data.render import END_OF_TURN, render, render_many, training_views
from oec.interop.export import export_store
from oec.policies.base import PolicyBuilder
from oec.policies.oracle import OraclePolicy
from oec.policies.scripted import ScriptedPolicy
from oec.rollout import run_rollout
from oec.runner import RolloutConfig, load_rollout_config, run_rollouts
from oec.store import TrajectoryStore, read_trajectories
from oec.student import StudentModel
from oec.switch import Dagger, Intervene
from oec.tasks import load_from_config
from oec.types import Label, Message, SchemaError, Task, Trajectory
from oec.viewer import page_records

CONF = Path(__file__).resolve().parents[1] / "conf"
TASKS = 3
MARKER = "student-was-here"


def call(name: str, **arguments: str) -> str:
    return render_action(Action("Next step.", ToolCall(name, arguments)))


STUDENT_REPLIES = [
    call("bash", command=f"echo {MARKER}"),
    "I am not sure what to do.",  # a format error: the loop answers it, the expert still labels it
    call("bash", command=f"echo {MARKER} > STUDENT.txt"),
    call("submit"),
]
"""The student's whole episode: a command, a malformed reply, a stray file, submit."""


def scripted_student(task: Task, seed: int) -> ScriptedPolicy:
    return ScriptedPolicy(STUDENT_REPLIES, name="scripted-student")


@dataclasses.dataclass(frozen=True)
class ScriptedStudentConfig(RolloutConfig):
    """The composed rollout config with the scripted student in place of the tiny model."""

    def builders(self) -> dict[str, PolicyBuilder]:
        return {**super().builders(), "student": scripted_student}


def composed(tmp_path: Path, *overrides: str) -> RolloutConfig:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "+exp=[demo,dagger]",
                f"tasks.limit={TASKS}",
                f"env.parent_dir={tmp_path}",
                *overrides,
            ],
        )
    return load_rollout_config(cfg)


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[Path, list[Trajectory], dict[str, Task]]:
    """A DAgger collection of three embedded tasks, read back from its store."""
    sandboxes = tmp_path_factory.mktemp("sandboxes")
    config = composed(sandboxes)
    config = ScriptedStudentConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    tasks = load_from_config(config.tasks).tasks
    root = tmp_path_factory.mktemp("store") / "dagger"
    with TrajectoryStore.open(root, {"test": "dagger"}) as store:
        outcome = run_rollouts(tasks, store, config, 1, 1)
    assert outcome.stored == TASKS
    return (
        root,
        sorted(read_trajectories(root), key=lambda t: t.instance_id),
        {t.instance_id: t for t in tasks},
    )


def test_the_demo_composes_with_dagger(tmp_path: Path) -> None:
    config = composed(tmp_path)
    assert isinstance(config.settings.switch, Dagger) and config.settings.switch.mode == "dagger"
    assert list(config.policies) == ["student", "expert"]


def test_every_student_turn_is_labelled_by_the_expert(collected) -> None:
    _, trajectories, _ = collected
    assert len(trajectories) == TASKS
    for trajectory in trajectories:
        assert trajectory.mode == "dagger" and trajectory.exit_status == "submitted"
        assert trajectory.models == {"student": "scripted-student", "expert": "oracle"}
        assert (trajectory.switch_step, trajectory.handover_turn, trajectory.return_turn) == (
            None,
            None,
            None,
        )
        assistant = [m for m in trajectory.messages if m.role == "assistant"]
        assert [m.author for m in assistant] == ["student"] * len(STUDENT_REPLIES)
        assert [m.content for m in assistant] == STUDENT_REPLIES
        assert all(m.label is not None and m.label.author == "expert" for m in assistant)
        assert all(m.label is None for m in trajectory.messages if m.role != "assistant")
        # The labels' calls are accounted as the expert's.
        assert trajectory.token_counts["expert_completion"] > 0


def test_labels_are_the_oracles_actions_at_the_students_states(collected) -> None:
    _, trajectories, tasks = collected
    for trajectory in trajectories:
        for index, message in enumerate(trajectory.messages):
            if message.label is None:
                continue
            fresh = OraclePolicy(tasks[trajectory.instance_id], trajectory.seed)
            expected = fresh.act(trajectory.messages[:index], message.turn).content
            assert message.label.content == expected
            assert message.label.content != message.content


def test_labels_are_never_executed(collected) -> None:
    _, trajectories, _ = collected
    for trajectory in trajectories:
        observations = [m for m in trajectory.messages if m.author == "env"]
        assert observations[0].kind == "observation"
        assert observations[0].content == OBSERVATION_PREFIX + f"{MARKER}\n"
        assert observations[1].kind == "format_error"
        # The sandbox holds the student's doing only: its stray file, and none of the oracle's work.
        assert trajectory.patch.count("+++ b/") == 1 and "+++ b/STUDENT.txt" in trajectory.patch
        assert not trajectory.resolved and not trajectory.accepted


def test_labels_survive_the_store_round_trip(collected) -> None:
    _, trajectories, _ = collected
    for trajectory in trajectories:
        again = Trajectory.from_dict(trajectory.to_dict())
        assert again == trajectory
        data = trajectory.to_dict()
        assert "label" in data["messages"][2] and "label" not in data["messages"][3]


def test_each_labelled_turn_is_one_example_supervising_only_the_label(collected, tokenizer) -> None:
    _, trajectories, _ = collected
    trajectory = trajectories[0]
    labelled = [(i, m) for i, m in enumerate(trajectory.messages) if m.label is not None]
    views = training_views(trajectory, "expert")
    assert len(views) == len(labelled) == len(STUDENT_REPLIES)
    for view, (index, message) in zip(views, labelled, strict=True):
        assert view.messages[:-1] == trajectory.messages[:index]
        assert view.messages[-1] == Message("assistant", message.label.content, "expert", message.turn)
        example = render(view, tokenizer, mask="expert")
        supervised = [s for s in example.spans if s.supervised]
        assert len(supervised) == 1 and supervised[0].message_index == index
        target = example.input_ids[example.loss_mask].tolist()
        assert tokenizer.decode(target, skip_special_tokens=False) == message.label.content + END_OF_TURN
        # The student's earlier turns are context; its reply at this turn is not in the example.
        assert sum(1 for s in example.spans if s.author == "student") == message.turn
        text = tokenizer.decode(example.input_ids.tolist(), skip_special_tokens=False)
        assert message.content not in text.split(END_OF_TURN)[-2]
    # Under the student mask a DAgger rollout is the student's own trajectory, rendered whole.
    (whole,) = render_many([trajectory], tokenizer, mask="student")
    assert [s.author for s in whole.spans if s.supervised] == ["student"] * len(STUDENT_REPLIES)


def test_the_dagger_mix_takes_every_rollout_resolved_or_not(collected, tokenizer) -> None:
    root, trajectories, _ = collected
    source = SourceConfig(arm="dagger", store=str(root))
    mix = build_mix(DataConfig(sources=[source], accepted_only=False, val_fraction=0.0), tokenizer)
    labels = sum(1 for t in trajectories for m in t.messages if m.label is not None)
    assert len(mix.train) + mix.summary.sources[0].duplicates == labels
    assert {e.arm for e in mix.train} == {"dagger"}
    assert all(e.num_supervised > 0 for e in mix.train)
    # With accepted_only the unresolved rollouts select nothing: that is why conf/data/dagger.yaml
    # turns it off.
    with pytest.raises(MixError, match="3 not accepted"):
        build_mix(DataConfig(sources=[source], val_fraction=0.0), tokenizer)


def test_a_label_belongs_on_a_student_assistant_message_only() -> None:
    label = Label("<function=submit>\n</function>")
    with pytest.raises(SchemaError, match="'label' is for student assistant messages only"):
        Message("assistant", "x", "expert", 0, label=label)
    with pytest.raises(SchemaError, match="'label' is for student assistant messages only"):
        Message("user", "x", "env", 0, "observation", label=label)
    with pytest.raises(SchemaError, match="label: field 'author'"):
        Label("x", author="env")
    with pytest.raises(SchemaError, match="label: missing field 'content'"):
        Message.from_dict({"role": "assistant", "content": "x", "author": "student", "turn": 0, "label": {}})


def test_a_schema_4_record_still_loads(collected) -> None:
    _, trajectories, _ = collected
    data = trajectories[0].to_dict()
    data.update(schema_version=4, mode="on_policy")
    del data["return_turn"]
    for message in data["messages"]:
        message.pop("label", None)
    old = Trajectory.from_dict(data)
    assert old.schema_version == 4 and old.return_turn is None
    assert all(m.label is None for m in old.messages)


def test_intervene_hands_back_after_k_expert_turns(tmp_path: Path, tokenizer) -> None:
    config = composed(tmp_path, "switch=intervene", "switch.lo=1", "switch.hi=1", "switch.expert_turns=2")
    switch = config.settings.switch
    assert isinstance(switch, Intervene) and switch.mode == "oec" and switch.expert_turns == 2
    task = load_from_config(config.tasks).tasks[0]
    student = ScriptedPolicy([call("bash", command=f"echo {MARKER}"), call("submit")], name="s")
    shown: list[OraclePolicy] = []

    def oracle(task: Task, seed: int) -> OraclePolicy:
        shown.append(OraclePolicy(task, seed))
        return shown[-1]

    trajectory = run_rollout(task, 0, 7, config.settings, lambda task, seed: student, oracle)
    authors = [m.author for m in trajectory.messages if m.role == "assistant"]
    assert authors == ["student", "expert", "expert", "student"]
    assert (trajectory.switch_step, trajectory.handover_turn, trajectory.return_turn) == (1, 1, 3)
    assert trajectory.mode == "oec" and trajectory.exit_status == "submitted"
    # The student continues with the full history, the expert's turns included.
    assert [turn for turn, _ in student.calls] == [0, 3]
    assert student.calls[1][1] == trajectory.messages[: len(student.calls[1][1])]
    assert [m.author for m in student.calls[1][1] if m.role == "assistant"] == ["student", "expert", "expert"]
    assert shown[0].steps == 2
    assert "return_turn" in trajectory.to_dict() and Trajectory.from_dict(trajectory.to_dict()) == trajectory
    example = render(trajectory, tokenizer, mask="expert")
    assert [(s.author, s.turn) for s in example.spans if s.supervised] == [("expert", 1), ("expert", 2)]


def test_intervene_at_zero_still_builds_the_student(tmp_path: Path) -> None:
    config = composed(tmp_path, "switch=intervene", "switch.lo=0", "switch.hi=0", "switch.expert_turns=1")
    task = load_from_config(config.tasks).tasks[0]
    student = ScriptedPolicy([call("submit")], name="s")
    trajectory = run_rollout(task, 0, 0, config.settings, lambda task, seed: student, OraclePolicy)
    assert [m.author for m in trajectory.messages if m.role == "assistant"] == ["expert", "student"]
    assert (trajectory.handover_turn, trajectory.return_turn) == (0, 1)


@pytest.mark.slow
def test_the_collect_entry_point_runs_dagger_with_the_tiny_student(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "oec.collect", "+exp=[demo,dagger]", "tasks.limit=2",
        f"paths.root={tmp_path}", "collect.num_workers=1",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    trajectories = list(read_trajectories(tmp_path / "stores" / "tiny" / "dagger"))
    assert len(trajectories) == 2 and {t.mode for t in trajectories} == {"dagger"}
    for trajectory in trajectories:
        students = [m for m in trajectory.messages if m.role == "assistant"]
        assert students and all(m.author == "student" and m.label is not None for m in students)


def test_the_viewer_shows_each_label_with_its_own_supervision(collected, tokenizer) -> None:
    _, trajectories, _ = collected
    trajectory = trajectories[0]
    (record,) = page_records(iter([trajectory]), tokenizer, "expert", 2048)
    labelled = [row for row in record["messages"] if "l" in row]
    assert [row["a"] for row in labelled] == ["student"] * len(STUDENT_REPLIES)
    assert [row["l"] for row in labelled] == [m.label.content for m in trajectory.messages if m.label]
    assert not any("s" in row for row in record["messages"])  # the student's replies are not trained
    examples = [render(view, tokenizer, mask="expert") for view in training_views(trajectory, "expert")]
    assert [row["ls"] for row in labelled] == [e.num_supervised for e in examples]
    assert (record["examples"], record["refused"]) == (len(examples), None)
    assert record["supervised"] == sum(e.num_supervised for e in examples)
    assert record["return"] is None


def test_token_metrics_read_the_labels_as_the_experts_actions(collected) -> None:
    _, trajectories, _ = collected
    trajectory = trajectories[0]
    states = list(student_states(trajectory))
    assert [expert.content for _, _, expert in states] == [
        m.label.content for m in trajectory.messages if m.label
    ]


def test_the_export_has_one_row_per_label_as_the_mix(collected, tokenizer, tmp_path: Path) -> None:
    root, trajectories, _ = collected
    student = StudentModel("tiny", "tiny")
    summary = export_store(root, tmp_path / "out", "jsonl", tokenizer, student, mask="expert")
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert (summary.read, summary.exported) == (TASKS, TASKS * len(STUDENT_REPLIES))
    examples = [
        render(v, tokenizer, mask="expert") for t in trajectories for v in training_views(t, "expert")
    ]
    assert sorted(r["input_ids"] for r in rows) == sorted(e.input_ids.tolist() for e in examples)
    for row in rows:
        trained = [m for m in row["messages"] if m["train"]]
        assert len(trained) == 1 and trained[0] == {**row["messages"][-1], "train": True}
        assert trained[0]["author"] == "expert"
