"""The format bridge at the switch (:mod:`oec.agent.native`): every assistant turn of the oracle's
trajectories on the embedded tasks (real loop, real sandbox) and of the public trajectories in
../shared/fixtures goes XML -> native (Anthropic and OpenAI) -> XML byte-identical, and the native
request rebuilds the conversation it came from.

Differences the bridge makes, by design (none occurs in these trajectories; each is pinned by a test
below): a blank reply is sent as :data:`~oec.agent.native.EMPTY_REPLY` (the Messages API refuses
blank text), and a reply that parses but is not in the renderer's canonical layout (e.g. one newline
between thought and call) comes back canonical, because the native form carries the call, not its
whitespace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.loop import AgentLimits, run_episode
from oec.agent.native import (
    EMPTY_REPLY,
    anthropic_tools,
    from_anthropic_content,
    from_anthropic_request,
    from_openai_message,
    from_openai_request,
    openai_tools,
    to_anthropic,
    to_openai,
)
from oec.agent.prompts import Prompts
from oec.agent.tools import TOOLS, ToolBox
from oec.env import SandboxConfig, make_sandbox
from oec.policies.oracle import OraclePolicy
from oec.policies.scripted import ScriptedPolicy
from oec.store import main as store_main
from oec.store import read_trajectories
from oec.switch import SwitchingPolicy
from oec.tasks import load_tasks
from oec.types import Message, Task

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
FAST_TASKS = ("oec-embedded__cronlite-001",)


def round_trip(messages: Sequence[Message]) -> tuple[int, list[str]]:
    """(assistant turns checked, the turns not byte-identical through either API's form) and checks
    that each native request rebuilds ``messages`` (authors aside: the native form has none)."""
    _, anthropic = to_anthropic(messages)
    openai = to_openai(messages)
    assistants = [m for m in messages if m.role == "assistant"]
    via_anthropic = [from_anthropic_content(m["content"]) for m in anthropic if m["role"] == "assistant"]
    via_openai = [from_openai_message(m) for m in openai if m["role"] == "assistant"]
    different = [
        m.content
        for m, a, o in zip(assistants, via_anthropic, via_openai, strict=True)
        if a != m.content or o != m.content
    ]
    expected = [(m.role, m.content, m.turn, m.kind) for m in messages]
    system, _ = to_anthropic(messages)
    for rebuilt in (from_anthropic_request(system, anthropic), from_openai_request(openai)):
        assert [(m.role, m.content, m.turn, m.kind) for m in rebuilt] == expected
    return len(assistants), different


def oracle_conversations(instance_ids: Sequence[str] | None, tmp_path: Path) -> list[list[Message]]:
    """The oracle's rollout on each embedded task (all 65 when ``instance_ids`` is None), and one
    that takes over from a student whose replies were malformed (a format error, an invalid call)."""
    loaded = load_tasks("embedded", instance_ids=instance_ids, cache_dir=str(tmp_path / "cache"))
    assert not loaded.errors
    env = SandboxConfig(timeout_s=60, parent_dir=str(tmp_path))
    conversations = []
    for index, task in enumerate(loaded.tasks):
        policy = OraclePolicy(task, seed=index)
        if index == 0:
            malformed = ["I will look around.\n<function=bash>", "<function=frobnicate>\n</function>"]
            policy = SwitchingPolicy(ScriptedPolicy(malformed), policy, len(malformed), "expert prompt")
        conversations.append(run(task, policy, env))
    return conversations


def run(task: Task, policy, env: SandboxConfig) -> list[Message]:
    with make_sandbox(env, task) as sandbox:
        return run_episode(task, policy, ToolBox(sandbox, env), Prompts(), AgentLimits(max_calls=60)).messages


def check(conversations: list[list[Message]]) -> int:
    checked = 0
    for messages in conversations:
        turns, different = round_trip(messages)
        assert different == []
        checked += turns
    return checked


def test_oracle_turns_round_trip_on_an_embedded_task(tmp_path: Path) -> None:
    conversations = oracle_conversations(FAST_TASKS, tmp_path)
    kinds = {m.kind for m in conversations[0]}
    assert {"format_error", "invalid_call", "observation"} <= kinds
    checked = check(conversations)
    assert checked >= 5
    print(f"oracle: {checked} assistant turns of {len(conversations)} trajectories, all byte-identical")


@pytest.mark.slow
def test_oracle_turns_round_trip_on_all_65_embedded_tasks(tmp_path: Path) -> None:
    conversations = oracle_conversations(None, tmp_path)
    assert len(conversations) == 65
    checked = check(conversations)
    print(f"oracle: {checked} assistant turns of 65 trajectories, all byte-identical")


def imported(tmp_path: Path, name: str, *args: str) -> list[list[Message]]:
    source = FIXTURES / name
    if not source.exists():
        pytest.skip(f"the fixture {source} is absent (it comes with ../shared, beside the checkout)")
    out = tmp_path / name
    assert store_main(["import", "--out", str(out), *args, str(source)]) == 0
    return [t.messages for t in read_trajectories(out)]


@pytest.mark.slow
def test_imported_fixture_turns_round_trip(tmp_path: Path) -> None:
    conversations = imported(tmp_path, "sweagent", "--format", "swe-agent", "--foreign-tools-as-bash")
    conversations += imported(tmp_path, "minisweagent/local.traj.json", "--format", "mini-swe-agent")
    assert len(conversations) == 3
    print(f"fixtures: {check(conversations)} assistant turns of 3 trajectories, all byte-identical")


# --------------------------------------------------------------------------- the native forms


def conversation(*turns: tuple[str, str, str]) -> list[Message]:
    """A conversation of (reply, answer, kind) turns after a system prompt and a task."""
    messages = [Message("system", "sys", "system", -1), Message("user", "task", "user", -1)]
    for turn, (reply, answer, kind) in enumerate(turns):
        messages.append(Message("assistant", reply, "student", turn))
        messages.append(Message("user", answer, "env", turn, kind))
    return messages


EDIT = render_action(
    Action(
        "Fix it.", ToolCall("str_replace_editor", {"command": "view", "path": "a.py", "view_range": "[1, 5]"})
    )
)


def test_native_forms_pair_calls_with_results_and_keep_errors_as_text() -> None:
    messages = conversation(
        (EDIT, "OBSERVATION:\n1 x = 1", "observation"),
        ("no call here", "FORMAT ERROR: no call", "format_error"),
        ("<function=nope>\n</function>", "FORMAT ERROR: Unknown tool 'nope'.", "invalid_call"),
    )
    system, anthropic = to_anthropic(messages)
    assert system == "sys"
    assert [m["role"] for m in anthropic] == ["user"] + ["assistant", "user"] * 3
    assert anthropic[1]["content"] == [
        {"type": "text", "text": "Fix it."},
        {
            "type": "tool_use",
            "id": "call_0",
            "name": "str_replace_editor",
            "input": {"command": "view", "path": "a.py", "view_range": "[1, 5]"},
        },
    ]
    assert anthropic[2]["content"] == [{"type": "tool_result", "tool_use_id": "call_0", "content": "1 x = 1"}]
    assert anthropic[3]["content"] == [{"type": "text", "text": "no call here"}]
    assert anthropic[4]["content"] == [{"type": "text", "text": "FORMAT ERROR: no call"}]
    assert anthropic[6]["content"][0]["is_error"] is True
    openai = to_openai(messages)
    assert [m["role"] for m in openai] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert json.loads(openai[2]["tool_calls"][0]["function"]["arguments"])["view_range"] == "[1, 5]"
    assert openai[3] == {"role": "tool", "tool_call_id": "call_0", "content": "1 x = 1"}
    assert round_trip(messages) == (3, [])


def test_schemas_come_from_the_tool_declarations() -> None:
    by_name = {t["name"]: t for t in anthropic_tools()}
    assert list(by_name) == [t.name for t in TOOLS]
    editor = by_name["str_replace_editor"]["input_schema"]
    assert editor["required"] == ["command", "path"]
    assert editor["properties"]["view_range"]["type"] == "string"
    assert by_name["submit"]["input_schema"]["properties"] == {}
    assert [t["function"]["parameters"] for t in openai_tools()] == [
        t["input_schema"] for t in by_name.values()
    ]


def test_native_replies_render_in_the_students_format() -> None:
    blocks = [
        {"type": "text", "text": "Let me look.\n"},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "str_replace_editor",
            "input": {"command": "view", "path": "a.py", "view_range": [1, 5], "insert_line": None},
        },
        {"type": "tool_use", "id": "toolu_2", "name": "submit", "input": {}},
    ]
    assert from_anthropic_content(blocks) == EDIT.replace("Fix it.", "Let me look.").replace(
        "[1, 5]", "[1, 5]"
    )
    call = {"id": "c", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    assert from_openai_message({"content": None, "tool_calls": [call]}) == render_action(
        Action("", ToolCall("bash", {"command": "ls"}))
    )
    broken = {**call, "function": {"name": "bash", "arguments": '{"command": "ls"'}}
    assert from_openai_message({"content": "Hm.", "tool_calls": [broken]}) == (
        'Hm.\n\n<function=bash>\n{"command": "ls"\n</function>'
    )
    assert from_openai_message({"content": "just text "}) == "just text "


def test_the_differences_the_bridge_makes() -> None:
    blank = conversation(("  ", "FORMAT ERROR: empty", "format_error"))
    assert to_anthropic(blank)[1][1]["content"] == [{"type": "text", "text": EMPTY_REPLY}]
    loose = "Thought.\n<function=submit>\n</function>"
    _, native = to_anthropic(conversation((loose, "OBSERVATION:\nok", "observation")))
    assert from_anthropic_content(native[1]["content"]) == "Thought.\n\n<function=submit>\n</function>"
