"""Exchange rates by date, and currency conversion.

A rate ``base/quote = r`` means one unit of ``base`` buys ``r`` units of ``quote``. Conversions on a
given day use the most recent rate published on or before that day; when only the opposite pair
is known its inverse is used.
"""

from __future__ import annotations

import bisect
import datetime
from decimal import Decimal

from ledger.money import Money, normalize_currency


class RateNotFound(LookupError):
    """No rate for a currency pair on or before the requested date."""


class ExchangeRates:
    """A table of dated exchange rates."""

    def __init__(self) -> None:
        self._dates: dict[tuple[str, str], list[datetime.date]] = {}
        self._rates: dict[tuple[str, str], list[Decimal]] = {}

    def add(self, date: datetime.date, base: str, quote: str, rate: Decimal | str) -> None:
        """Record ``base/quote = rate`` from ``date`` on (replacing a rate of the same day)."""
        rate = Decimal(rate)
        if rate <= 0:
            raise ValueError(f"exchange rates must be positive, got {rate}")
        pair = (normalize_currency(base), normalize_currency(quote))
        dates = self._dates.setdefault(pair, [])
        rates = self._rates.setdefault(pair, [])
        index = bisect.bisect_left(dates, date)
        if index < len(dates) and dates[index] == date:
            rates[index] = rate
        else:
            dates.insert(index, date)
            rates.insert(index, rate)

    def _latest(self, pair: tuple[str, str], on: datetime.date) -> Decimal | None:
        dates = self._dates.get(pair, [])
        index = bisect.bisect_right(dates, on)
        return self._rates[pair][index - 1] if index else None

    def rate(self, base: str, quote: str, on: datetime.date) -> Decimal:
        """The ``base/quote`` rate in effect on ``on``."""
        base, quote = normalize_currency(base), normalize_currency(quote)
        if base == quote:
            return Decimal(1)
        direct = self._latest((base, quote), on)
        if direct is not None:
            return direct
        inverse = self._latest((quote, base), on)
        if inverse is not None:
            return 1 / inverse
        raise RateNotFound(f"no {base}/{quote} rate on or before {on.isoformat()}")

    def convert(self, money: Money, currency: str, on: datetime.date) -> Money:
        """``money`` expressed in ``currency`` at the rate of ``on``, rounded to its minor unit."""
        return Money(money.amount * self.rate(money.currency, currency, on), currency).rounded()
