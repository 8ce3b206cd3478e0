"""``python -m oec.store import``: SWE-agent ``.traj`` and mini-swe-agent trajectories, read from the
real files in ../shared/fixtures (MIT-licensed, see their LICENSE files), become stored trajectories
that render with the student's template and keep every assistant turn's action."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from oec.agent.actions import ToolCall, parse_action
from oec.data.render import RenderError, render
from oec.interop import minisweagent, openhands, sweagent, swesmith
from oec.interop.convert import ImportOptions, Skip, Source, to_trajectory
from oec.store import load_manifest, main, read_trajectories
from oec.types import Trajectory, Verdict

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
"""The public fixtures live outside the checkout, in ../shared/fixtures."""
SWE_AGENT = FIXTURES / "sweagent"
FUNCTION_CALLING = SWE_AGENT / "marshmallow-code__marshmallow-1867.function_calling.traj"
OLD_HISTORY = SWE_AGENT / "swe-agent__test-repo-i1.traj"
MINI = FIXTURES / "minisweagent" / "local.traj.json"


def fixture(path: Path) -> Path:
    """``path``; skips the calling test when the fixtures are absent."""
    if not path.exists():
        pytest.skip(f"the fixture {path} is absent (it comes with ../shared, beside the checkout)")
    return path


def imported(tmp_path: Path, *args: str) -> list[Trajectory]:
    out = tmp_path / "store"
    assert main(["import", "--out", str(out), *args]) == 0
    return list(read_trajectories(out))


def actions(trajectory: Trajectory) -> list:
    return [parse_action(m.content) for m in trajectory.messages if m.role == "assistant"]


# --------------------------------------------------------------------------- SWE-agent


@pytest.mark.parametrize(
    ("path", "reason"),
    [(FUNCTION_CALLING, "unmappable_tool:create"), (OLD_HISTORY, "unmappable_tool:find_file")],
)
def test_swe_agent_windowed_editor_calls_skip_the_file_by_default(path, reason):
    with pytest.raises(Skip) as skip:
        sweagent.read(fixture(path), ImportOptions())
    assert skip.value.reason == reason


def test_swe_agent_fixtures_import_with_every_action_patch_and_exit_status(tmp_path, tokenizer, capsys):
    fixture(SWE_AGENT)
    stored = imported(tmp_path, "--format", "swe-agent", "--foreign-tools-as-bash", str(SWE_AGENT))
    assert "imported" in capsys.readouterr().out
    by_id = {t.instance_id: t for t in stored}
    assert sorted(by_id) == ["marshmallow-code__marshmallow-1867", "swe-agent__test-repo-i1"]
    assert sorted(t.sample_index for t in stored) == [0, 1]
    for path, instance_id, model in [
        (FUNCTION_CALLING, "marshmallow-code__marshmallow-1867", "gpt-4o"),
        (OLD_HISTORY, "swe-agent__test-repo-i1", "unknown"),
    ]:
        data = json.loads(path.read_text())
        trajectory = by_id[instance_id]
        steps = data["trajectory"]
        kept = actions(trajectory)
        assert len(kept) == trajectory.num_turns == len(steps)
        replies = [e for e in data["history"] if e["role"] == "assistant" and not e.get("is_demo")]
        for step, reply, action in zip(steps, replies, kept, strict=True):
            # The conversation's thought (two steps of the function-calling file record a shorter one).
            assert action.thought == reply["thought"].strip()
            if step["action"].strip() == "submit":
                assert action.call == ToolCall("submit")
            else:
                assert action.call == ToolCall("bash", {"command": step["action"].strip()})
        observations = [m for m in trajectory.messages if m.author == "env"]
        assert len(observations) == len(steps) - 1  # submit ends the episode without one
        assert all(m.kind == "observation" and m.content.startswith("OBSERVATION:\n") for m in observations)
        assert trajectory.patch == data["info"]["submission"]
        assert trajectory.exit_status == data["info"]["exit_status"] == "submitted"
        assert trajectory.mode == "bc" and trajectory.models == {"expert": model}
        assert trajectory.verdict is None and not trajectory.accepted
        assert trajectory.filter_reasons == ["unverified"]
        assert trajectory.messages[1].content.startswith("<issue>\n")
        for mask in ("expert", "assistant"):
            example = render(trajectory, tokenizer, mask=mask)
            assert len(example.spans) == len(steps) and all(s.supervised for s in example.spans)
    stats = by_id["swe-agent__test-repo-i1"].token_counts
    assert stats == {"expert_prompt": 52861, "expert_completion": 326}


def test_swe_agent_function_calling_keeps_mapped_tool_calls(tmp_path):
    """The function-calling fixture's bash calls are taken from ``tool_calls``, not from ``action``."""
    source = sweagent.read(fixture(FUNCTION_CALLING), ImportOptions(foreign_tools_as_bash=True))
    history = [e for e in json.loads(FUNCTION_CALLING.read_text())["history"] if e["role"] == "assistant"]
    for entry, turn in zip(history, source.turns, strict=True):
        function = entry["tool_calls"][0]["function"]
        if function["name"] == "bash":
            assert turn.action.call == ToolCall("bash", json.loads(function["arguments"]))


def _content_only(data: dict, wrap) -> dict:
    """``data`` as the oldest SWE-agent files store it: the command only inside the message text."""
    data = copy.deepcopy(data)
    for entry in data["history"]:
        if entry["role"] == "assistant" and not entry.get("is_demo"):
            entry["content"] = entry.pop("thought") + wrap(entry.pop("action"))
    return data


@pytest.mark.parametrize(
    "wrap",
    [lambda a: f"```\n{a}```\n", lambda a: f"<command>\n{a}</command>\n"],
    ids=["fenced", "xml"],
)
def test_swe_agent_command_in_the_message_text(tmp_path, wrap):
    """Without ``action`` fields, the command is read from the fenced block or the XML ``<command>``."""
    options = ImportOptions(foreign_tools_as_bash=True)
    derived = tmp_path / OLD_HISTORY.name
    derived.write_text(json.dumps(_content_only(json.loads(fixture(OLD_HISTORY).read_text()), wrap)))
    assert sweagent.read(derived, options).turns == sweagent.read(OLD_HISTORY, options).turns


def test_swe_agent_editor_command_line_maps_to_our_editor(tmp_path):
    """A thought-action ``str_replace_editor`` command line becomes our editor call, flags split as a
    shell would; ``submit`` and other command lines become ``submit`` and ``bash``."""
    data = json.loads(fixture(OLD_HISTORY).read_text())
    replies = [e for e in data["history"] if e["role"] == "assistant" and not e.get("is_demo")]
    replies[0]["action"] = "grep -rl missing_colon .\n"
    replies[1]["action"] = "str_replace_editor view tests/missing_colon.py --view_range '[1, 5]'\n"
    replies[2]["action"] = (
        "str_replace_editor str_replace tests/missing_colon.py --old_str '-> float\n' --new_str '-> float:\n'"
    )
    derived = tmp_path / OLD_HISTORY.name
    derived.write_text(json.dumps(data))
    calls = [turn.action.call for turn in sweagent.read(derived, ImportOptions()).turns]
    assert calls == [
        ToolCall("bash", {"command": "grep -rl missing_colon ."}),
        ToolCall(
            "str_replace_editor",
            {"command": "view", "path": "tests/missing_colon.py", "view_range": "[1, 5]"},
        ),
        ToolCall(
            "str_replace_editor",
            {
                "command": "str_replace",
                "path": "tests/missing_colon.py",
                "old_str": "-> float\n",
                "new_str": "-> float:\n",
            },
        ),
        ToolCall("bash", {"command": "python tests/missing_colon.py"}),
        ToolCall("submit"),
    ]


# --------------------------------------------------------------------------- mini-swe-agent


def test_mini_swe_agent_fixture_imports(tmp_path, tokenizer):
    messages = json.loads(fixture(MINI).read_text())
    (trajectory,) = imported(tmp_path, "--format", "mini-swe-agent", str(MINI))
    kept = actions(trajectory)
    assert len(kept) == sum(m["role"] == "assistant" for m in messages) == 2
    assert kept[0].call == ToolCall("bash", {"command": "echo 'hello world'"})
    assert kept[0].thought == "Here be some dummy command:"
    assert kept[1].call == ToolCall("submit")
    assert trajectory.messages[3].content == "OBSERVATION:\nhello world\n"
    assert trajectory.instance_id == "local" and trajectory.messages[1].content.startswith("<issue>\nBlah")
    assert trajectory.exit_status == "submitted"
    assert trajectory.patch == messages[-1]["content"] == ""
    assert render(trajectory, tokenizer, mask="expert").num_supervised > 0


def _v2(messages: list[dict]) -> list[dict]:
    """The fixture's conversation with v2 tool calls: the command in a ``bash`` call, tool replies."""
    converted = []
    for message in messages[:2]:
        converted.append(message)
    for message in messages[2:]:
        if message["role"] == "assistant":
            thought, command = re.fullmatch(
                r"(.*?)```mswea_bash_command\n(.*)\n```", message["content"], re.S
            ).groups()
            call = {
                "type": "function",
                "id": "c",
                "function": {"name": "bash", "arguments": json.dumps({"command": command})},
            }
            converted.append({"role": "assistant", "content": thought, "tool_calls": [call]})
        else:
            converted.append({"role": "tool", "tool_call_id": "c", "content": message["content"]})
    return converted


def test_mini_swe_agent_v2_tool_calls_and_info(tmp_path):
    """v2 tool calls read as the v1 blocks do; ``info`` gives the exit status, patch and model."""
    messages = json.loads(fixture(MINI).read_text())
    patch = "diff --git a/x b/x\n"
    document = {
        "info": {"exit_status": "Submitted", "submission": patch, "config": {"model": {"model_name": "m"}}},
        "messages": _v2(messages),
    }
    path = tmp_path / "one.traj.json"
    path.write_text(json.dumps(document))
    v2 = minisweagent.read(path, ImportOptions())
    v1 = minisweagent.read(MINI, ImportOptions())
    assert v2.turns == v1.turns
    assert (v2.instance_id, v2.exit_status, v2.patch, v2.model) == ("one", "submitted", patch, "m")


def test_mini_swe_agent_run_ended_by_the_call_limit(tmp_path):
    """The exception message that ends a run after an observation is not a turn; no submit call."""
    messages = json.loads(fixture(MINI).read_text())
    document = {
        "info": {"exit_status": "LimitsExceeded", "submission": ""},
        "messages": [*messages[:4], {"role": "user", "content": ""}],
    }
    path = tmp_path / "limit.traj.json"
    path.write_text(json.dumps(document))
    source = minisweagent.read(path, ImportOptions())
    assert [t.action.call.name for t in source.turns] == ["bash"]
    assert source.turns[0].observation == "hello world\n"
    assert (source.exit_status, source.patch) == ("call_limit", "")
    assert to_trajectory(source, ImportOptions(accept_unknown=True), 0).filter_reasons == [
        "exit_status:call_limit"
    ]


def test_mini_swe_agent_reply_without_one_command_skips_the_file(tmp_path):
    messages = json.loads(fixture(MINI).read_text())
    messages[2]["content"] += "\n\n```mswea_bash_command\nls\n```"
    path = tmp_path / "two_blocks.traj.json"
    path.write_text(json.dumps(messages))
    with pytest.raises(Skip) as skip:
        minisweagent.read(path, ImportOptions())
    assert skip.value.reason == "malformed_turn"


# --------------------------------------------------------------------------- options and provenance


def test_student_author_and_accept_unknown(tmp_path, tokenizer):
    source = minisweagent.read(fixture(MINI), ImportOptions())
    student = to_trajectory(source, ImportOptions(author="student", accept_unknown=True), 0)
    assert student.mode == "on_policy" and student.models == {"student": "unknown"}
    assert student.accepted and student.filter_reasons == [] and student.verdict is None
    with pytest.raises(RenderError) as refused:
        render(student, tokenizer, mask="expert")
    assert refused.value.reason == "no_supervised"
    assert render(student, tokenizer, mask="assistant").num_supervised > 0


def test_store_records_the_import_and_a_second_import_finds_the_pairs(tmp_path, capsys):
    out = tmp_path / "store"
    args = ["import", "--format", "mini-swe-agent", "--out", str(out), str(fixture(MINI).parent)]
    assert main(args) == 0
    config = load_manifest(out)["config"]["import"]
    assert config["format"] == "mini-swe-agent" and config["author"] == "expert"
    assert config["sources"][0]["path"] == str(MINI)
    assert len(config["sources"][0]["sha256"]) == 64
    capsys.readouterr()
    assert main(args) == 0
    assert "already_stored" in capsys.readouterr().out
    assert len(list(read_trajectories(out))) == 1
    assert main([*args, "--accept-unknown"]) == 2
    assert "differs from the store's" in capsys.readouterr().err
    assert main(["import", "--format", "swe-agent", "--out", str(tmp_path / "x"), str(tmp_path / "no")]) == 2


# --------------------------------------------------------------------------- SWE-smith rows
# No SWE-smith trajectory file is in ../shared/fixtures (only a report and test output of one
# instance), so the rows below are built from the documented layout of the Hugging Face dataset
# SWE-bench/SWE-smith-trajectories: ``messages`` a JSON string of SWE-agent's chat messages (``tool``
# format: OpenAI tool calls; ``xml`` format: ``<function=...>`` blocks in the reply text).

SMITH_ID = "getmoto__moto.694ce1f4.pr_7331"
SMITH_SYSTEM = "You are a helpful assistant that can interact with a computer to solve tasks."
SMITH_TASK = (
    "<uploaded_files>\n/testbed\n</uploaded_files>\nI've uploaded a python code repository in the "
    "directory /testbed. Consider the following PR description:\n\n<pr_description>\n{issue}\n"
    "</pr_description>\n\nCan you help me implement the necessary changes to the repository so that "
    "the requirements specified in the <pr_description> are met?"
)
SMITH_CALLS = [
    (
        "Let me find where the region is read.",
        "bash",
        {"command": "grep -rn 'region_name' /testbed/moto/core/models.py"},
    ),
    (
        "The default region is wrong; fix it.",
        "str_replace_editor",
        {
            "command": "str_replace",
            "path": "/testbed/moto/core/models.py",
            "old_str": 'region = "us-west-1"',
            "new_str": 'region = "us-east-1"',
        },
    ),
    ("The change is made; submitting.", "submit", {}),
]
SMITH_OBSERVATIONS = [
    'OBSERVATION:\n12:        region = "us-west-1"\n',
    "OBSERVATION:\nThe file /testbed/moto/core/models.py has been edited.",
    "OBSERVATION:\ndiff --git a/moto/core/models.py b/moto/core/models.py\n",
]
SMITH_PATCH = "diff --git a/moto/core/models.py b/moto/core/models.py\n"


def smith_messages(fmt: str, instance: str = SMITH_ID, calls=SMITH_CALLS) -> list[dict]:
    """A SWE-smith conversation in the ``tool`` or ``xml`` format."""
    issue = f"The default region of {instance} is wrong."
    messages = [
        {"role": "system", "content": SMITH_SYSTEM, "agent": "main", "message_type": "system_prompt"},
        {
            "role": "user",
            "content": [{"type": "text", "text": SMITH_TASK.format(issue=issue)}],
            "agent": "main",
            "message_type": "observation",
        },
    ]
    for index, ((thought, name, arguments), seen) in enumerate(zip(calls, SMITH_OBSERVATIONS, strict=False)):
        if fmt == "tool":
            call = {
                "id": f"toolu_{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            messages.append(
                {"role": "assistant", "content": thought, "tool_calls": [call], "message_type": "action"}
            )
            messages.append(
                {
                    "role": "tool",
                    "content": [{"type": "text", "text": seen}],
                    "tool_call_ids": [f"toolu_{index}"],
                }
            )
        else:
            parameters = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in arguments.items())
            content = f"{thought}\n\n<function={name}>\n{parameters}</function>"
            messages.append({"role": "assistant", "content": content, "message_type": "action"})
            messages.append({"role": "user", "content": seen, "message_type": "observation"})
    return messages


def smith_row(fmt: str, traj_id: str, resolved: bool, **kwargs) -> dict:
    return {
        "instance_id": kwargs.pop("instance", SMITH_ID),
        "traj_id": traj_id,
        "model": "claude-3-7-sonnet-20250219",
        "resolved": resolved,
        "patch": SMITH_PATCH,
        "messages": json.dumps(smith_messages(fmt, **kwargs)),
    }


SMITH_ROWS = [
    smith_row("tool", f"{SMITH_ID}.b", True),
    smith_row("xml", f"{SMITH_ID}.a", False),
    smith_row(
        "xml", f"{SMITH_ID}.c", True, calls=[("Think first.", "think", {"thought": "hm"}), *SMITH_CALLS[1:]]
    ),
    smith_row("tool", f"{SMITH_ID}.d", False, calls=SMITH_CALLS[:2]),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_swe_smith_rows_in_both_formats(tmp_path, tokenizer, capsys):
    rows = write_jsonl(tmp_path / "rows.jsonl", SMITH_ROWS)
    stored = imported(tmp_path, "--format", "swe-smith", str(rows))
    err = capsys.readouterr().err
    assert f"{rows}:2: skipped: unmappable_tool:think" in err
    assert f"{rows}:3: skipped: no_exit_status" in err
    xml, tool = sorted(stored, key=lambda t: t.sample_index)  # numbered by traj_id: .a, then .b
    assert (xml.sample_index, tool.sample_index) == (0, 1)
    expected = [ToolCall(name, arguments) for _, name, arguments in SMITH_CALLS]
    for trajectory in (xml, tool):
        kept = actions(trajectory)
        assert [a.call for a in kept] == expected
        assert [a.thought for a in kept] == [thought for thought, _, _ in SMITH_CALLS]
        assert trajectory.messages[1].content.startswith(f"<issue>\nThe default region of {SMITH_ID}")
        observations = [m.content for m in trajectory.messages if m.author == "env"]
        assert observations == SMITH_OBSERVATIONS[:2]  # one OBSERVATION line, not two
        assert trajectory.patch == SMITH_PATCH and trajectory.exit_status == "submitted"
        assert trajectory.models == {"expert": "claude-3-7-sonnet-20250219"}
        assert len(render(trajectory, tokenizer, mask="expert").spans) == 3
    assert tool.verdict == Verdict(resolved=True) and tool.verdict.status == "graded"
    assert tool.accepted and tool.filter_reasons == []
    assert xml.verdict == Verdict(resolved=False) and not xml.accepted
    assert xml.filter_reasons == ["unresolved"]


def test_swe_smith_parquet_and_saved_dataset_read_as_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    from oec.interop.convert import Row

    def outcomes(path: Path) -> list[tuple[str, object]]:
        return [
            (row.order, row.outcome if isinstance(row.outcome, Source) else row.outcome.reason)
            for row in swesmith.read(path, ImportOptions())
        ]

    jsonl = outcomes(write_jsonl(tmp_path / "rows.jsonl", SMITH_ROWS))
    pq.write_table(pa.Table.from_pylist(SMITH_ROWS), tmp_path / "rows.parquet")
    assert outcomes(tmp_path / "rows.parquet") == jsonl
    DatasetDict(
        {"tool": Dataset.from_list(SMITH_ROWS[:2]), "xml": Dataset.from_list(SMITH_ROWS[2:])}
    ).save_to_disk(tmp_path / "saved")
    assert outcomes(tmp_path / "saved") == jsonl
    labels = [row.label for row in swesmith.read(tmp_path / "saved", ImportOptions())]
    assert labels[2] == f"{tmp_path / 'saved'}/xml:0"
    assert isinstance(next(swesmith.read(tmp_path / "rows.parquet", ImportOptions())), Row)
    # A folder argument finds the saved dataset as one source, besides the files in it.
    out = tmp_path / "store"
    assert main(["import", "--format", "swe-smith", "--out", str(out), str(tmp_path / "saved")]) == 0
    (source,) = load_manifest(out)["config"]["import"]["sources"]
    assert source["path"] == str(tmp_path / "saved") and len(source["sha256"]) == 64
    assert len(list(read_trajectories(out))) == 2


# --------------------------------------------------------------------------- OpenHands output.jsonl
# No OpenHands output.jsonl is in ../shared/fixtures; the rows below follow the layout of its
# SWE-bench evaluation output (EvalOutput: instance_id, instance, instruction, metadata.llm_config,
# history, llm_completions of {messages, response}, test_result.git_patch, error) and of the
# SWE-Gym trajectory datasets (a top-level ``messages`` list).

OH_ID = "django__django-11099"
OH_ISSUE = "UsernameValidator allows trailing newline in usernames."
OH_INSTRUCTION = (
    "<uploaded_files>\n/workspace/django__django__3.0\n</uploaded_files>\nI've uploaded a python code "
    f"repository in the directory django__django__3.0. Consider the following issue description:\n\n"
    f"<issue_description>\n{OH_ISSUE}\n</issue_description>\n\nCan you help me implement the changes?"
)
OH_PATCH = "diff --git a/django/contrib/auth/validators.py b/django/contrib/auth/validators.py\n"


def oh_call(index: int, name: str, arguments: dict, thought: str = "") -> dict:
    call = {
        "id": f"toolu_{index}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": thought}] if thought else None,
        "tool_calls": [call],
    }


def oh_tool(index: int, text: str) -> dict:
    return {
        "role": "tool",
        "tool_call_id": f"toolu_{index}",
        "name": "x",
        "content": [{"type": "text", "text": text}],
    }


OH_PREFIX = [
    {
        "role": "system",
        "content": [
            {"type": "text", "text": "You are OpenHands agent.", "cache_control": {"type": "ephemeral"}}
        ],
    },
    {"role": "user", "content": [{"type": "text", "text": OH_INSTRUCTION}]},
]
OH_CONVERSATION = [
    *OH_PREFIX,
    oh_call(
        0,
        "execute_bash",
        {
            "command": "grep -n regex django/contrib/auth/validators.py",
            "is_input": "false",
            "security_risk": "LOW",
        },
        "Find the regexes.",
    ),
    oh_tool(0, "9:    regex = r'^[\\w.@+-]+$'\n[The command completed with exit code 0.]"),
    oh_call(
        1,
        "str_replace_editor",
        {
            "command": "view",
            "path": "/workspace/django__django__3.0/django/contrib/auth/validators.py",
            "view_range": [1, 20],
        },
    ),
    oh_tool(1, "Here's the result of running `cat -n`..."),
]
OH_FINISH = oh_call(2, "finish", {"message": "Done."}, "The regexes now use \\A and \\Z.")


def oh_row(instance: str, **fields) -> dict:
    return {
        "instance_id": instance,
        "instance": {"instance_id": instance, "problem_statement": OH_ISSUE},
        "instruction": OH_INSTRUCTION,
        "metadata": {
            "agent_class": "CodeActAgent",
            "llm_config": {"model": "anthropic/claude-3-5-sonnet-20241022"},
        },
        "history": [{"id": 0, "source": "user", "action": "message", "message": OH_INSTRUCTION}],
        "test_result": {"git_patch": OH_PATCH},
        "error": None,
        **fields,
    }


OH_ROWS = [
    # The logged completions: the last one's messages, then its response's message.
    oh_row(
        OH_ID,
        llm_completions=[
            {"messages": OH_PREFIX, "response": {"choices": [{"message": OH_CONVERSATION[2]}]}},
            {"messages": OH_CONVERSATION, "response": {"choices": [{"message": OH_FINISH}]}},
        ],
        report={"resolved": True},
    ),
    # SWE-Gym style: the final messages at the top level; no verdict.
    oh_row(f"{OH_ID}-gym", messages=[*OH_CONVERSATION, OH_FINISH]),
    oh_row("think", messages=[*OH_PREFIX, oh_call(0, "think", {"thought": "hm"}), oh_tool(0, "ok")]),
    oh_row(
        "ipython", messages=[*OH_PREFIX, oh_call(0, "execute_ipython_cell", {"code": "1"}), oh_tool(0, "1")]
    ),
    oh_row("events-only"),
]


def test_openhands_rows_from_the_logged_completions(tmp_path, tokenizer, capsys):
    rows = write_jsonl(tmp_path / "output.jsonl", OH_ROWS)
    stored = {t.instance_id: t for t in imported(tmp_path, "--format", "openhands", str(rows))}
    err = capsys.readouterr().err
    assert f"{rows}:2: skipped: unmappable_tool:think" in err
    assert f"{rows}:3: skipped: unmappable_tool:execute_ipython_cell" in err
    assert f"{rows}:4: skipped: no_completions" in err
    assert sorted(stored) == [OH_ID, f"{OH_ID}-gym"]
    path = "/workspace/django__django__3.0/django/contrib/auth/validators.py"
    for trajectory in stored.values():
        kept = actions(trajectory)
        assert [a.call for a in kept] == [
            ToolCall("bash", {"command": "grep -n regex django/contrib/auth/validators.py"}),
            ToolCall("str_replace_editor", {"command": "view", "path": path, "view_range": "[1, 20]"}),
            ToolCall("submit"),
        ]
        assert [a.thought for a in kept] == ["Find the regexes.", "", "The regexes now use \\A and \\Z."]
        assert trajectory.messages[1].content.startswith(f"<issue>\n{OH_ISSUE}")
        assert trajectory.patch == OH_PATCH and trajectory.exit_status == "submitted"
        assert trajectory.models == {"expert": "anthropic/claude-3-5-sonnet-20241022"}
        assert len(render(trajectory, tokenizer, mask="expert").spans) == 3
    assert stored[OH_ID].verdict == Verdict(resolved=True) and stored[OH_ID].accepted
    assert stored[f"{OH_ID}-gym"].verdict is None and stored[f"{OH_ID}-gym"].filter_reasons == ["unverified"]
    # A foreign tool with a command line is kept as bash only when asked; ``think`` has none.
    options = ImportOptions(foreign_tools_as_bash=True)
    with pytest.raises(Skip) as skip:
        openhands.source(OH_ROWS[2], options)
    assert skip.value.reason == "unmappable_tool:think"
    browse = oh_row(
        "b", messages=[*OH_PREFIX, oh_call(0, "run_shell", {"command": "ls"}), oh_tool(0, ""), OH_FINISH]
    )
    assert openhands.source(browse, options).turns[0].action.call == ToolCall("bash", {"command": "ls"})


# --------------------------------------------------------------------------- mix integration


def test_imported_store_is_a_mix_source(tmp_path, tokenizer):
    """An imported SWE-smith store is read by build_mix like any store: arm ``bc``, accepted only,
    dedupe by instance, per-instance cap, weight, split by instance; the summary names its path."""
    from rich.console import Console

    from oec.config import parse
    from oec.data.config import DataConfig
    from oec.data.mix import build_mix, print_mix_summary

    rows = []
    for i in range(4):
        instance = f"{SMITH_ID}{i}"
        rows += [smith_row("tool", f"{instance}.a", True, instance=instance)]
        rows += [
            smith_row(
                "xml",
                f"{instance}.b",
                True,
                instance=instance,
                calls=[("Look.", *SMITH_CALLS[0][1:]), *SMITH_CALLS[1:]],
            )
        ]
    rows += [smith_row("xml", f"{SMITH_ID}0.c", True, instance=f"{SMITH_ID}0")]  # renders as 0.a does
    rows += [smith_row("tool", f"{SMITH_ID}0.d", False, instance=f"{SMITH_ID}0")]  # not accepted
    store = tmp_path / "smith_bc"
    assert (
        main(
            [
                "import",
                "--format",
                "swe-smith",
                "--out",
                str(store),
                str(write_jsonl(tmp_path / "r.jsonl", rows)),
            ]
        )
        == 0
    )
    source = {"arm": "bc", "store": str(store), "per_instance_cap": 1, "weight": 2.0}
    config = parse(DataConfig, {"sources": [source], "val_fraction": 0.25}, "data")
    train, val, summary = build_mix(config, tokenizer)
    (stats,) = summary.sources
    assert (stats.path, stats.read, stats.not_accepted, stats.duplicates) == (str(store), 10, 1, 1)
    assert (stats.over_instance_cap, stats.selected) == (4, 4)
    assert len({e.instance_id for e in val}) == 1 and len(val) == 1
    assert not {e.instance_id for e in train} & {e.instance_id for e in val}
    assert len(train) == 2 * 3 and {e.arm for e in train} == {"bc"}
    assert summary.metrics()["data/train/bc/examples"] == 6
    console = Console(record=True, width=300)
    print_mix_summary(summary, console)
    assert str(store) in console.export_text()


def test_openhands_mocked_function_calling_reads_the_fncall_messages():
    """With mocked function calling, the logged ``messages`` / ``response`` are in text form; the tool
    calls are in ``fncall_messages`` / ``fncall_response``."""
    text_reply = {"role": "assistant", "content": "<function=finish>\n</function>"}
    completion = {
        "messages": [*OH_PREFIX, {"role": "assistant", "content": "<function=execute_bash>..."}],
        "response": {"choices": [{"message": text_reply}]},
        "fncall_messages": OH_CONVERSATION,
        "fncall_response": {"choices": [{"message": OH_FINISH}]},
    }
    mocked = openhands.source(oh_row("mocked", llm_completions=[completion]), ImportOptions())
    assert mocked.turns == openhands.source(OH_ROWS[0], ImportOptions()).turns
