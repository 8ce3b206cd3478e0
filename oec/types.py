"""Data contracts shared by every stage: tasks, messages, trajectories and verdicts.

This module is dependency-free on purpose: collection, training, evaluation and analysis all read and
write these records, and any of them must be loadable without importing torch, transformers or Hydra.
Every message records who produced it (``author``) and at which model call it was produced (``turn``);
loss masks are derived from that provenance and never guessed later. An environment message also
records what kind of answer it is (``kind``): the loop knows whether a call was malformed when it
answers it, so readers (switch, filters, evaluation, analysis) read that record through
:func:`malformed_turns` instead of re-deriving it from the prompt text.

Records serialise to plain JSON-compatible dicts (``to_dict``) and are rebuilt with ``from_dict``,
which raises :class:`SchemaError` naming the record and the offending field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

SCHEMA_VERSION = 5
"""Version of the trajectory record layout. 2 added ``Message.kind``; 3 added ``Verdict.status`` and
the exit status ``patch_too_large``; 4 added a model call's record on its assistant message
(``Message.usage``, ``raw``, ``retries``), the exit statuses ``cost_limit`` and ``api_error`` and
``Trajectory.exit_detail``; 5 added the mode ``dagger`` with the expert's label on a student's
assistant message (``Message.label``) and ``Trajectory.return_turn`` (the expert hands back). Older
records load: a version-1 record gets the kind of its
environment messages inferred from their text (see :data:`V1_FORMAT_ERROR_PREFIX`), and a verdict
without a status is ``graded``, as every verdict was before 3. A record keeps its ``schema_version``
as read, so a kind that was inferred, never recorded, stays recognisable. Version 3 exists so that
older code refuses newer records instead of counting a task error as an agent's failure."""

Role = Literal["system", "user", "assistant"]
Author = Literal["system", "user", "env", "student", "expert"]
EnvKind = Literal["observation", "format_error", "invalid_call"]
"""What an environment message answers: a tool's output (``observation``), a reply that is not one
well-formed tool call (``format_error``, ``oec.agent.actions.FormatError``), or a call that parsed
but was rejected, e.g. an unknown tool or bad arguments (``invalid_call``,
``oec.agent.tools.InvalidToolCall``)."""
Mode = Literal["bc", "on_policy", "oec", "dagger"]
"""The data arm a rollout belongs to: ``bc`` (expert only), ``on_policy`` (student only), ``oec``
(student, then expert, possibly handing back) and ``dagger`` (the student acts throughout; at each of
its calls the expert's reply to the same history is stored as a :class:`Label`, never executed)."""
ExitStatus = Literal[
    "submitted",
    "call_limit",
    "context_limit",
    "format_errors",
    "wall_time",
    "error",
    "patch_too_large",
    "cost_limit",
    "api_error",
]
"""How an episode ended (:mod:`oec.agent.loop`). ``patch_too_large``: the submission (by ``submit`` or
at the episode's end) exceeded ``agent.limits.max_patch_bytes``; the stored patch is empty.
``cost_limit``: the rollout's model calls cost ``agent.limits.max_cost_usd`` or more. ``api_error``: a
model call failed for good (retries ran out, or the error is not retryable);
``Trajectory.exit_detail`` names the reason."""
VerdictStatus = Literal["graded", "task_error", "infra_error"]
"""Whether a verdict judges the patch. ``graded``: the tests ran (or the model patch did not apply,
which is the agent's failure). ``task_error``: the task itself could not be verified, e.g. its test
patch does not apply to its base commit. ``infra_error``: the sandbox or container failed (reserved for
the container runtime). A verdict that is not ``graded`` says nothing about the agent: it is never
resolved, never accepted, and resolve rates leave it out of their denominators."""

AUTHORS: tuple[str, ...] = get_args(Author)
ENV_KINDS: tuple[str, ...] = get_args(EnvKind)
MALFORMED_KINDS: frozenset[str] = frozenset({"format_error", "invalid_call"})
"""Kinds of environment answer that mark the call they answer as malformed."""
V1_FORMAT_ERROR_PREFIX = "FORMAT ERROR: "
"""How schema-1 records began the answer to a malformed call (the loop's rendering at the time, which
did not tell unparseable replies from rejected calls); only the upgrade of version-1 records reads it."""
MODES: tuple[str, ...] = get_args(Mode)
EXIT_STATUSES: tuple[str, ...] = get_args(ExitStatus)
VERDICT_STATUSES: tuple[str, ...] = get_args(VerdictStatus)
MODEL_AUTHORS: tuple[str, ...] = ("student", "expert")


class SchemaError(ValueError):
    """A record does not match its contract; the message names the record and the field."""


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object, got {type(data).__name__}")
    if key not in data or data[key] is None:
        raise SchemaError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SchemaError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value


def _str_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        # SWE-bench rows on the hub store test lists as JSON-encoded strings.
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{where}: field '{key}' is not a JSON list: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{where}: field '{key}' must be a list of strings")
    return list(value)


@dataclass(frozen=True)
class Task:
    """A SWE-bench-style instance: a repository at a base commit, an issue, a gold patch and tests.

    ``snapshot`` is a local git repository (or a path a container runtime resolves) that contains
    ``base_commit``; sandboxes clone it. ``FAIL_TO_PASS`` tests must fail before the fix and pass after;
    ``PASS_TO_PASS`` tests must pass on both sides.
    """

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    snapshot: str | None = None
    split: str | None = None
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        where = f"task {data.get('instance_id', '?')!r}" if isinstance(data, dict) else "task"
        instance_id = _require(data, "instance_id", str, "task")
        fail_to_pass = _str_list(data, "FAIL_TO_PASS", where)
        if not fail_to_pass:
            raise SchemaError(f"{where}: field 'FAIL_TO_PASS' is empty")
        return cls(
            instance_id=instance_id,
            repo=_require(data, "repo", str, where),
            base_commit=_require(data, "base_commit", str, where),
            problem_statement=_require(data, "problem_statement", str, where),
            patch=_require(data, "patch", str, where),
            test_patch=_require(data, "test_patch", str, where),
            FAIL_TO_PASS=fail_to_pass,
            PASS_TO_PASS=_str_list(data, "PASS_TO_PASS", where),
            snapshot=data.get("snapshot"),
            split=data.get("split"),
            version=None if data.get("version") is None else str(data["version"]),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Usage:
    """Token accounting of one model call, and what it cost.

    ``prompt_tokens`` counts every input token, cached or not; ``cache_read_tokens`` and
    ``cache_write_tokens`` say how many of them were read from or written to a prompt cache (priced
    apart by Anthropic). ``cost_usd`` is priced by the backend from the ``prices`` table; local
    models cost 0.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        if not isinstance(data, dict):
            raise SchemaError(f"usage: expected an object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SchemaError(f"usage: unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class CallRetry:
    """One failed attempt of a model call, after which the call was tried again.

    ``reason`` is one of :data:`RETRY_REASONS`; ``detail`` is the short error text (e.g. ``HTTP 429``),
    ``wait_s`` the pause before the next attempt (the server's ``retry-after`` when it sent one).
    """

    attempt: int
    reason: str
    detail: str = ""
    wait_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRetry:
        return cls(
            attempt=_require(data, "attempt", int, "retry"),
            reason=_require(data, "reason", str, "retry"),
            detail=str(data.get("detail") or ""),
            wait_s=float(data.get("wait_s") or 0.0),
        )


RETRY_REASONS: tuple[str, ...] = (
    "rate_limit",
    "server_error",
    "timeout",
    "connection",
    "malformed",
    "refusal",
    "empty",
)
"""Why a model call was tried again: HTTP 429, HTTP 5xx, no answer in time, a dropped or refused
connection, a body the SDK could not read, a refused reply, an empty reply (the last two are
resampled rather than retried)."""


@dataclass(frozen=True)
class Label:
    """What the expert would have done at a student's model call (DAgger relabelling): its reply to
    the same history, stored on the student's assistant message and never executed. ``author`` is
    the label's provenance (always the expert today); ``usage`` the labelling call's tokens and cost."""

    content: str
    author: Author = "expert"
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if self.author not in MODEL_AUTHORS:
            raise SchemaError(f"label: field 'author' must be one of {MODEL_AUTHORS}, got {self.author!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"content": self.content, "author": self.author}
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Label:
        return cls(
            content=_require(data, "content", str, "label"),
            author=_require(data, "author", str, "label"),
            usage=None if data.get("usage") is None else Usage.from_dict(data["usage"]),
        )


@dataclass(frozen=True)
class Message:
    """One chat message with its provenance.

    ``role`` is the chat-template role; ``author`` says who produced the text: the system prompt
    (``system``), the task statement (``user``), a tool observation (``env``), or a model
    (``student`` / ``expert``). ``turn`` is the 0-based model-call index the message belongs to:
    an assistant message has the index of the call that produced it, an observation the index of
    the call whose action it answers, and the opening system/user messages have turn -1.
    ``kind`` (:data:`EnvKind`) is set on environment messages and only on those. An assistant message
    may carry the record of the call that produced it: ``usage`` (tokens and cost), ``raw`` (a
    native-API reply as the API returned it, kept for audit when ``content`` is its rendering in the
    student's format) and ``retries`` (the failed attempts before it). A student's assistant message
    in a ``dagger`` rollout carries the expert's ``label`` for that state (and only such a message).
    """

    role: Role
    content: str
    author: Author
    turn: int
    kind: EnvKind | None = None
    usage: Usage | None = None
    raw: dict[str, Any] | None = None
    retries: tuple[CallRetry, ...] = ()
    label: Label | None = None

    def __post_init__(self) -> None:
        if self.author not in AUTHORS:
            raise SchemaError(f"message: unknown author {self.author!r} (expected one of {AUTHORS})")
        if (self.role == "assistant") != (self.author in MODEL_AUTHORS):
            raise SchemaError(
                f"message: role {self.role!r} does not fit author {self.author!r} "
                "(assistant messages come from the student or the expert, and only those)"
            )
        if self.author == "env" and self.kind not in ENV_KINDS:
            raise SchemaError(
                f"message: field 'kind' of an env message must be one of {ENV_KINDS}, got {self.kind!r}"
            )
        if self.author != "env" and self.kind is not None:
            raise SchemaError(
                f"message: field 'kind' is for env messages only, got {self.kind!r} on author {self.author!r}"
            )
        if self.role != "assistant" and (self.usage is not None or self.raw is not None or self.retries):
            raise SchemaError(
                f"message: fields 'usage', 'raw' and 'retries' are for assistant messages only "
                f"(author {self.author!r})"
            )
        if self.label is not None and (self.role != "assistant" or self.author != "student"):
            raise SchemaError(
                f"message: field 'label' is for student assistant messages only (author {self.author!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; a call record's fields appear only when set, so observations stay small."""
        data: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "author": self.author,
            "turn": self.turn,
            "kind": self.kind,
        }
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        if self.raw is not None:
            data["raw"] = self.raw
        if self.retries:
            data["retries"] = [r.to_dict() for r in self.retries]
        if self.label is not None:
            data["label"] = self.label.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(
            role=_require(data, "role", str, "message"),
            content=_require(data, "content", str, "message"),
            author=_require(data, "author", str, "message"),
            turn=_require(data, "turn", int, "message"),
            kind=data.get("kind"),
            usage=None if data.get("usage") is None else Usage.from_dict(data["usage"]),
            raw=data.get("raw"),
            retries=tuple(CallRetry.from_dict(r) for r in data.get("retries") or ()),
            label=None if data.get("label") is None else Label.from_dict(data["label"]),
        )


def _upgrade_v1_message(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 message with the kind of an environment message inferred from its text."""
    if not isinstance(data, dict) or data.get("author") != "env" or data.get("kind") is not None:
        return data
    content = data.get("content")
    malformed = isinstance(content, str) and content.startswith(V1_FORMAT_ERROR_PREFIX)
    return {**data, "kind": "format_error" if malformed else "observation"}


def malformed_turns(messages: Sequence[Message]) -> list[int]:
    """The turns (model-call indices), in order, whose call was malformed: the environment answered
    it with a ``format_error`` or an ``invalid_call``. The one definition every reader uses."""
    return [m.turn for m in messages if m.author == "env" and m.kind in MALFORMED_KINDS]


@dataclass(frozen=True)
class Verdict:
    """Outcome of running a task's tests against a patch, graded with swebench's functions.

    ``tests_status`` follows swebench's report layout:
    ``{"FAIL_TO_PASS": {"success": [...], "failure": [...]}, "PASS_TO_PASS": {...}}``.
    ``error`` is set when grading could not run: the model patch did not apply (``status`` stays
    ``graded``: the agent failed) or the test patch did not apply (``status`` is ``task_error``).
    """

    resolved: bool
    tests_status: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    error: str | None = None
    log: str | None = None
    status: VerdictStatus = "graded"
    """See :data:`VerdictStatus`; records written before schema 3 have none and load as ``graded``."""

    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise SchemaError(
                f"verdict: field 'status' must be one of {VERDICT_STATUSES}, got {self.status!r}"
            )
        if self.resolved and self.status != "graded":
            raise SchemaError(f"verdict: a {self.status} verdict cannot be resolved")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            resolved=_require(data, "resolved", bool, "verdict"),
            tests_status=dict(data.get("tests_status") or {}),
            error=data.get("error"),
            log=data.get("log"),
            status=data.get("status", "graded"),
        )


@dataclass
class Trajectory:
    """One finished rollout: the full conversation with provenance, its outcome and its bookkeeping.

    ``switch_step`` is the sampled k (the expert takes over at model call k; None when the schedule
    never switches); ``handover_turn`` is the model call at which the expert really acted first
    (None when it never did, e.g. the student submitted before k); ``return_turn`` is the model call at
    which the student acted again after the expert handed back (intervene-and-return schedules; None
    when the expert kept the episode or it ended first). ``accepted`` is resolved and
    not filtered; rejected trajectories are stored too, with their ``filter_reasons``.
    """

    instance_id: str
    sample_index: int
    mode: Mode
    seed: int
    messages: list[Message]
    models: dict[str, str]
    exit_status: ExitStatus
    patch: str
    switch_step: int | None = None
    handover_turn: int | None = None
    return_turn: int | None = None
    verdict: Verdict | None = None
    filter_reasons: list[str] = field(default_factory=list)
    accepted: bool = False
    split: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    token_counts: dict[str, int] = field(default_factory=dict)
    exit_detail: str | None = None
    """Why the episode ended, in words, where the exit status alone does not say (``api_error``)."""
    failed_call_retries: list[CallRetry] = field(default_factory=list)
    """The failed attempts of the model call that ended the episode with ``api_error`` (it has no
    message to carry them); its last, final failure is in ``exit_detail``."""
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int]:
        """Identity of a rollout inside one store: (instance_id, sample_index)."""
        return (self.instance_id, self.sample_index)

    @property
    def resolved(self) -> bool:
        return self.verdict is not None and self.verdict.resolved

    @property
    def ungraded(self) -> bool:
        """The verdict's tests could not judge the patch (:data:`VerdictStatus`): a task or
        infrastructure error, not the agent's failure. Resolve rates count these apart."""
        return self.verdict is not None and self.verdict.status != "graded"

    @property
    def num_turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant")

    @property
    def cost_usd(self) -> float:
        """What the rollout's model calls cost (the sum of its messages' and labels' ``usage.cost_usd``)."""
        usages = [m.usage for m in self.messages] + [m.label.usage for m in self.messages if m.label]
        return sum(u.cost_usd for u in usages if u is not None)

    @property
    def retries(self) -> list[CallRetry]:
        """Every failed attempt of the rollout's model calls that was tried again, in order."""
        return [r for m in self.messages for r in m.retries] + self.failed_call_retries

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["messages"] = [m.to_dict() for m in self.messages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        where = f"trajectory {data.get('instance_id', '?')!r}" if isinstance(data, dict) else "trajectory"
        version = _require(data, "schema_version", int, where)
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{where}: schema_version {version} is newer than this code ({SCHEMA_VERSION})")
        mode = _require(data, "mode", str, where)
        if mode not in MODES:
            raise SchemaError(f"{where}: field 'mode' must be one of {MODES}, got {mode!r}")
        exit_status = _require(data, "exit_status", str, where)
        if exit_status not in EXIT_STATUSES:
            raise SchemaError(
                f"{where}: field 'exit_status' must be one of {EXIT_STATUSES}, got {exit_status!r}"
            )
        verdict = data.get("verdict")
        messages = _require(data, "messages", list, where)
        if version == 1:
            messages = [_upgrade_v1_message(m) for m in messages]
        return cls(
            instance_id=_require(data, "instance_id", str, where),
            sample_index=_require(data, "sample_index", int, where),
            mode=mode,
            seed=_require(data, "seed", int, where),
            messages=[Message.from_dict(m) for m in messages],
            models=dict(_require(data, "models", dict, where)),
            exit_status=exit_status,
            patch=_require(data, "patch", str, where),
            switch_step=data.get("switch_step"),
            handover_turn=data.get("handover_turn"),
            return_turn=data.get("return_turn"),
            verdict=None if verdict is None else Verdict.from_dict(verdict),
            filter_reasons=list(data.get("filter_reasons") or []),
            accepted=bool(data.get("accepted", False)),
            split=data.get("split"),
            timings=dict(data.get("timings") or {}),
            token_counts=dict(data.get("token_counts") or {}),
            exit_detail=data.get("exit_detail"),
            failed_call_retries=[CallRetry.from_dict(r) for r in data.get("failed_call_retries") or ()],
            schema_version=version,
        )
