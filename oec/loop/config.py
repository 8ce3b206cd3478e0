"""Typed ``loop`` config (Hydra group ``loop``): how many rounds, who collects round 0, which stores
each round trains on, and how the switch moves from round to round."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from oec.config import AtLeast, ConfigError, NonEmpty

BC_START = "bc"
"""``initial_student`` value for a loop that starts with a behaviour-cloning round."""


@dataclass(frozen=True)
class LoopConfig:
    """``loop`` config: rounds 0..rounds-1, each collect -> train -> evaluate (see :mod:`oec.loop`)."""

    run_dir: Annotated[str, NonEmpty()]
    """Everything the loop writes (stores/, train/, eval/, logs/, lineage.json, summary.json);
    rerunning the same command resumes it."""
    rounds: Annotated[int, AtLeast(1)] = 3
    """Rounds 0..rounds-1. Raising it on a finished loop runs only the new rounds."""
    initial_student: Annotated[str, NonEmpty()] = BC_START
    """Who collects round 0: ``bc``, the expert alone (``switch=always``), so that round 0 trains the
    first student by behaviour cloning, as in the paper; or a ``student.model`` value (a checkpoint
    folder, or ``tiny``) that collects round 0's OEC rollouts. Round r > 0 is always collected by
    round r-1's student."""
    aggregate: Literal["all", "last"] = "all"
    """Round r trains on the stores of rounds 0..r (``all``, DAgger's aggregation) or on round r's
    store alone (``last``). Every round trains the model config's initial weights afresh."""
    switch_shift_per_round: Annotated[int, AtLeast(0)] = 0
    """Added r times to the switch of round r's OEC collection: to ``lo`` and ``hi`` of a window
    schedule (uniform, beta) or to ``k`` (fixed), so that the switch moves later each round."""
    round_overrides: dict[int, list[str]] | None = None
    """Extra Hydra overrides for every stage of round r, after the loop's own, by round:
    ``{2: [switch.hi=20, trainer.max_steps=800]}``."""

    def __post_init__(self) -> None:
        for key in self.round_overrides or {}:
            if not isinstance(key, int) or not 0 <= key < self.rounds:
                raise ValueError(f"round_overrides: {key!r} is not a round (0..{self.rounds - 1})")

    def overrides_of(self, r: int) -> list[str]:
        """Round r's entry of ``round_overrides``."""
        return (self.round_overrides or {}).get(r, [])

    @property
    def starts_with_bc(self) -> bool:
        return self.initial_student == BC_START

    def trained_rounds(self, r: int) -> list[int]:
        """The rounds whose stores round r trains on."""
        return list(range(r + 1)) if self.aggregate == "all" else [r]

    def switch_overrides(self, r: int, switch: dict[str, Any]) -> list[str]:
        """Overrides that shift the resolved ``switch`` config by ``r * switch_shift_per_round``."""
        shift = r * self.switch_shift_per_round
        if shift == 0:
            return []
        if "lo" in switch and "hi" in switch:
            return [f"switch.lo={switch['lo'] + shift}", f"switch.hi={switch['hi'] + shift}"]
        if "k" in switch:
            return [f"switch.k={switch['k'] + shift}"]
        raise ConfigError(
            f"loop.switch_shift_per_round: switch schedule {switch.get('schedule')!r} has no window "
            "(lo, hi) or step (k) to shift; set it to 0"
        )
