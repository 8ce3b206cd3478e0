"""SWE-agent ``.traj`` files to :class:`Source`: the ``function_calling``, thought-action and XML
layouts, and the older ``history`` layout (before ``message_type`` and ``replay_config``).

The conversation is read from ``history`` (demonstration entries, ``is_demo``, are left out): each
assistant entry is one model call, and the ``user``/``tool`` entries after it are its observation.
The call is taken, in order of preference, from the entry's ``tool_calls`` (``function_calling``:
tool name and JSON arguments), from a ``<function=NAME><parameter=KEY>...`` block in its content
(``xml_function_calling``), from its ``action`` (the command line every parser records), or from
its content (older files: the last fenced block, or ``<command>...</command>`` of the XML parser).
:func:`conversation` is shared with the SWE-smith rows (:mod:`oec.interop.swesmith`), whose
messages are SWE-agent's.

Tools: ``bash``, ``str_replace_editor`` and ``submit`` map to ours, one to one (a command line
``str_replace_editor view PATH --view_range '[1, 5]'`` is split like a shell would). Any other tool,
named in ``tool_calls`` or, for command lines, documented in the system prompt (SWE-agent's windowed
editor: ``open``, ``goto``, ``create``, ``edit``, ``insert``, ``find_file``, ``search_dir``...), is
a program on SWE-agent's PATH that our sandbox does not have: the file is skipped
(``unmappable_tool:<name>``) unless :attr:`ImportOptions.foreign_tools_as_bash`. Every other command
line is a shell command, hence ``bash``.

Observations are kept as the source shows them (SWE-agent's old prompt lines such as
``(Open file: ...)`` included), inside our observation format.

Outcome: ``info.exit_status`` (:data:`EXIT_STATUSES`; ``submitted (exit_cost)`` is an automatic
submission after the cost limit, so ``call_limit``), ``info.submission`` is the patch, and the model
name comes from ``replay_config.agent.model.name`` (``unknown`` when the file does not name one).
SWE-agent records no test verdict, so the verdict stays unknown.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from oec.agent.actions import Action, ToolCall
from oec.interop.convert import ImportOptions, Skip, Source, Turn, load_json, message_text
from oec.types import ExitStatus

SUFFIXES = (".traj",)
MAPPED_TOOLS = frozenset({"bash", "str_replace_editor", "submit"})
EXIT_STATUSES: dict[str, ExitStatus] = {
    "submitted": "submitted",
    "exit_cost": "call_limit",
    "exit_api_calls": "call_limit",
    "exit_context": "context_limit",
    "exit_format": "format_errors",
    "exit_total_execution_time": "wall_time",
    "exit_command_timeout": "wall_time",
    "exit_error": "error",
    "exit_environment_error": "error",
    "early_exit": "error",
}
"""SWE-agent exit statuses (``submitted (X)`` is read as ``X``) and ours."""

_DOCUMENTED_COMMAND = re.compile(r"^([A-Za-z_][\w-]*):\n\s+docstring:", re.MULTILINE)
_FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
_XML_COMMAND = re.compile(r"<command>(.*?)</command>", re.DOTALL)
_XML_FUNCTION = re.compile(r"<function=([\w-]+)>(.*?)</function>", re.DOTALL)
_XML_PARAMETER = re.compile(r"<parameter=([\w-]+)>(.*?)</parameter>", re.DOTALL)
_ISSUE = re.compile(r"ISSUE:\n(.*?)\n+INSTRUCTIONS:", re.DOTALL)


def _exit_status(info: dict[str, Any]) -> ExitStatus:
    raw = info.get("exit_status")
    if not isinstance(raw, str):
        raise Skip("no_exit_status")
    name = raw.strip()
    wrapped = re.fullmatch(r"submitted \((.+)\)", name)
    status = EXIT_STATUSES.get(wrapped.group(1) if wrapped else name)
    if status is None:
        raise Skip(f"unknown_exit_status:{name}")
    return status


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _foreign(name: str, command_line: str, options: ImportOptions) -> ToolCall:
    """A call of a tool we lack: Skip, or (opted in, when the source recorded one) its command line."""
    if not options.foreign_tools_as_bash or not command_line.strip():
        raise Skip(f"unmappable_tool:{name}")
    return ToolCall("bash", {"command": command_line.strip()})


def _editor_call(command_line: str) -> ToolCall:
    """``str_replace_editor COMMAND PATH [--name value]...`` as our editor call."""
    try:
        words = shlex.split(command_line)
    except ValueError as exc:
        raise Skip("unparseable_action", f"str_replace_editor: {exc}") from exc
    if len(words) < 3 or (len(words) - 3) % 2:
        raise Skip("unparseable_action", f"str_replace_editor: {command_line[:80]!r}")
    arguments = {"command": words[1], "path": words[2]}
    for flag, value in zip(words[3::2], words[4::2], strict=True):
        if not flag.startswith("--"):
            raise Skip("unparseable_action", f"str_replace_editor: {flag!r} is not a --flag")
        arguments[flag[2:]] = value
    return ToolCall("str_replace_editor", arguments)


def _command_line_call(command_line: str, documented: set[str], options: ImportOptions) -> ToolCall:
    """The call a thought-action (or XML) command line makes."""
    stripped = command_line.strip()
    if not stripped:
        raise Skip("empty_action")
    name = stripped.split(maxsplit=1)[0]
    if stripped == "submit":
        return ToolCall("submit")
    if name == "str_replace_editor":
        return _editor_call(stripped)
    if name in documented and name not in MAPPED_TOOLS:
        return _foreign(name, stripped, options)
    return ToolCall("bash", {"command": stripped})


def _named_call(name: str, arguments: dict[str, Any], command_line: str, options: ImportOptions) -> ToolCall:
    """The call of tool ``name`` with ``arguments``; ``command_line`` is what a foreign tool ran."""
    if name not in MAPPED_TOOLS:
        return _foreign(name, command_line, options)
    if name == "submit":
        return ToolCall("submit")
    return ToolCall(name, {key: _stringify(value) for key, value in arguments.items()})


def _tool_call(entry: dict[str, Any], options: ImportOptions) -> ToolCall:
    """The call of a ``function_calling`` entry (exactly one tool call)."""
    calls = entry["tool_calls"]
    if len(calls) != 1:
        raise Skip("multiple_tool_calls", f"{len(calls)} calls in one reply")
    function = calls[0].get("function") or {}
    name = function.get("name")
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise Skip("unparseable_action", f"arguments of {name}: {exc}") from exc
    return _named_call(str(name), arguments, entry.get("action") or "", options)


def _xml_function_call(
    content: str, command_line: str, options: ImportOptions
) -> tuple[str, ToolCall] | None:
    """(thought, call) of a reply in SWE-agent's ``xml_function_calling`` format
    (``<function=NAME><parameter=KEY>VALUE</parameter>...</function>``), or None when it has none.
    A value's first and last newline are the layout's, not the value's."""
    matches = list(_XML_FUNCTION.finditer(content))
    if not matches:
        return None
    if len(matches) > 1:
        raise Skip("multiple_tool_calls", f"{len(matches)} <function=...> blocks in one reply")
    name, body = matches[0].group(1), matches[0].group(2)
    arguments = {
        key: value.removeprefix("\n").removesuffix("\n") for key, value in _XML_PARAMETER.findall(body)
    }
    return content[: matches[0].start()], _named_call(name, arguments, command_line, options)


def _command_in_content(content: str) -> tuple[str, str]:
    """(thought, command line) of an older entry without an ``action`` field."""
    for pattern in (_XML_COMMAND, _FENCED):
        matches = list(pattern.finditer(content))
        if matches:
            last = matches[-1]
            return content[: last.start()], last.group(1)
    raise Skip("no_action", "an assistant message without a command")


def entry_action(entry: dict[str, Any], documented: set[str], options: ImportOptions) -> Action:
    """The action of one assistant entry: from ``tool_calls``, ``action``, or its content (an
    ``xml_function_calling`` block, an XML ``<command>`` or a fenced block)."""
    content = message_text(entry.get("content"))
    command_line = entry.get("action") if isinstance(entry.get("action"), str) else ""
    function_call = None if entry.get("tool_calls") else _xml_function_call(content, command_line, options)
    if function_call is not None:
        thought, call = function_call
    elif entry.get("tool_calls"):
        call = _tool_call(entry, options)
        thought = entry.get("thought", content)
    elif isinstance(entry.get("action"), str):
        call = _command_line_call(entry["action"], documented, options)
        thought = entry.get("thought")
        if thought is None:
            thought = _command_in_content(content)[0]
    else:
        thought, command_line = _command_in_content(content)
        call = _command_line_call(command_line, documented, options)
    return Action(thought=str(thought).strip(), call=call)


def _problem_statement(data: dict[str, Any], prompt: str) -> str:
    replay = data.get("replay_config")
    if isinstance(replay, str):
        try:
            replay = json.loads(replay)
        except json.JSONDecodeError:
            replay = None
    statement = ((replay or {}).get("problem_statement") or {}).get("text")
    if isinstance(statement, str) and statement.strip():
        return statement
    match = _ISSUE.search(prompt)
    if match is None:
        raise Skip("no_problem_statement")
    return match.group(1)


def _instance_id(data: dict[str, Any], path: Path) -> str:
    replay = data.get("replay_config")
    if isinstance(replay, dict):
        instance = (replay.get("problem_statement") or {}).get("id")
        if isinstance(instance, str) and instance:
            return instance
    return path.name.removesuffix(".traj")


def _model(data: dict[str, Any]) -> str:
    replay = data.get("replay_config")
    if isinstance(replay, dict):
        name = ((replay.get("agent") or {}).get("model") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    return "unknown"


def conversation(history: list[dict[str, Any]], options: ImportOptions) -> tuple[str | None, list[Turn]]:
    """The first user message (the task prompt) and the turns of a SWE-agent style message list.

    Each assistant entry is one model call; the ``user``/``tool`` entries after it are its
    observation. Commands documented in the system message are the source agent's own tools.
    """
    system = next((message_text(e.get("content")) for e in history if e.get("role") == "system"), "")
    documented = set(_DOCUMENTED_COMMAND.findall(system))
    turns: list[Turn] = []
    prompt: str | None = None
    action: Action | None = None
    observed: list[str] = []
    for entry in history:
        role = entry.get("role")
        if role == "assistant":
            if action is not None:
                turns.append(Turn(action, "\n".join(observed) if observed else None))
            action, observed = entry_action(entry, documented, options), []
        elif role in ("user", "tool"):
            if action is None:
                prompt = prompt if prompt is not None else message_text(entry.get("content"))
            else:
                observed.append(message_text(entry.get("content")))
    if action is not None:
        turns.append(Turn(action, None if action.call.name == "submit" else "\n".join(observed) or None))
    return prompt, turns


def read(path: Path, options: ImportOptions) -> Source:
    """The :class:`Source` of one SWE-agent ``.traj`` file, or :class:`Skip`."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        raise Skip("not_a_swe_agent_traj", "no 'history' list")
    info = data.get("info") or {}
    history = [e for e in data["history"] if isinstance(e, dict) and not e.get("is_demo")]
    prompt, turns = conversation(history, options)
    submission = info.get("submission")
    stats = info.get("model_stats") or {}
    return Source(
        instance_id=_instance_id(data, path),
        problem_statement=_problem_statement(data, prompt or ""),
        turns=turns,
        exit_status=_exit_status(info),
        patch=submission if isinstance(submission, str) else "",
        model=_model(data),
        token_counts={
            name: int(stats[key])
            for name, key in (("prompt", "tokens_sent"), ("completion", "tokens_received"))
            if isinstance(stats.get(key), int | float)
        },
    )
