"""The agent loop: one episode of a policy acting in a sandbox through tools.

The loop is deliberately small and knows nothing about OEC: a ``SwitchingPolicy`` decides who
speaks, and every reply carries its author (and, in DAgger rollouts, the expert's label, which is
recorded on the message and counted in the spend and token counts, never executed). An episode ends
by an :class:`EpisodeEnd` carrying its exit status: ``submitted``, ``call_limit`` (per author, like
the reference's per-model limit), ``context_limit``, ``format_errors`` (too many consecutive
unparseable or invalid calls) or ``wall_time``, ``cost_limit`` (the rollout's calls cost
``max_cost_usd``), ``api_error`` (a model call failed for good; ``Episode.detail`` says why), or
``patch_too_large`` when the submission exceeds ``max_patch_bytes``. Every
environment message records its kind (``observation``, ``format_error`` for a
reply that does not parse as one call, ``invalid_call`` for a call the toolbox rejects), so nothing
downstream re-derives from the text whether a call was malformed. The patch is taken in one place,
when the episode ends, whatever ended it: after ``submit``, and otherwise as SWE-agent's
auto-submission does, so evaluation can grade it. Both respect the same size bound.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated

from oec.agent.actions import FormatError, parse_action
from oec.agent.prompts import Prompts, format_error, observation
from oec.agent.tools import TOOL_DOCS, InvalidToolCall, PatchTooLarge, ToolBox
from oec.config import Above, AtLeast
from oec.policies.base import ContextLimitExceeded, Policy, PolicyCallFailed
from oec.types import CallRetry, EnvKind, ExitStatus, Message, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentLimits:
    """``agent.limits`` config: when an episode ends without a submission."""

    max_calls: Annotated[int, AtLeast(1)] = 75
    """Model calls per model (student and expert separately; reference: 75)."""
    max_consecutive_format_errors: Annotated[int, AtLeast(1)] = 3
    """This many malformed calls in a row end the episode with ``format_errors``."""
    wall_time_s: Annotated[float, Above(0)] = 3600.0
    """Whole-episode budget, checked between model calls."""
    max_patch_bytes: Annotated[int, AtLeast(1)] = 1 << 20
    """Largest submission (1 MiB); a bigger one ends the episode with ``patch_too_large`` and an
    empty patch. SWE-bench gold patches are a few KB (about 30 changed lines on average; the largest
    edits a few thousand lines, a few hundred KB), so 1 MiB keeps every plausible fix while a stray
    build artefact, dataset or core dump is refused in the sandbox before it is hashed, read back
    and stored (a 20 MB random file made a 25.8 M-character patch in 26 s; a 4 GiB one took 49 s and
    4 GB of memory)."""
    max_cost_usd: Annotated[float, Above(0)] | None = 2.0
    """Spend per rollout (reference: $2 per instance): once the rollout's model calls cost this much,
    the episode ends with ``cost_limit`` before the next call. Local models cost 0; null: no cap."""


@dataclass
class Episode:
    messages: list[Message]
    exit_status: ExitStatus
    patch: str
    token_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    detail: str | None = None
    """Why it ended, where the status alone does not say (``api_error``)."""
    failed_call_retries: list[CallRetry] = field(default_factory=list)
    """The failed attempts of a call that never got a reply (``api_error``): no message holds them."""


class EpisodeEnd(Exception):
    def __init__(
        self, status: ExitStatus, detail: str | None = None, retries: tuple[CallRetry, ...] = ()
    ) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail
        self.retries = retries


def run_episode(
    task: Task,
    policy: Policy,
    tools: ToolBox,
    prompts: Prompts,
    limits: AgentLimits,
) -> Episode:
    """Run ``policy`` on ``task`` until an exit condition; the sandbox behind ``tools`` is kept.

    One counter numbers the model calls: ``turn``, 0-based over the whole rollout whoever makes the
    call, is passed to the policy and stamped on the call's messages; ``calls`` only tallies each
    author's calls for the per-author call limit.
    """
    messages = [
        Message("system", prompts.render_student_system(TOOL_DOCS), "system", -1),
        Message("user", prompts.render_task(task.problem_statement), "user", -1),
    ]
    turn = 0
    calls: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    consecutive_errors = 0
    cost_usd = 0.0
    start = time.monotonic()
    try:
        while True:
            if time.monotonic() - start > limits.wall_time_s:
                raise EpisodeEnd("wall_time")
            if limits.max_cost_usd is not None and cost_usd >= limits.max_cost_usd:
                raise EpisodeEnd("cost_limit", f"spent ${cost_usd:.4f} of ${limits.max_cost_usd:g}")
            try:
                reply = policy.act(messages, turn)
            except ContextLimitExceeded as exc:
                raise EpisodeEnd("context_limit") from exc
            except PolicyCallFailed as exc:
                raise EpisodeEnd("api_error", f"model call {turn}: {exc}", exc.retries) from exc
            calls[reply.author] += 1
            usage = reply.usage
            spent = [(reply.author, usage)]
            if reply.label is not None and reply.label.usage is not None:
                spent.append((reply.label.author, reply.label.usage))
            for author, call_usage in spent:
                cost_usd += call_usage.cost_usd
                tokens[f"{author}_prompt"] += call_usage.prompt_tokens
                tokens[f"{author}_completion"] += call_usage.completion_tokens
                if call_usage.cache_read_tokens or call_usage.cache_write_tokens:
                    tokens[f"{author}_cache_read"] += call_usage.cache_read_tokens
                    tokens[f"{author}_cache_write"] += call_usage.cache_write_tokens
            messages.append(
                Message(
                    "assistant",
                    reply.content,
                    reply.author,
                    turn,
                    usage=usage,
                    raw=reply.raw,
                    retries=reply.retries,
                    label=reply.label,
                )
            )
            try:
                result = tools.execute(parse_action(reply.content).call)
            except FormatError as exc:
                # InvalidToolCall is a FormatError too: the call parsed but the toolbox rejected it.
                kind: EnvKind = "invalid_call" if isinstance(exc, InvalidToolCall) else "format_error"
                consecutive_errors += 1
                messages.append(Message("user", format_error(str(exc)), "env", turn, kind))
                if consecutive_errors >= limits.max_consecutive_format_errors:
                    raise EpisodeEnd("format_errors") from exc
            else:
                consecutive_errors = 0
                if result.submitted:
                    raise EpisodeEnd("submitted")
                messages.append(Message("user", observation(result.observation), "env", turn, "observation"))
            if calls[reply.author] >= limits.max_calls:
                raise EpisodeEnd("call_limit")
            turn += 1
    except EpisodeEnd as end:
        status: ExitStatus = end.status
        detail, failed_call_retries = end.detail, list(end.retries)
    try:
        patch = tools.current_patch(limits.max_patch_bytes)
    except PatchTooLarge as exc:
        log.warning("%s: %s (episode ended as %s); the patch is dropped", task.instance_id, exc, status)
        status, patch = "patch_too_large", ""
    seconds = time.monotonic() - start
    return Episode(messages, status, patch, dict(tokens), seconds, detail, failed_call_retries)
