"""Clocks that the store reads the time from.

The store never calls the time module itself: it asks an injected clock, so tests
and simulations can drive expiry with a ManualClock instead of sleeping.
"""

import time
from typing import Protocol


class Clock(Protocol):
    """Anything with a ``now()`` returning seconds as a float."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time (``time.time``), the default for a Store."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; moving it backwards is refused because expiry assumes monotonic time."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance by {seconds})")
        self._now += seconds
