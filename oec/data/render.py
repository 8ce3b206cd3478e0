"""Render one trajectory into SFT token ids and a per-token loss mask, with the student's chat template.

This is the only place where loss masks are made. The trajectory's messages are already in the
student's inference format (the student's system prompt first, assistant content is exactly the XML
tool-call text the student writes), so rendering is one call to the tokenizer's chat template with
``return_assistant_tokens_mask=True``. The template marks every assistant message's content plus its
closing ``<|im_end|>`` as a generation span; a mask policy then keeps the spans whose author it
trains on:

- ``expert`` (OEC default): expert turns only; student turns stay in the context, unsupervised.
- ``assistant``: every assistant turn (the "no masking" ablation; also what BC and on-policy use).
- ``student``: student turns only.

The closing ``<|im_end|>`` of a supervised turn is supervised too, so the model learns to stop; the
``<|im_start|>assistant\\n`` header and the ``\\n`` after ``<|im_end|>`` are not (the inference server
writes them). Each supervised span must decode to exactly ``content + "<|im_end|>"``; a span that
does not (a reply starting with a newline merges with the header's ``\\n`` into one token, so the
model would be taught a token it never emits at inference) makes the example refused.

Convention: ``loss_mask[t]`` is True when token ``t`` is a training *target*, predicted from the
logits at position ``t - 1``. Position 0 (``<|im_start|>``) is never a target.

Over-long policy (``max_seq_len``): an example longer than ``max_seq_len`` tokens is cut right after
the closing ``<|im_end|>`` of the last supervised turn that fits; later turns are dropped (and
counted in ``Example.dropped_turns``). If no supervised turn fits, the example is refused.

DAgger trajectories (mode ``dagger``, :class:`oec.types.Label` on each student turn) are not rendered
whole under a mask that trains on expert turns: :func:`training_views` turns one into one view per
labelled turn, the real history before that student turn (unsupervised) followed by the expert's
label as the last assistant message (author ``expert``, supervised). The student's own reply at that
turn is never shown (under ``assistant`` the view's earlier student turns are supervised too). Under
the ``student`` mask a DAgger trajectory renders whole, like on-policy data.

Refusals raise :class:`RenderError` whose ``reason`` is one of ``REFUSAL_REASONS``, so callers can
count them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from transformers import PreTrainedTokenizerBase

from oec.types import Message, Trajectory

MaskPolicy = Literal["expert", "assistant", "student"]
MASK_POLICIES: tuple[str, ...] = get_args(MaskPolicy)
RefusalReason = Literal["no_supervised", "too_long", "span_mismatch"]
REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)
END_OF_TURN = "<|im_end|>"

_TRAINED_AUTHORS: dict[str, frozenset[str]] = {
    "expert": frozenset({"expert"}),
    "assistant": frozenset({"expert", "student"}),
    "student": frozenset({"student"}),
}


class RenderError(ValueError):
    """A trajectory cannot become a training example; ``reason`` is one of ``REFUSAL_REASONS``."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Span:
    """One assistant message in the rendered ids: tokens ``[start, end)`` are its content + ``<|im_end|>``."""

    message_index: int
    author: str
    turn: int
    start: int
    end: int
    supervised: bool


@dataclass(frozen=True, eq=False)
class Example:
    """One SFT example: token ids, the target mask (see the module docstring) and its provenance.

    ``spans`` lists the assistant messages that survived truncation, supervised or not;
    ``truncated`` says ``max_seq_len`` cut the example, ``dropped_turns`` how many supervised turns
    that cut removed.
    """

    input_ids: np.ndarray
    loss_mask: np.ndarray
    instance_id: str
    sample_index: int
    arm: str
    mask: str
    spans: tuple[Span, ...]
    truncated: bool = False
    dropped_turns: int = 0

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_supervised(self) -> int:
        return int(self.loss_mask.sum())

    @property
    def name(self) -> str:
        return f"{self.instance_id}#{self.sample_index}"


def training_views(trajectory: Trajectory, mask: MaskPolicy) -> list[Trajectory]:
    """What is rendered of ``trajectory`` under ``mask``: itself, or for a DAgger trajectory under a
    mask that trains on expert turns, one view per labelled student turn (see the module docstring),
    in turn order. A DAgger trajectory without labels (e.g. an infra error) yields no view."""
    if trajectory.mode != "dagger" or "expert" not in _TRAINED_AUTHORS[mask]:
        return [trajectory]
    views = []
    for index, message in enumerate(trajectory.messages):
        if message.label is None:
            continue
        label = Message("assistant", message.label.content, message.label.author, message.turn)
        views.append(dataclasses.replace(trajectory, messages=[*trajectory.messages[:index], label]))
    return views


def _mask_runs(mask: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    start = None
    for index, flag in enumerate([*mask, 0]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index))
            start = None
    return runs


def render(
    trajectory: Trajectory,
    tokenizer: PreTrainedTokenizerBase,
    mask: MaskPolicy = "expert",
    max_seq_len: int | None = None,
    arm: str | None = None,
) -> Example:
    """Token ids and loss mask of ``trajectory`` under ``mask``; raises :class:`RenderError` to refuse.

    ``arm`` labels the example for mix statistics (default: the trajectory's mode).
    """
    (result,) = render_many([trajectory], tokenizer, mask, max_seq_len, arm)
    if isinstance(result, RenderError):
        raise result
    return result


def render_many(
    trajectories: Sequence[Trajectory],
    tokenizer: PreTrainedTokenizerBase,
    mask: MaskPolicy = "expert",
    max_seq_len: int | None = None,
    arm: str | None = None,
) -> list[Example | RenderError]:
    """:func:`render` of each trajectory, the refusals returned in place; one batched tokenizer call.

    Batching lets the Rust tokenizer encode the conversations in parallel; pass a few dozen at a
    time, as the tokenizer holds every encoding (offsets included) until it returns.
    """
    if mask not in _TRAINED_AUTHORS:
        raise ValueError(f"unknown mask policy {mask!r} (expected one of {MASK_POLICIES})")
    results: list[Example | RenderError | None] = [_check_selectable(t, mask) for t in trajectories]
    todo = [i for i, result in enumerate(results) if result is None]
    if todo:
        rendered = tokenizer.apply_chat_template(
            [[{"role": m.role, "content": m.content} for m in trajectories[i].messages] for i in todo],
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        for k, i in enumerate(todo):
            try:
                results[i] = _example(
                    trajectories[i],
                    rendered["input_ids"][k],
                    rendered["assistant_masks"][k],
                    tokenizer,
                    mask,
                    max_seq_len,
                    arm,
                )
            except RenderError as err:
                results[i] = err
    return results


def _name(trajectory: Trajectory) -> str:
    return f"trajectory {trajectory.instance_id}#{trajectory.sample_index}"


def _check_selectable(trajectory: Trajectory, mask: str) -> RenderError | None:
    assistant = [m for m in trajectory.messages if m.role == "assistant"]
    if any(m.author in _TRAINED_AUTHORS[mask] for m in assistant):
        return None
    return RenderError(
        "no_supervised",
        f"{_name(trajectory)}: mask {mask!r} selects none of its {len(assistant)} assistant turns "
        f"(their authors: {sorted({m.author for m in assistant}) or 'none'})",
    )


def _example(
    trajectory: Trajectory,
    ids: list[int],
    assistant_mask: list[int],
    tokenizer: PreTrainedTokenizerBase,
    mask: str,
    max_seq_len: int | None,
    arm: str | None,
) -> Example:
    """The example of one rendered conversation: spans mapped to messages, verified, truncated."""
    name = _name(trajectory)
    trained = _TRAINED_AUTHORS[mask]
    assistant = [(i, m) for i, m in enumerate(trajectory.messages) if m.role == "assistant"]
    runs = _mask_runs(assistant_mask)
    if len(runs) != len(assistant):
        # Every assistant message yields one contiguous run (at least its <|im_end|>), separated by the
        # unmasked next header; any other count means the template does not mark turns as expected.
        raise ValueError(
            f"{name}: the chat template marked {len(runs)} generation spans for {len(assistant)} "
            "assistant messages; it must wrap each assistant turn in {% generation %}"
        )
    spans: list[Span] = []
    for (index, message), (start, end) in zip(assistant, runs, strict=True):
        supervised = message.author in trained
        if supervised:
            decoded = tokenizer.decode(
                ids[start:end], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            if decoded != message.content + END_OF_TURN:
                raise RenderError(
                    "span_mismatch",
                    f"{name}: supervised message {index} ({message.author}, turn {message.turn}) decodes to "
                    f"{decoded[:60]!r}..., not to its content {message.content[:60]!r}... + {END_OF_TURN!r} "
                    "(a reply that starts with whitespace merges with the template's header)",
                )
        spans.append(Span(index, message.author, message.turn, start, end, supervised))

    truncated = max_seq_len is not None and len(ids) > max_seq_len
    dropped = 0
    if truncated:
        fitting = [s for s in spans if s.supervised and s.end <= max_seq_len]
        if not fitting:
            first = next(s for s in spans if s.supervised)
            raise RenderError(
                "too_long",
                f"{name}: {len(ids)} tokens and its first supervised turn ends at token {first.end} "
                f"> max_seq_len={max_seq_len}",
            )
        cut = fitting[-1].end
        dropped = sum(1 for s in spans if s.supervised and s.end > cut)
        spans = [s for s in spans if s.end <= cut]
        ids = ids[:cut]

    loss_mask = np.zeros(len(ids), dtype=bool)
    for span in spans:
        if span.supervised:
            loss_mask[span.start : span.end] = True
    return Example(
        input_ids=np.asarray(ids, dtype=np.int32),
        loss_mask=loss_mask,
        instance_id=trajectory.instance_id,
        sample_index=trajectory.sample_index,
        arm=arm or trajectory.mode,
        mask=mask,
        spans=tuple(spans),
        truncated=truncated,
        dropped_turns=dropped,
    )
