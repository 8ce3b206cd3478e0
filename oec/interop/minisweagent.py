"""mini-swe-agent trajectory JSON (``*.traj.json``) to :class:`Source`: v1 bash blocks and v2 tool calls.

A file is ``{"info": ..., "messages": [...]}`` as mini-swe-agent saves it, or the bare message list
of its older files and tests. Messages after the first ``system`` and ``user`` ones alternate: an
assistant reply, then the observation (``user`` in v1, ``tool`` in v2). v1 replies carry one fenced
block (```` ```bash ```` or ```` ```mswea_bash_command ````), v2 replies one ``bash`` tool call; the
text before the block (v1) or the reply's content (v2) is the thought. A command that starts with
``echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`` (or the older ``MINI_SWE_AGENT_FINAL_OUTPUT``) is
mini-swe-agent's submission, hence our ``submit``; the message after it holds the submitted patch.

A last message after an observation is the message of the exception that ended the run (e.g.
``LimitsExceeded``), not a turn. A reply without exactly one command is a format error the source
answered with a reminder; such a file is skipped (``malformed_turn``) rather than training on a
reply that is not a call.
Observations ``<returncode>N</returncode><output>...</output>`` become what our ``bash`` tool prints
for that output and exit code; any other observation text is kept as it is.

Outcome: ``info.exit_status`` (``Submitted``, ``LimitsExceeded``, ``FormatError``; others are skipped
as ``unknown_exit_status:<name>``) and ``info.submission``; a bare list is ``submitted`` when its
last call submits, with the message after it as the patch. The model name is
``info.config.model.model_name``. mini-swe-agent records no test verdict: the verdict stays unknown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from oec.agent.actions import Action, ToolCall
from oec.interop.convert import (
    ImportOptions,
    Skip,
    Source,
    Turn,
    bash_observation,
    load_json,
    message_text,
)
from oec.types import ExitStatus

SUFFIXES = (".traj.json",)
SUBMIT_MARKERS = ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "echo MINI_SWE_AGENT_FINAL_OUTPUT")
EXIT_STATUSES: dict[str, ExitStatus] = {
    "Submitted": "submitted",
    "LimitsExceeded": "call_limit",
    "FormatError": "format_errors",
}

_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)\s*\n(.*?)\n```", re.DOTALL)
_RESULT = re.compile(r"<returncode>(-?\d+)</returncode>\s*<output>\n?(.*?)</output>\s*", re.DOTALL)
_TASK_PATTERNS = (
    re.compile(
        r"<pr_description>\s*Consider the following PR description:\n(.*?)</pr_description>", re.DOTALL
    ),
    re.compile(r"Please solve this issue: (.*?)\n\nYou can execute bash commands", re.DOTALL),
)


def _bash_call(command: str) -> ToolCall:
    command = command.strip()
    if command.startswith(SUBMIT_MARKERS):
        return ToolCall("submit")
    return ToolCall("bash", {"command": command})


def _action(message: dict[str, Any]) -> Action:
    content = message_text(message.get("content"))
    calls = message.get("tool_calls") or []
    if calls:
        if len(calls) != 1:
            raise Skip("malformed_turn", f"{len(calls)} tool calls in one reply")
        function = calls[0].get("function") or {}
        if function.get("name") != "bash":
            raise Skip(f"unmappable_tool:{function.get('name')}")
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise Skip("unparseable_action", str(exc)) from exc
        if not isinstance(arguments.get("command"), str):
            raise Skip("unparseable_action", "a bash call without a command")
        return Action(thought=content.strip(), call=_bash_call(arguments["command"]))
    blocks = list(_BLOCK.finditer(content))
    if len(blocks) != 1:
        raise Skip("malformed_turn", f"a reply with {len(blocks)} bash blocks")
    return Action(thought=content[: blocks[0].start()].strip(), call=_bash_call(blocks[0].group(1)))


def _observation(text: str) -> str:
    match = _RESULT.fullmatch(text.strip())
    if match is None:
        return text
    return bash_observation(match.group(2), int(match.group(1)))


def _problem_statement(prompt: str) -> str:
    for pattern in _TASK_PATTERNS:
        match = pattern.search(prompt)
        if match:
            return match.group(1).strip()
    raise Skip("no_problem_statement")


def read(path: Path, options: ImportOptions) -> Source:
    """The :class:`Source` of one mini-swe-agent trajectory file, or :class:`Skip`."""
    data = load_json(path)
    info: dict[str, Any] = {}
    if isinstance(data, dict):
        info, data = data.get("info") or {}, data.get("messages")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise Skip("not_a_mini_swe_agent_traj", "no message list")
    roles = [m.get("role") for m in data]
    if roles[:2] != ["system", "user"]:
        raise Skip("not_a_mini_swe_agent_traj", f"starts with {roles[:2]}, not system, user")
    turns: list[Turn] = []
    after_submit: str | None = None
    index = 2
    while index < len(data):
        message = data[index]
        if message.get("role") != "assistant":
            if index == len(data) - 1:
                # The message of the exception that ended the run (e.g. LimitsExceeded), not a turn.
                index += 1
                break
            raise Skip(
                "malformed_turn", f"message {index} is {message.get('role')!r}, not an assistant reply"
            )
        action = _action(message)
        following = data[index + 1] if index + 1 < len(data) else None
        answer = (
            message_text(following.get("content"))
            if following and following.get("role") != "assistant"
            else None
        )
        index += 2 if answer is not None else 1
        if action.call.name == "submit":
            turns.append(Turn(action, None))
            after_submit = answer
            break
        turns.append(Turn(action, None if answer is None else _observation(answer)))
    if index < len(data):
        raise Skip("submit_not_last", f"{len(data) - index} messages after the submission")
    if info:
        raw = info.get("exit_status")
        status = EXIT_STATUSES.get(raw) if isinstance(raw, str) else None
        if status is None:
            raise Skip(f"unknown_exit_status:{raw}")
        submission = info.get("submission")
        patch = submission if isinstance(submission, str) else ""
    elif turns and turns[-1].action.call.name == "submit":
        status, patch = "submitted", after_submit or ""
    else:
        raise Skip("no_exit_status", "a bare message list that does not end with a submission")
    model = ((info.get("config") or {}).get("model") or {}).get("model_name")
    return Source(
        instance_id=path.name.removesuffix(".traj.json").removesuffix(".json"),
        problem_statement=_problem_statement(message_text(data[1].get("content"))),
        turns=turns,
        exit_status=status,
        patch=patch,
        model=model if isinstance(model, str) and model else "unknown",
    )
