"""THE OEC MECHANISM: when the expert takes over, and the policy that hands over.

A rollout draws one switch step k from a schedule. The student makes model calls 0..k-1; from
call k on the expert acts, inheriting the full conversation and the sandbox state and seeing its
own system prompt in place of the student's. ``never`` gives pure student rollouts (on-policy),
``always`` (k = 0) pure expert rollouts (BC). Steps count model calls, as in the reference code,
so a reply with a format error counts too. If the student ends the episode before call k, the
rollout is all-student; the sampled k and the real handover turn are both recorded.

``intervene`` is intervene-and-return: the expert acts for ``expert_turns`` (K) model calls from k,
then hands back and the student continues with the full history (still mode ``oec``: both authors,
and the ``expert`` mask supervises the expert's K turns only); the turn the student acted again is
recorded as ``return_turn``. ``dagger`` is DAgger relabelling (mode ``dagger``): the student acts for
the whole episode and at each of its calls the expert is asked, with the same history and its own
system prompt, what it would do; that reply is stored on the student's message as its ``label`` and
never executed (:class:`RelabellingPolicy`).

``handover_after_format_errors`` is an adaptive-switching knob (off by default, as in the paper):
when the student's last N replies in a row were format errors, the expert takes over early instead
of letting the loop end the episode, so a weak student still yields corrected rollouts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar, Literal

from oec.config import Above, AtLeast
from oec.policies.base import Policy, Reply
from oec.types import Author, Label, Message, Mode, malformed_turns


@dataclass(frozen=True)
class _Switching:
    """What every schedule that switches shares: the adaptive handover knob (see module doc)."""

    handover_after_format_errors: Annotated[int, AtLeast(1)] | None = None
    """N: hand over early after N student format errors in a row (adaptive; off by default)."""
    mode: ClassVar[Mode] = "oec"
    expert_turns: ClassVar[int | None] = None
    """K: the expert hands back to the student after K model calls (None: it keeps the episode)."""


@dataclass(frozen=True)
class _Window(_Switching):
    """Switch steps drawn from lo..hi, both ends included."""

    lo: Annotated[int, AtLeast(0)] = 0
    hi: Annotated[int, AtLeast(0)] = 30

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"hi: must be >= lo, got lo={self.lo}, hi={self.hi}")


@dataclass(frozen=True)
class Uniform(_Window):
    """k ~ U{lo, ..., hi}, both ends included: the paper's OEC schedule (0..30)."""

    schedule: Literal["uniform"] = "uniform"

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)


@dataclass(frozen=True)
class Fixed(_Switching):
    """Always switch at model call k (switch-time analyses)."""

    k: Annotated[int, AtLeast(0)] = 10
    schedule: Literal["fixed"] = "fixed"

    def sample(self, rng: random.Random) -> int:
        return self.k


@dataclass(frozen=True)
class Beta(_Window):
    """k = lo + round(B * (hi - lo)) with B ~ Beta(a, b); a > b biases switches late."""

    a: Annotated[float, Above(0)] = 2.0
    b: Annotated[float, Above(0)] = 1.0
    schedule: Literal["beta"] = "beta"

    def sample(self, rng: random.Random) -> int:
        return self.lo + round(rng.betavariate(self.a, self.b) * (self.hi - self.lo))


@dataclass(frozen=True)
class Intervene(_Window):
    """Intervene and return: k ~ U{lo, ..., hi}; the expert acts for ``expert_turns`` model calls from
    k, then hands back and the student continues to the end of the episode."""

    expert_turns: Annotated[int, AtLeast(1)] = 5  # type: ignore[misc]
    """K: model calls the expert makes before handing back."""
    schedule: Literal["intervene"] = "intervene"

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)


@dataclass(frozen=True)
class Dagger:
    """DAgger relabelling: the student acts throughout; the expert labels every student call."""

    handover_after_format_errors: ClassVar[None] = None
    expert_turns: ClassVar[None] = None
    schedule: Literal["dagger"] = "dagger"
    mode: ClassVar[Mode] = "dagger"

    def sample(self, rng: random.Random) -> None:
        return None


@dataclass(frozen=True)
class Never:
    """Student only: on-policy rollouts, and evaluation."""

    handover_after_format_errors: ClassVar[None] = None
    expert_turns: ClassVar[None] = None
    schedule: Literal["never"] = "never"
    mode: ClassVar[Mode] = "on_policy"

    def sample(self, rng: random.Random) -> None:
        return None


@dataclass(frozen=True)
class Always:
    """Expert from the first call (k = 0): behaviour-cloning data."""

    handover_after_format_errors: ClassVar[None] = None
    expert_turns: ClassVar[None] = None
    schedule: Literal["always"] = "always"
    mode: ClassVar[Mode] = "bc"

    def sample(self, rng: random.Random) -> int:
        return 0


SwitchConfig = Uniform | Fixed | Beta | Intervene | Dagger | Never | Always
"""The ``switch`` config group: one schedule, chosen by its ``schedule`` key. ``sample`` gives the
model-call index at which the expert takes over (None: never); ``mode`` the data arm it produces;
``expert_turns`` how many calls the expert makes before handing back (None: it keeps the episode)."""


ROLES: dict[Mode, tuple[Author, ...]] = {
    "bc": ("expert",),
    "on_policy": ("student",),
    "oec": ("student", "expert"),
    "dagger": ("student", "expert"),
}
"""THE rule for which policies a mode needs (a single OEC rollout may still use one of them only:
k = 0, or a student that ends before k)."""


class SwitchingPolicy:
    """Student for model calls before ``switch_step``, expert from then on (for ``expert_turns``
    calls, then the student again, when that is set).

    The expert sees the same history with its own system prompt in place of the student's; the
    stored conversation keeps the student's prompt, which is what training and inference use.
    """

    def __init__(
        self,
        student: Policy | None,
        expert: Policy | None,
        switch_step: int | None,
        expert_system_prompt: str | None = None,
        handover_after_format_errors: int | None = None,
        expert_turns: int | None = None,
    ) -> None:
        if switch_step is None and student is None:
            raise ValueError("a rollout that never switches needs a student policy")
        if switch_step is not None and expert is None:
            raise ValueError("a rollout that switches needs an expert policy")
        if switch_step is not None and switch_step > 0 and student is None:
            raise ValueError(f"switch step {switch_step} > 0 needs a student policy")
        if expert_turns is not None and student is None:
            raise ValueError("a rollout whose expert hands back needs a student policy")
        self.student = student
        self.expert = expert
        self.switch_step = switch_step
        self.expert_system_prompt = expert_system_prompt
        self.handover_after_format_errors = handover_after_format_errors
        self.expert_turns = expert_turns
        self.handover_turn: int | None = None
        self.return_turn: int | None = None
        self.name = "+".join(p.name for p in (student, expert) if p is not None)

    def _expert_turn(self, messages: Sequence[Message], turn: int) -> bool:
        if self.return_turn is not None:
            return False
        if self.handover_turn is not None:
            return self.expert_turns is None or turn < self.handover_turn + self.expert_turns
        if self.switch_step is not None and turn >= self.switch_step:
            return True
        limit = self.handover_after_format_errors
        return self.expert is not None and limit is not None and _trailing_format_errors(messages) >= limit

    @property
    def author(self) -> Author:
        return "expert" if self.handover_turn is not None and self.return_turn is None else "student"

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        if not self._expert_turn(messages, turn):
            assert self.student is not None
            if self.handover_turn is not None and self.return_turn is None:
                self.return_turn = turn
            return self.student.act(messages, turn)
        assert self.expert is not None
        if self.handover_turn is None:
            self.handover_turn = turn
        return self.expert.act(_expert_view(messages, self.expert_system_prompt), turn)


class RelabellingPolicy:
    """DAgger relabelling: the student acts at every call; the expert's reply to the same history
    (with its own system prompt) is attached to the student's reply as its :class:`~oec.types.Label`
    and never executed.

    ``expert`` builds a fresh expert policy for each labelled state, so a stateful expert (the
    scripted oracle, whose plan assumes its earlier actions were executed) acts from that state as
    if taking over there, the way ``analysis/token_metrics.py`` queries it; a model backend answers
    from the messages alone either way. An expert call that fails ends the episode as a student call
    would (``api_error`` or ``context_limit``).
    """

    handover_turn: None = None
    return_turn: None = None

    def __init__(
        self, student: Policy, expert: Callable[[], Policy], expert_system_prompt: str | None = None
    ) -> None:
        self.student = student
        self.expert = expert()
        """One built expert, for its name and its tool style; each label comes from a fresh one."""
        self._build_expert = expert
        self.expert_system_prompt = expert_system_prompt
        self.author: Author = "student"
        self.name = f"{student.name}+{self.expert.name}"

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        reply = self.student.act(messages, turn)
        label = self._build_expert().act(_expert_view(messages, self.expert_system_prompt), turn)
        return replace(reply, label=Label(label.content, label.author, label.usage))


def _expert_view(messages: Sequence[Message], expert_system_prompt: str | None) -> Sequence[Message]:
    """``messages`` with the expert's system prompt in place of the student's (when one is given)."""
    if expert_system_prompt is None or not messages or messages[0].role != "system":
        return messages
    return [Message("system", expert_system_prompt, "system", messages[0].turn), *messages[1:]]


def _trailing_format_errors(messages: Sequence[Message]) -> int:
    """How many of the latest model calls in a row were malformed (:func:`oec.types.malformed_turns`)."""
    malformed = set(malformed_turns(messages))
    count = 0
    for message in reversed(messages):
        if message.role != "assistant":
            continue
        if message.turn not in malformed:
            break
        count += 1
    return count
