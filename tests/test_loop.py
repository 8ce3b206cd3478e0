"""The agent loop with scripted policies, real tools and a real local sandbox on an embedded task."""

from __future__ import annotations

import pytest

from analysis.turns import FORMAT_ERROR, turn_records
from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.loop import AgentLimits, Episode, run_episode
from oec.agent.prompts import Prompts
from oec.agent.tools import ToolBox
from oec.env import SandboxConfig, make_sandbox
from oec.eval_report import format_valid_rate
from oec.policies.scripted import ScriptedPolicy, ScriptExhausted
from oec.tasks import load_tasks
from oec.types import Task, Trajectory, Verdict, malformed_turns
from oec.verify.filters import FormatErrorFilter

ENV = SandboxConfig(timeout_s=60)


@pytest.fixture(scope="module")
def task() -> Task:
    return load_tasks("embedded", instance_ids=("oec-embedded__ledger-001",)).tasks[0]


def call(name: str, **arguments: str) -> str:
    return render_action(Action("Next step.", ToolCall(name, arguments)))


def episode(task: Task, replies: list[str] | ScriptedPolicy, **limits: int) -> Episode:
    policy = replies if isinstance(replies, ScriptedPolicy) else ScriptedPolicy(replies)
    with make_sandbox(ENV, task) as sandbox:
        return run_episode(task, policy, ToolBox(sandbox, ENV), Prompts(), AgentLimits(**limits))


def stored(task: Task, result: Episode) -> Trajectory:
    """``result`` as the store keeps it, for the readers of stored trajectories."""
    return Trajectory(
        instance_id=task.instance_id,
        sample_index=0,
        mode="on_policy",
        seed=0,
        messages=result.messages,
        models={"student": "scripted"},
        exit_status=result.exit_status,
        patch=result.patch,
        verdict=Verdict(resolved=True),
    )


def test_submit_ends_with_the_working_copy_diff(task: Task) -> None:
    replies = [
        call("bash", command="echo hello > NOTES.txt"),
        call("bash", command="cat NOTES.txt"),
        call("submit"),
    ]
    policy = ScriptedPolicy(replies)
    result = episode(task, policy)
    assert result.exit_status == "submitted"
    assert "+hello" in result.patch and "NOTES.txt" in result.patch
    assert [m.author for m in result.messages] == ["system", "user"] + ["student", "env"] * 2 + ["student"]
    assert [m.turn for m in result.messages if m.role == "assistant"] == [0, 1, 2]
    assert result.messages[5].content == "OBSERVATION:\nhello\n"
    assert policy.calls == [(i, result.messages[: 2 + 2 * i]) for i in range(3)]
    prompt = sum(sum(len(m.content) for m in shown) // 4 for _, shown in policy.calls)
    completion = sum(len(reply) // 4 for reply in replies)
    assert result.token_counts == {"student_prompt": prompt, "student_completion": completion}


def test_consecutive_format_errors_end_the_episode(task: Task) -> None:
    replies = [call("bash", command="true"), "I think I will", "<function=bash>oops</function>", "nothing"]
    result = episode(task, replies, max_consecutive_format_errors=3)
    assert result.exit_status == "format_errors"
    kinds = [m.kind for m in result.messages if m.author == "env"]
    assert kinds == ["observation", "format_error", "format_error", "format_error"]


def test_format_error_streak_resets_after_a_valid_call(task: Task) -> None:
    replies = ["garbage", call("bash", command="true"), "garbage", call("bash", command="true")]
    result = episode(task, replies, max_consecutive_format_errors=2, max_calls=4)
    assert result.exit_status == "call_limit"


def test_call_limit_still_takes_the_patch(task: Task) -> None:
    result = episode(task, [call("bash", command="echo x >> ledger/__init__.py")] * 2, max_calls=2)
    assert result.exit_status == "call_limit"
    assert sum(m.role == "assistant" for m in result.messages) == 2
    assert "ledger/__init__.py" in result.patch


@pytest.mark.parametrize("ending", ["submit", "call_limit"])
def test_an_oversized_patch_ends_the_episode_as_patch_too_large(task: Task, ending: str) -> None:
    """``submit`` and the auto-submission at the episode's end respect the same bound."""
    big = call("bash", command="head -c 3000 /dev/urandom > dump.bin")
    replies = [big, call("submit")] if ending == "submit" else [big, call("bash", command="true")]
    result = episode(task, replies, max_calls=2, max_patch_bytes=2000)
    assert result.exit_status == "patch_too_large"
    assert result.patch == ""
    assert sum(m.role == "assistant" for m in result.messages) == 2


def test_invalid_tool_call_is_a_format_error(task: Task) -> None:
    result = episode(task, [call("rm_rf", path="/"), call("submit")])
    assert result.exit_status == "submitted"
    assert result.messages[3].kind == "invalid_call"
    assert result.messages[3].content.startswith("FORMAT ERROR: Unknown tool")
    assert all(m.kind is None for m in result.messages if m.author != "env")


def test_every_reader_counts_the_malformed_calls_the_loop_recorded(task: Task) -> None:
    replies = [
        call("bash", command="ls"),
        "I will just think out loud.",
        call("rm_rf", path="/"),
        call("bash", command="true"),
        call("submit"),
    ]
    result = episode(task, replies)
    trajectory = stored(task, result)
    assert [m.kind for m in result.messages if m.author == "env"] == [
        "observation",
        "format_error",
        "invalid_call",
        "observation",
    ]
    assert malformed_turns(trajectory.messages) == [1, 2]
    assert format_valid_rate([trajectory]) == 3 / 5
    assert FormatErrorFilter(2)(trajectory) == [] and FormatErrorFilter(1)(trajectory) == ["format_errors"]
    records = turn_records(trajectory, "student")
    assert [r.turn for r in records if r.format_error] == [1, 2]
    assert [r.category for r in records] == ["bash:ls", FORMAT_ERROR, FORMAT_ERROR, "bash:other", "submit"]
    # The environment's answer to each call (the analysis's observation view); submit ends without one.
    answers = [m.content for m in trajectory.messages if m.author == "env"]
    assert [r.observation for r in records] == [*answers, ""]


def test_a_replayed_rollout_reproduces_its_conversation(task: Task) -> None:
    replies = [
        "No call here.",
        call("rm_rf", path="/"),
        call("bash", command="echo fixed >> ledger/__init__.py && tail -n 1 ledger/__init__.py"),
        call("submit"),
    ]
    first = episode(task, replies)
    replay = ScriptedPolicy.replaying(stored(task, first), "student")
    assert (replay.name, replay.author, replay.replies) == ("scripted", "student", replies)
    again = episode(task, replay)
    assert again.messages == first.messages and again.patch == first.patch
    with pytest.raises(ScriptExhausted, match=r"asked for reply 5 \(turn 4\) but the script holds 4"):
        replay.act(again.messages, 4)
    with pytest.raises(ValueError, match="no expert replies"):
        ScriptedPolicy.replaying(stored(task, first), "expert")
