"""Counters describing what a store has been doing.

Kept as a plain dataclass so callers can copy it (dataclasses.replace) or dump it
into their own metrics.
"""

from dataclasses import asdict, dataclass, fields


@dataclass
class Stats:
    """Operation counters of one store."""

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    expirations: int = 0
    evictions: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float:
        """Fraction of lookups that found a live key; 0.0 before any lookup."""
        return self.hits / self.lookups if self.lookups else 0.0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "hit_ratio": self.hit_ratio}
