"""What a model call costs: dollars per million tokens, per model, from the ``prices`` config table.

Input tokens read from or written to a prompt cache are priced apart (Anthropic's cache reads cost a
tenth of an input token, writes a quarter more). A model missing from the table costs 0, with one
warning per model, so a local server never needs an entry but a forgotten API price is visible.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from oec.config import AtLeast
from oec.types import Usage

log = logging.getLogger(__name__)
_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class Price:
    """``prices.<model>``: dollars per million tokens."""

    input: Annotated[float, AtLeast(0)] = 0.0
    """Uncached input tokens."""
    output: Annotated[float, AtLeast(0)] = 0.0
    cache_read: Annotated[float, AtLeast(0)] = 0.0
    cache_write: Annotated[float, AtLeast(0)] = 0.0

    def cost(self, usage: Usage) -> float:
        """Dollars for ``usage``; ``prompt_tokens`` includes the cached ones, priced apart."""
        uncached = max(usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        return (
            uncached * self.input
            + usage.completion_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
        ) / 1e6


FREE = Price()


def price_of(model: str, prices: Mapping[str, Price]) -> Price:
    """``model``'s price, or 0 with a warning (once per model) when the table has none."""
    if model in prices:
        return prices[model]
    with _warned_lock:
        if model not in _warned:
            _warned.add(model)
            log.warning("model %r has no entry in `prices`: its calls cost $0, so caps cannot bind", model)
    return FREE
