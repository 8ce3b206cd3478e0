"""The bridge between our XML conversation and the native tool-calling forms of the Anthropic
Messages API and the OpenAI Chat Completions API, both ways.

The student writes SWE-agent XML calls (:mod:`oec.agent.actions`); an API expert calls tools
natively. At the switch the expert sees the conversation in its own form, and its native reply is
stored in the student's form, so training and inference see one format and the native reply is
kept on the message (``Message.raw``) for audit. Choices:

- **Tool schemas** come from the same declarations as the XML docs (:data:`oec.agent.tools.TOOLS`).
  Every parameter is a JSON-schema ``string``, since the XML format carries text only; a native
  reply's non-string value (``insert_line: 3``, ``view_range: [1, 20]``) is written as its JSON text
  (``3``, ``[1, 20]``), which the editor reads as it reads the XML (null values are left out).
- **Assistant turns.** A reply that parses (:func:`oec.agent.actions.parse_action`) becomes one
  tool call with the stable id ``call_<turn>``, its thought a text part before it. A reply that does
  not parse becomes plain assistant text (a blank one :data:`EMPTY_REPLY`, since the Messages API
  refuses empty text), because a tool call it never made cannot be invented for it.
- **Environment answers.** An answer to a tool call becomes its tool result, paired by id: an
  ``observation`` without the ``OBSERVATION:`` prefix (the tool's output as the tool printed it),
  an ``invalid_call`` (the call parsed, the toolbox rejected it) with its error text, flagged
  ``is_error`` for Anthropic (OpenAI has no flag: the text keeps its ``FORMAT ERROR:`` prefix, which
  is how the inverse tells it apart). The answer to a reply that did not parse (``format_error``)
  has no id to pair with, so it is a plain user message. Anthropic's alternation holds because the
  loop alternates assistant replies and answers; tool results travel inside user messages.
- **Native replies.** Text parts are the thought (each stripped, joined by a blank line) and the
  first tool call is the call: that is what the loop executes. Further calls in the same reply are
  not executed; they are reported in a warning and stay in the raw reply. A reply without a tool
  call keeps its text as is, so the loop answers it with a format error. An OpenAI call whose
  ``arguments`` are not a JSON object is rendered with that text as the call's body, which the loop
  answers with a format error as well.

The inverse (:func:`from_anthropic_request`, :func:`from_openai_request`) rebuilds our messages from
a native request, or from a plain-text (XML) chat request, whose user turns after the task are the
environment's answers; the wire-protocol server (:mod:`oec.policies.wire_server`) uses it so that a
scripted policy can act on any conversation. Rebuilt model turns are attributed to ``expert``
(the native form does not say who wrote them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from oec.agent.actions import Action, FormatError, ToolCall, parse_action, render_action
from oec.agent.prompts import FORMAT_ERROR_PREFIX, OBSERVATION_PREFIX
from oec.agent.tools import TOOLS, Tool
from oec.types import EnvKind, Message

log = logging.getLogger(__name__)

EMPTY_REPLY = "(empty reply)"
"""The assistant text sent in place of a blank reply (the Messages API refuses blank text)."""


# --------------------------------------------------------------------------- tool schemas


def input_schema(tool: Tool) -> dict[str, Any]:
    """The JSON schema of ``tool``'s arguments: one string property per parameter."""
    return {
        "type": "object",
        "properties": {p.name: {"type": "string", "description": p.description} for p in tool.parameters},
        "required": [p.name for p in tool.parameters if p.required],
    }


def anthropic_tools() -> list[dict[str, Any]]:
    """The tools as the Messages API takes them (``tools=``)."""
    return [{"name": t.name, "description": t.description, "input_schema": input_schema(t)} for t in TOOLS]


def openai_tools() -> list[dict[str, Any]]:
    """The tools as the Chat Completions API takes them (``tools=``)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": input_schema(t)},
        }
        for t in TOOLS
    ]


def call_id(turn: int) -> str:
    """The stable id of the tool call made at model call ``turn``."""
    return f"call_{turn}"


# --------------------------------------------------------------------------- our messages -> native


def _parsed(content: str) -> Action | None:
    try:
        return parse_action(content)
    except FormatError:
        return None


def _text(content: str) -> str:
    return content if content.strip() else EMPTY_REPLY


def _tool_output(message: Message) -> str:
    """What a tool result carries: an observation's output without our prefix, else the error text."""
    if message.kind == "observation":
        return message.content.removeprefix(OBSERVATION_PREFIX)
    return message.content


def _split(messages: Sequence[Message]) -> tuple[str, Sequence[Message]]:
    if not messages or messages[0].role != "system":
        raise ValueError("a conversation to bridge starts with its system prompt")
    return messages[0].content, messages[1:]


def anthropic_content(content: str, tool_id: str) -> list[dict[str, Any]]:
    """One reply in our format as Messages API content blocks: its thought and its call with id
    ``tool_id``, or one text block when it does not parse."""
    action = _parsed(content)
    if action is None:
        return [{"type": "text", "text": _text(content)}]
    blocks = [{"type": "text", "text": action.thought}] if action.thought else []
    use = {"type": "tool_use", "id": tool_id, "name": action.call.name}
    return [*blocks, {**use, "input": dict(action.call.arguments)}]


def openai_message(content: str, tool_id: str) -> dict[str, Any]:
    """One reply in our format as a Chat Completions assistant message: its thought as ``content``
    and its call with id ``tool_id``, or the text alone when it does not parse."""
    action = _parsed(content)
    if action is None:
        return {"role": "assistant", "content": content}
    function = {"name": action.call.name, "arguments": json.dumps(action.call.arguments)}
    return {
        "role": "assistant",
        "content": action.thought or None,
        "tool_calls": [{"id": tool_id, "type": "function", "function": function}],
    }


def to_anthropic(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """``messages`` as the Messages API takes them: the system prompt and the message list."""
    system, rest = _split(messages)
    native: list[dict[str, Any]] = []
    open_call: str | None = None
    for message in rest:
        if message.role == "assistant":
            open_call = call_id(message.turn) if _parsed(message.content) else None
            blocks = anthropic_content(message.content, open_call or "")
            native.append({"role": "assistant", "content": blocks})
        elif message.author == "env" and open_call is not None:
            result = {"type": "tool_result", "tool_use_id": open_call, "content": _tool_output(message)}
            if message.kind != "observation":
                result["is_error"] = True
            native.append({"role": "user", "content": [result]})
            open_call = None
        else:
            native.append({"role": "user", "content": [{"type": "text", "text": message.content}]})
    return system, native


def to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``messages`` as the Chat Completions API takes them (system prompt first)."""
    system, rest = _split(messages)
    native: list[dict[str, Any]] = [{"role": "system", "content": system}]
    open_call: str | None = None
    for message in rest:
        if message.role == "assistant":
            open_call = call_id(message.turn) if _parsed(message.content) else None
            native.append(openai_message(message.content, open_call or ""))
        elif message.author == "env" and open_call is not None:
            native.append({"role": "tool", "tool_call_id": open_call, "content": _tool_output(message)})
            open_call = None
        else:
            native.append({"role": "user", "content": message.content})
    return native


# --------------------------------------------------------------------------- native replies -> XML


def _argument(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _render(texts: Iterable[str], calls: Sequence[tuple[str, dict[str, Any]]], model: str) -> str:
    texts = list(texts)
    if not calls:
        return "\n\n".join(texts)
    if len(calls) > 1:
        log.warning(
            "%s made %d tool calls in one reply; the first (%s) is executed, the rest are not: %s",
            model,
            len(calls),
            calls[0][0],
            ", ".join(name for name, _ in calls[1:]),
        )
    name, arguments = calls[0]
    thought = "\n\n".join(t.strip() for t in texts if t.strip())
    args = {k: _argument(v) for k, v in arguments.items() if v is not None}
    return render_action(Action(thought, ToolCall(name, args)))


def from_anthropic_content(blocks: Sequence[dict[str, Any]], model: str = "the expert") -> str:
    """An assistant message's content blocks (a Messages API reply's ``content``) in our XML format."""
    texts = [b["text"] for b in blocks if b.get("type") == "text"]
    calls = [(b["name"], dict(b.get("input") or {})) for b in blocks if b.get("type") == "tool_use"]
    return _render(texts, calls, model)


def from_openai_message(message: dict[str, Any], model: str = "the expert") -> str:
    """A Chat Completions assistant message (a reply's ``choices[0].message``) in our XML format."""
    content = message.get("content") or ""
    calls = []
    for call in message.get("tool_calls") or []:
        function = call["function"]
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            body = f"<function={function['name']}>\n{function.get('arguments')}\n</function>"
            return f"{content.strip()}\n\n{body}" if content.strip() else body
        calls.append((function["name"], arguments))
    return _render([content] if content else [], calls, model)


# --------------------------------------------------------------------------- native requests -> ours


class _Rebuilder:
    """Appends rebuilt messages, numbering model calls in order (one assistant message per call)."""

    def __init__(self, system: str) -> None:
        self.messages = [Message("system", system, "system", -1)]
        self.turn = -1

    def user(self, text: str) -> None:
        """The task before the first model call; after it, the environment's answer in plain text:
        an observation when it carries our prefix (the XML form), else the error answering the last
        reply (``invalid_call`` when that reply parses, ``format_error`` when it does not)."""
        if self.turn < 0:
            self.messages.append(Message("user", text, "user", -1))
        elif text.startswith(OBSERVATION_PREFIX):
            self.messages.append(Message("user", text, "env", self.turn, "observation"))
        else:
            parses = _parsed(self.messages[-1].content) is not None
            self.env(text, "invalid_call" if parses else "format_error")

    def assistant(self, content: str) -> None:
        self.turn += 1
        self.messages.append(Message("assistant", content, "expert", self.turn))

    def env(self, text: str, kind: EnvKind) -> None:
        if self.turn < 0:
            raise ValueError("a tool result before any assistant message")
        content = OBSERVATION_PREFIX + text if kind == "observation" else text
        self.messages.append(Message("user", content, "env", self.turn, kind))


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _block_text(content: str | list[dict[str, Any]]) -> str:
    return "".join(b.get("text", "") for b in _blocks(content))


def from_anthropic_request(
    system: str | list[dict[str, Any]], messages: Sequence[dict[str, Any]]
) -> list[Message]:
    """Our messages from a Messages API request's ``system`` and ``messages`` (the inverse of
    :func:`to_anthropic`)."""
    rebuilt = _Rebuilder(_block_text(system))
    for message in messages:
        if message["role"] == "assistant":
            rebuilt.assistant(from_anthropic_content(_blocks(message["content"])))
            continue
        for block in _blocks(message["content"]):
            if block.get("type") == "tool_result":
                kind: EnvKind = "invalid_call" if block.get("is_error") else "observation"
                rebuilt.env(_block_text(block.get("content") or ""), kind)
            else:
                rebuilt.user(block.get("text", ""))
    return rebuilt.messages


def from_openai_request(messages: Sequence[dict[str, Any]]) -> list[Message]:
    """Our messages from a Chat Completions request's ``messages`` (the inverse of :func:`to_openai`)."""
    if not messages or messages[0]["role"] not in ("system", "developer"):
        raise ValueError("messages: the first message must be the system prompt")
    rebuilt = _Rebuilder(_block_text(messages[0]["content"]))
    for message in messages[1:]:
        role = message["role"]
        if role == "assistant":
            rebuilt.assistant(from_openai_message(message))
        elif role == "tool":
            text = _block_text(message["content"])
            rebuilt.env(text, "invalid_call" if text.startswith(FORMAT_ERROR_PREFIX) else "observation")
        else:
            rebuilt.user(_block_text(message["content"]))
    return rebuilt.messages
