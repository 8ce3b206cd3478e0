"""The policy protocol: a conversation in, one assistant reply (with token usage) out.

Every backend satisfies it: the scripted oracle expert, the local transformers policy, and later
OpenAI-compatible (vLLM) and Anthropic clients. A policy is built per rollout by a
:data:`PolicyBuilder` (so per-task state such as the oracle's privileged gold patch stays local to
one episode) while heavy resources such as model weights are loaded once by the builder.
OEC itself is a composing policy (``oec.switch.SwitchingPolicy``); the agent loop never knows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from oec.types import Author, CallRetry, Label, Message, Task, Usage


class ContextLimitExceeded(RuntimeError):
    """The prompt does not fit the policy's context window; the episode ends with ``context_limit``."""


class PolicyCallFailed(RuntimeError):
    """A model call failed for good: its retries ran out, or its error is not worth retrying (bad
    request, authentication). The episode ends with ``api_error``; ``reason`` (one of
    :data:`oec.types.RETRY_REASONS`, or ``auth`` / ``bad_request``) and ``detail`` are recorded."""

    def __init__(self, reason: str, detail: str, retries: tuple[CallRetry, ...] = ()) -> None:
        super().__init__(f"{reason}: {detail}" + (f" (after {len(retries) + 1} attempts)" if retries else ""))
        self.reason = reason
        self.detail = detail
        self.retries = retries


@dataclass(frozen=True)
class Reply:
    """One model call's output: the text in the student's action format, who wrote it, and what it
    cost; ``raw`` is a native-API reply as returned (when ``content`` is its rendering), ``retries``
    the failed attempts before it; ``label`` the expert's unexecuted reply to the same history
    (DAgger relabelling, ``oec.switch.RelabellingPolicy``), which the loop stores on the message."""

    content: str
    author: Author
    model: str
    usage: Usage
    raw: dict[str, Any] | None = None
    retries: tuple[CallRetry, ...] = ()
    label: Label | None = None


class Policy(Protocol):
    name: str
    author: Author

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        """The reply to ``messages`` at model call ``turn``: the loop's 0-based call index, counted
        over the whole rollout whoever makes the call (the ``turn`` the reply's message gets)."""
        ...


PolicyBuilder = Callable[[Task, int], Policy]
"""Builds the policy for one rollout from its task and the rollout seed."""
