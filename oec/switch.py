"""THE OEC MECHANISM: when the expert takes over, and the policy that hands over.

A rollout draws one switch step k from a schedule. The student makes model calls 0..k-1; from
call k on the expert acts, inheriting the full conversation and the sandbox state and seeing its
own system prompt in place of the student's. ``never`` gives pure student rollouts (on-policy),
``always`` (k = 0) pure expert rollouts (BC). Steps count model calls, as in the reference code,
so a reply with a format error counts too. If the student ends the episode before call k, the
rollout is all-student; the sampled k and the real handover turn are both recorded.

``handover_after_format_errors`` is an adaptive-switching knob (off by default, as in the paper):
when the student's last N replies in a row were format errors, the expert takes over early instead
of letting the loop end the episode, so a weak student still yields corrected rollouts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from oec.policies.base import Policy, Reply
from oec.types import Author, Message, Mode, malformed_turns

ScheduleName = Literal["uniform", "fixed", "beta", "never", "always"]


class SwitchSchedule(Protocol):
    def sample(self, rng: random.Random) -> int | None:
        """The model-call index at which the expert takes over, or None for never."""
        ...


@dataclass(frozen=True)
class Uniform:
    """k ~ U{lo, ..., hi}, both ends included (paper: 0..30)."""

    lo: int = 0
    hi: int = 30

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)


@dataclass(frozen=True)
class Fixed:
    k: int

    def sample(self, rng: random.Random) -> int:
        return self.k


@dataclass(frozen=True)
class Beta:
    """k = lo + round(B * (hi - lo)) with B ~ Beta(a, b); a > b biases switches late."""

    a: float = 2.0
    b: float = 1.0
    lo: int = 0
    hi: int = 30

    def sample(self, rng: random.Random) -> int:
        return self.lo + round(rng.betavariate(self.a, self.b) * (self.hi - self.lo))


@dataclass(frozen=True)
class Never:
    def sample(self, rng: random.Random) -> None:
        return None


@dataclass(frozen=True)
class Always:
    def sample(self, rng: random.Random) -> int:
        return 0


@dataclass(frozen=True)
class SwitchConfig:
    """``switch`` config group. ``lo``/``hi`` bound uniform and beta, ``k`` is for fixed,
    ``a``/``b`` shape beta; ``handover_after_format_errors`` hands over early (see module doc)."""

    schedule: ScheduleName = "uniform"
    lo: int = 0
    hi: int = 30
    k: int = 0
    a: float = 2.0
    b: float = 1.0
    handover_after_format_errors: int | None = None

    def __post_init__(self) -> None:
        if self.schedule not in ("uniform", "fixed", "beta", "never", "always"):
            raise ValueError(
                f"switch.schedule: unknown schedule {self.schedule!r} "
                "(expected uniform, fixed, beta, never or always)"
            )
        if self.schedule in ("uniform", "beta") and not 0 <= self.lo <= self.hi:
            raise ValueError(f"switch.lo/switch.hi: need 0 <= lo <= hi, got lo={self.lo}, hi={self.hi}")
        if self.schedule == "fixed" and self.k < 0:
            raise ValueError(f"switch.k: must be >= 0, got {self.k}")
        if self.schedule == "beta" and (self.a <= 0 or self.b <= 0):
            raise ValueError(f"switch.a/switch.b: must be > 0, got a={self.a}, b={self.b}")
        if self.handover_after_format_errors is not None and self.handover_after_format_errors < 1:
            raise ValueError(
                "switch.handover_after_format_errors: must be >= 1 or null, "
                f"got {self.handover_after_format_errors}"
            )

    @property
    def mode(self) -> Mode:
        """The data arm this schedule produces."""
        return {"always": "bc", "never": "on_policy"}.get(self.schedule, "oec")  # type: ignore[return-value]

    def build(self) -> SwitchSchedule:
        match self.schedule:
            case "uniform":
                return Uniform(self.lo, self.hi)
            case "fixed":
                return Fixed(self.k)
            case "beta":
                return Beta(self.a, self.b, self.lo, self.hi)
            case "never":
                return Never()
            case _:
                return Always()


class SwitchingPolicy:
    """Student for model calls before ``switch_step``, expert from then on.

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
    ) -> None:
        if switch_step is None and student is None:
            raise ValueError("a rollout that never switches needs a student policy")
        if switch_step is not None and expert is None:
            raise ValueError("a rollout that switches needs an expert policy")
        if switch_step is not None and switch_step > 0 and student is None:
            raise ValueError(f"switch step {switch_step} > 0 needs a student policy")
        self.student = student
        self.expert = expert
        self.switch_step = switch_step
        self.expert_system_prompt = expert_system_prompt
        self.handover_after_format_errors = handover_after_format_errors
        self.handover_turn: int | None = None
        self.name = "+".join(p.name for p in (student, expert) if p is not None)

    def _expert_turn(self, messages: Sequence[Message], turn: int) -> bool:
        if self.handover_turn is not None:
            return True
        if self.switch_step is not None and turn >= self.switch_step:
            return True
        limit = self.handover_after_format_errors
        return self.expert is not None and limit is not None and _trailing_format_errors(messages) >= limit

    @property
    def author(self) -> Author:
        return "expert" if self.handover_turn is not None else "student"

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        if not self._expert_turn(messages, turn):
            assert self.student is not None
            return self.student.act(messages, turn)
        assert self.expert is not None
        if self.handover_turn is None:
            self.handover_turn = turn
        if self.expert_system_prompt is not None and messages and messages[0].role == "system":
            system = Message("system", self.expert_system_prompt, "system", messages[0].turn)
            messages = [system, *messages[1:]]
        return self.expert.act(messages, turn)


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
