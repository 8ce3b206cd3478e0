"""A policy served over the OpenAI chat completions API: vLLM or SGLang serving the student, an open
expert on a second server, or OpenAI itself, through the official ``openai`` SDK.

:class:`OpenAIPolicyBuilder` makes one client per builder, shared by the rollouts on every worker
thread (the SDK's HTTP pool is thread-safe, and many requests in flight let the server batch them),
with the SDK's own retries off: every call goes through :func:`oec.policies.retry.call_with_retries`,
which classifies and records each failed attempt. A reply that is empty, or that the server
filtered (``finish_reason == "content_filter"`` or a ``refusal``), is sampled again.

Either action format shows the conversation as the student sees it (:func:`oec.chat.student_view`:
older observations elided, as the ``hf`` backend shows it):

- ``xml`` (how the student talks): plain chat messages; the reply text is the XML function call,
  stored as is. No tool parser is needed on the server.
- ``native``: the conversation in the Chat Completions tool-calling form and the tools as function
  definitions (:mod:`oec.agent.native`); the reply's first tool call is stored rendered in the XML
  format, and the completion as returned is kept on the message (``raw``) for audit. A vLLM server
  needs ``--enable-auto-tool-choice`` and the model's ``--tool-call-parser``.

Context: before each call the prompt is counted with the student description's tokenizer and chat
template (the count the ``hf`` backend makes; for ``native`` it is the count of the same
conversation in the XML form, an estimate of the server's own rendering of tool calls and
schemas); when it plus ``max_tokens`` exceeds ``max_seq_len`` the call is not made and
:class:`~oec.policies.base.ContextLimitExceeded` ends the episode with ``context_limit``. A server
that still refuses the prompt as too long (its own template or limit differs) ends it the same way
(:func:`oec.policies.retry.classify`).

Usage comes from the response (prompt, completion, and cached prompt tokens as cache reads, which
vLLM reports with ``--enable-prompt-tokens-details``); the cost from the ``prices`` table.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from oec.agent.native import from_openai_message, openai_tools, to_openai
from oec.chat import load_student_tokenizer, student_view
from oec.policies import OpenAIPolicyConfig
from oec.policies.base import ContextLimitExceeded, Reply
from oec.policies.pricing import Price, price_of
from oec.policies.retry import call_with_retries
from oec.student import StudentModel, is_checkpoint_dir
from oec.types import Author, Message, Task, Usage

PLACEHOLDER_KEY = "EMPTY"
"""The key sent to a server that takes none (vLLM's documented placeholder)."""


def api_key(config: OpenAIPolicyConfig) -> str:
    """The key from ``api_key_env``; a placeholder for a server that takes none, or a local one
    without the variable (:class:`OpenAIPolicyConfig` refuses the variable unset for a remote host)."""
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    return key or PLACEHOLDER_KEY


def refused_or_empty(completion: ChatCompletion) -> str | None:
    """The judge of :func:`call_with_retries`: ``refusal`` for a filtered or refused reply, ``empty``
    for one with neither text nor a tool call, else None."""
    if not completion.choices:
        return "empty"
    choice = completion.choices[0]
    if choice.finish_reason == "content_filter" or choice.message.refusal:
        return "refusal"
    if not (choice.message.content or "").strip() and not choice.message.tool_calls:
        return "empty"
    return None


class OpenAIPolicyBuilder:
    """One SDK client and the student's tokenizer, shared by every rollout; ``builder(task, seed)``
    gives a rollout's policy."""

    def __init__(
        self, config: OpenAIPolicyConfig, author: Author, student: StudentModel, prices: Mapping[str, Price]
    ) -> None:
        self.config = config
        self.author = author
        self.student = student
        self.name = config.model_name
        self.price = price_of(config.model, prices)
        self.client = openai.OpenAI(
            base_url=config.base_url, api_key=api_key(config), timeout=config.timeout_s, max_retries=0
        )
        # A served checkpoint folder carries its own tokenizer files (the rule of StudentModel).
        weights = config.model if is_checkpoint_dir(config.model) else None
        self.tokenizer = load_student_tokenizer(student, weights=weights)
        self.tokenizer_lock = threading.Lock()
        """Fast tokenizers raise "Already borrowed" when threads share one mid-call."""

    def __call__(self, task: Task, seed: int) -> OpenAIPolicy:
        return OpenAIPolicy(self, seed)


class OpenAIPolicy:
    """One rollout's calls; ``seed`` (with the call and attempt) seeds sampling when temperature > 0."""

    def __init__(self, builder: OpenAIPolicyBuilder, seed: int) -> None:
        self.builder = builder
        self.seed = seed
        self.name = builder.name
        self.author = builder.author
        self.native_tools = builder.config.action_format == "native"
        """Whether it calls the tools natively (the rollout then gives it the native expert prompt)."""

    def chat(self, shown: Sequence[Message]) -> list[dict[str, str]]:
        """``shown`` as plain chat messages, as the student's template renders them."""
        return [{"role": m.role, "content": m.content} for m in shown]

    def prompt_tokens(self, chat: list[dict[str, str]]) -> int:
        """Tokens of ``chat`` as the student's template renders it, generation prompt included."""
        with self.builder.tokenizer_lock:
            ids = self.builder.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        return len(ids)

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        builder, config = self.builder, self.builder.config
        shown = student_view(messages, builder.student.last_n_observations)
        chat = self.chat(shown)
        counted = self.prompt_tokens(chat)
        limit = builder.student.max_seq_len
        if counted + config.max_tokens > limit:
            raise ContextLimitExceeded(
                f"{self.name}: prompt of {counted} tokens + max_tokens {config.max_tokens} exceeds {limit=}"
            )
        request: dict[str, Any] = {
            "model": config.model,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
        }
        if config.action_format == "native":
            request |= {"messages": to_openai(shown), "tools": openai_tools()}
        else:
            request["messages"] = chat
        attempts = 0

        def call() -> ChatCompletion:
            nonlocal attempts
            attempts += 1
            seed = {}
            if config.temperature > 0:
                seed["seed"] = random.Random(f"{self.seed}:{turn}:{attempts}").randrange(2**31)
            return builder.client.chat.completions.create(**request, **seed)

        completion, retries = call_with_retries(call, config.retry, judge=refused_or_empty)
        usage = self.usage(completion, counted)
        message = completion.choices[0].message
        if config.action_format == "xml":
            return Reply(message.content or "", self.author, self.name, usage, retries=retries)
        content = from_openai_message(message.model_dump(mode="json"), model=self.name)
        raw = completion.model_dump(mode="json", exclude_unset=True)
        return Reply(content, self.author, self.name, usage, raw=raw, retries=retries)

    def usage(self, completion: ChatCompletion, counted: int) -> Usage:
        """Tokens as the server reports them, priced; our own prompt count (and no completion
        tokens) from a server that reports none."""
        reported = completion.usage
        if reported is None:
            usage = Usage(counted, 0)
        else:
            details = reported.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details is not None else 0
            usage = Usage(reported.prompt_tokens, reported.completion_tokens, cache_read_tokens=cached)
        return dataclasses.replace(usage, cost_usd=self.builder.price.cost(usage))
