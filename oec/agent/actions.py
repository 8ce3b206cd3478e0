"""The student's action format: SWE-agent-style XML function calls, parsed and rendered.

A model reply is a short thought followed by exactly one call::

    I will look at the failing test first.

    <function=bash>
    <parameter=command>
    python -m pytest tests/test_money.py -q
    </parameter>
    </function>

``render_action`` is the exact inverse of ``parse_action`` for well-formed replies, so scripted
experts and converters write precisely the format the student produces at inference time, and
training renders tool calls in that same format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FUNCTION = re.compile(r"<function=([A-Za-z_][\w-]*)>(.*?)</function>", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([A-Za-z_][\w-]*)>(.*?)</parameter>", re.DOTALL)


class FormatError(ValueError):
    """The reply is not exactly one well-formed function call; the message is shown to the model."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    thought: str
    call: ToolCall


def _strip_one_newline(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def parse_action(text: str) -> Action:
    """Parse a reply into its thought and single tool call, or raise :class:`FormatError`."""
    calls = list(_FUNCTION.finditer(text))
    if not calls:
        if "<function=" in text:
            raise FormatError("Your function call is not closed: end it with </function>.")
        raise FormatError("Your reply contains no function call. Call exactly one tool with <function=NAME>.")
    if len(calls) > 1:
        raise FormatError(
            f"Your reply contains {len(calls)} function calls. Call exactly one tool per reply."
        )
    match = calls[0]
    if text[match.end() :].strip():
        raise FormatError("Your reply continues after </function>. End your reply with the function call.")
    body = match.group(2)
    arguments: dict[str, str] = {}
    for param in _PARAMETER.finditer(body):
        name = param.group(1)
        if name in arguments:
            raise FormatError(f"Parameter '{name}' is given twice.")
        arguments[name] = _strip_one_newline(param.group(2))
    leftover = _PARAMETER.sub("", body).strip()
    if leftover:
        raise FormatError(
            "Text inside <function=...> must be wrapped in <parameter=NAME>...</parameter> tags."
        )
    return Action(thought=text[: match.start()].strip(), call=ToolCall(match.group(1), arguments))


def render_action(action: Action) -> str:
    """Render an action exactly as the student is trained to write it."""
    params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in action.call.arguments.items())
    call = f"<function={action.call.name}>\n{params}</function>"
    return f"{action.thought}\n\n{call}" if action.thought else call
