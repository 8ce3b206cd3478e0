"""The ``anthropic`` policy backend: Claude (or any server speaking the Messages API) as the expert,
calling our tools natively.

Each call sends the conversation in its native form (:mod:`oec.agent.native`: tool-use blocks with
ids, tool results paired with them, the expert's own system prompt as ``system``) with the tools'
JSON schemas, and turns the reply back into the student's XML format; the reply as the API returned
it is kept on the message (``Reply.raw``). Prompt caching: ``cache_control: ephemeral`` marks the
system prompt (the tools before it are cached with it) and the last block of the last two user
turns, three breakpoints of the four the API allows, so each call reads the previous call's prefix
from the cache and writes its own. The SDK's retries are off (``max_retries=0``): every attempt goes
through :func:`oec.policies.retry.call_with_retries`, which records each retry; a reply that stops
with ``refusal`` or carries no text and no tool call is resampled. Usage: ``prompt_tokens`` is the
whole input (uncached + cache read + cache write, as the API reports the three apart), priced with
the ``prices`` table.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlparse

from oec.agent.native import anthropic_tools, from_anthropic_content, to_anthropic
from oec.config import Above, AtLeast, AtMost
from oec.policies.base import Reply
from oec.policies.pricing import Price, price_of
from oec.policies.retry import RetryConfig, call_with_retries
from oec.types import Author, Message, Task, Usage

if TYPE_CHECKING:
    import anthropic

CACHE = {"type": "ephemeral"}
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts of a local server, which accepts any API key."""


@dataclass(frozen=True)
class AnthropicPolicyConfig:
    """The Messages API with native tool calls (the paper's expert: Claude 3.7 Sonnet, temperature 0)."""

    backend: Literal["anthropic"] = "anthropic"
    model: str = "claude-3-7-sonnet-20250219"
    """The model the API serves; also its key in the ``prices`` table."""
    base_url: str | None = None
    """The API's address as the SDK takes it (no ``/v1``); null: Anthropic's own."""
    api_key_env: str = "ANTHROPIC_API_KEY"
    """The environment variable holding the key, checked when the config is read; a local server
    (localhost) accepts any value, or none."""
    name: str | None = None
    """Model name recorded in trajectories; null: ``model``."""
    temperature: Annotated[float, AtLeast(0), AtMost(1)] = 0.0
    max_tokens: Annotated[int, AtLeast(1)] = 4096
    """Longest reply, in tokens."""
    timeout_s: Annotated[float, Above(0)] = 600.0
    """One attempt's time limit; a timed-out attempt is retried."""
    prompt_caching: bool = True
    """Mark the system prompt and the last two user turns with ``cache_control`` (see module doc)."""
    retry: RetryConfig = field(default_factory=RetryConfig)

    def __post_init__(self) -> None:
        local = self.base_url is not None and urlparse(self.base_url).hostname in LOCAL_HOSTS
        if not local and not os.environ.get(self.api_key_env):
            raise ValueError(
                f"api_key_env: the environment variable {self.api_key_env} is not set; export the API "
                f"key for {self.base_url or 'the Anthropic API'} there"
            )

    @property
    def model_name(self) -> str:
        return self.name or self.model


class AnthropicPolicyBuilder:
    """Builds one :class:`AnthropicPolicy` per rollout around a single client (thread-safe, so the
    rollouts in flight share its connection pool)."""

    def __init__(self, config: AnthropicPolicyConfig, author: Author, prices: Mapping[str, Price]) -> None:
        import anthropic

        key = os.environ.get(config.api_key_env) or "local"  # a local server takes any key
        self.config = config
        self.author = author
        self.price = price_of(config.model, prices)
        self.client = anthropic.Anthropic(
            api_key=key, base_url=config.base_url, timeout=config.timeout_s, max_retries=0
        )

    def __call__(self, task: Task, seed: int) -> AnthropicPolicy:
        return AnthropicPolicy(self, random.Random(f"{seed}:{task.instance_id}"))


class AnthropicPolicy:
    """One rollout's expert: stateless but for the backoff jitter, seeded per rollout."""

    native_tools = True
    """It calls the tools natively, so the rollout gives it the native expert prompt."""

    def __init__(self, builder: AnthropicPolicyBuilder, rng: random.Random) -> None:
        self.builder = builder
        self.config = builder.config
        self.author = builder.author
        self.name = builder.config.model_name
        self.rng = rng

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for ``messages``."""
        system, native = to_anthropic(messages)
        system_block: dict[str, Any] = {"type": "text", "text": system}
        if self.config.prompt_caching:
            system_block["cache_control"] = CACHE
            native = _mark_last_user_turns(native, 2)
        return {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": [system_block],
            "messages": native,
            "tools": anthropic_tools(),
            # The 2.x SDK no longer takes `temperature` as an argument; the API reads it from the body.
            "extra_body": {"temperature": self.config.temperature},
        }

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        request = self.request(messages)
        client = self.builder.client
        message, retries = call_with_retries(
            lambda: client.messages.create(**request), self.config.retry, judge=judge, rng=self.rng
        )
        raw = message.model_dump(mode="json")
        content = from_anthropic_content(raw["content"], self.config.model)
        return Reply(content, self.author, self.name, self.usage(message), raw, retries)

    def usage(self, message: anthropic.types.Message) -> Usage:
        reported = message.usage
        cache_read = reported.cache_read_input_tokens or 0
        cache_write = reported.cache_creation_input_tokens or 0
        usage = Usage(
            prompt_tokens=reported.input_tokens + cache_read + cache_write,
            completion_tokens=reported.output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        return dataclasses.replace(usage, cost_usd=self.builder.price.cost(usage))


def judge(message: anthropic.types.Message) -> str | None:
    """``refusal`` or ``empty`` for a reply worth sampling again, else None."""
    if message.stop_reason == "refusal":
        return "refusal"
    blocks = message.content or ()
    useful = any(b.type == "tool_use" or (b.type == "text" and b.text.strip()) for b in blocks)
    return None if useful else "empty"


def _mark_last_user_turns(native: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``native`` with ``cache_control`` on the last block of its last ``count`` user messages."""
    marked = list(native)
    users = [i for i, m in enumerate(native) if m["role"] == "user"][-count:]
    for i in users:
        blocks = list(native[i]["content"])
        blocks[-1] = {**blocks[-1], "cache_control": CACHE}
        marked[i] = {**native[i], "content": blocks}
    return marked
