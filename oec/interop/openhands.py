"""OpenHands ``output.jsonl`` rows (its SWE-bench evaluation output) to :class:`Source`.

A row's ``history`` holds OpenHands events, not chat turns, so the conversation is read from what the
model was sent and answered: the last entry of ``llm_completions`` (each a dict with the ``messages``
sent and the ``response``, a litellm/OpenAI completion whose first choice's message is the reply; with
OpenHands' mocked function calling, ``fncall_messages`` / ``fncall_response`` hold the tool-call form
and are preferred), its messages followed by that reply; a row without ``llm_completions`` is read
from a top-level ``messages`` list (as the SWE-Gym trajectory datasets store it), else skipped
(``no_completions``).

Each assistant message must carry exactly one native tool call (``multiple_tool_calls``, ``no_action``
otherwise): ``execute_bash`` is our ``bash`` (its ``command``; OpenHands' ``is_input=true`` and ``timeout``
controls of a running process are not ours, so a call that sets them is ``invalid_call``; the
``security_risk`` label newer versions add to every call is dropped),
``str_replace_editor`` is our editor (same commands; a ``view_range`` list becomes its JSON text),
``finish`` is ``submit``. Any other tool (``think``, ``browser``, ``execute_ipython_cell``...) skips
the row (``unmappable_tool:<name>``), unless ``--foreign-tools-as-bash`` and the call carries a
``command`` argument. ``tool`` / ``user`` messages after a call are its observation, kept as shown.

Problem statement: ``instance.problem_statement``, else the ``<issue_description>`` of the first user
message, else that whole message. Patch: ``test_result.git_patch``. Verdict: ``report.resolved`` or
``test_result.report.resolved`` (a joined SWE-bench report), unknown otherwise. Exit status:
``submitted`` when the last call is ``finish``, ``error`` when the row has an ``error``, otherwise the
row is skipped (``no_exit_status``). Model: ``metadata.llm_config.model``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oec.agent.actions import Action, ToolCall
from oec.interop.convert import ImportOptions, Row, Skip, Source, Turn, message_text, read_rows
from oec.types import ExitStatus

SUFFIXES = (".jsonl",)
TOOLS = {"execute_bash": "bash", "str_replace_editor": "str_replace_editor", "finish": "submit"}
"""OpenHands' tool names and ours."""

_ISSUE = re.compile(r"<issue_description>\s*(.*?)\s*</issue_description>", re.DOTALL)


def _conversation(row: dict[str, Any]) -> list[dict[str, Any]]:
    completions = [c for c in row.get("llm_completions") or [] if isinstance(c, dict)]
    if completions:
        last = completions[-1]
        # With mocked function calling, messages / response are the text-format prompt and reply, and
        # fncall_messages / fncall_response what the agent sent and got: its tool calls.
        sent = last.get("fncall_messages") or last.get("messages") or []
        choices = (last.get("fncall_response") or last.get("response") or {}).get("choices") or []
        reply = (choices[0] or {}).get("message") if choices else None
        messages = [*sent, *([reply] if isinstance(reply, dict) else [])]
    elif isinstance(row.get("messages"), list):
        messages = row["messages"]
    else:
        raise Skip("no_completions", "neither 'llm_completions' nor 'messages'")
    if not all(isinstance(m, dict) for m in messages):
        raise Skip("no_completions", "a message that is not an object")
    return messages


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _call(message: dict[str, Any], options: ImportOptions) -> ToolCall:
    calls = message.get("tool_calls") or []
    if not calls:
        raise Skip("no_action", "an assistant message without a tool call")
    if len(calls) != 1:
        raise Skip("multiple_tool_calls", f"{len(calls)} calls in one reply")
    function = calls[0].get("function") or {}
    name, raw = str(function.get("name")), function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise Skip("unparseable_action", f"arguments of {name}: {exc}") from exc
    ours = TOOLS.get(name)
    if ours == "submit":
        return ToolCall("submit")
    if ours is None:
        command = arguments.get("command")
        if options.foreign_tools_as_bash and isinstance(command, str) and command.strip():
            return ToolCall("bash", {"command": command})
        raise Skip(f"unmappable_tool:{name}")
    if arguments.get("is_input") in (False, "false"):
        del arguments["is_input"]  # the default: a new command, not input to a running one
    arguments.pop("security_risk", None)  # the model's risk label, not an argument of the call
    return ToolCall(ours, {key: _stringify(value) for key, value in arguments.items()})


def _problem_statement(row: dict[str, Any], prompt: str) -> str:
    statement = (row.get("instance") or {}).get("problem_statement")
    if isinstance(statement, str) and statement.strip():
        return statement
    match = _ISSUE.search(prompt)
    if match:
        return match.group(1)
    if not prompt.strip():
        raise Skip("no_problem_statement")
    return prompt


def _resolved(row: dict[str, Any]) -> bool | None:
    test_result = row.get("test_result") or {}
    for report in (row.get("report"), test_result.get("report")):
        if isinstance(report, dict) and isinstance(report.get("resolved"), bool):
            return report["resolved"]
    return None


def source(row: dict[str, Any], options: ImportOptions) -> Source:
    """The :class:`Source` of one ``output.jsonl`` row, or :class:`Skip`."""
    instance_id = row.get("instance_id")
    if not isinstance(instance_id, str) or not instance_id:
        raise Skip("no_instance_id")
    turns: list[Turn] = []
    prompt: str | None = None
    action: Action | None = None
    observed: list[str] = []
    for message in _conversation(row):
        role = message.get("role")
        if role == "assistant":
            if action is not None:
                turns.append(Turn(action, "\n".join(observed) if observed else None))
            thought = message_text(message.get("content")).strip()
            action, observed = Action(thought=thought, call=_call(message, options)), []
        elif role in ("user", "tool"):
            text = message_text(message.get("content"))
            if action is None:
                prompt = prompt if prompt is not None else text
            else:
                observed.append(text)
    if action is not None:
        turns.append(Turn(action, None if action.call.name == "submit" else "\n".join(observed) or None))
    status: ExitStatus
    if turns and turns[-1].action.call.name == "submit":
        status = "submitted"
    elif row.get("error"):
        status = "error"
    else:
        raise Skip("no_exit_status", "the last call is not finish and the row records no error")
    patch = (row.get("test_result") or {}).get("git_patch")
    model = ((row.get("metadata") or {}).get("llm_config") or {}).get("model")
    return Source(
        instance_id=instance_id,
        problem_statement=_problem_statement(row, prompt or ""),
        turns=turns,
        exit_status=status,
        patch=patch if isinstance(patch, str) else "",
        model=model if isinstance(model, str) and model else "unknown",
        resolved=_resolved(row),
    )


def read(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Every row of an ``output.jsonl`` file as a :class:`Row` (in file order within an instance)."""
    for label, row in read_rows(path):
        try:
            if isinstance(row, Skip):
                raise row
            yield Row(label, "", source(row, options))
        except Skip as skip:
            yield Row(label, "", skip)
