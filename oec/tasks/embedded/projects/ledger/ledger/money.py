"""Money: an exact decimal amount in one currency.

Amounts are ``Decimal`` (never ``float``) so that sums of cents stay exact. Arithmetic between two
currencies is an error rather than a silent mix; rounding follows the currency's minor unit
(2 decimals for most, 0 for JPY, 3 for BHD...) with half-up rounding, as on invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not the usual cent.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "TND": 3}
DEFAULT_MINOR_UNITS = 2


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


def normalize_currency(code: str) -> str:
    """Return the canonical form of a currency code (``" usd"`` -> ``"USD"``)."""
    normalized = code.strip().upper()
    if len(normalized) != 3 or not normalized.isalpha():
        raise ValueError(f"invalid currency code: {code!r}")
    return normalized


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's smallest unit."""
    return MINOR_UNITS.get(normalize_currency(currency), DEFAULT_MINOR_UNITS)


def quantum(currency: str) -> Decimal:
    """The smallest unit of ``currency`` as a Decimal (``Decimal("0.01")`` for USD)."""
    return Decimal(1).scaleb(-minor_units(currency))


@dataclass(frozen=True)
class Money:
    """An amount of one currency. Accepts ``Decimal``, ``int`` or ``str`` amounts, not ``float``."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, float):
            raise TypeError("Money amounts must not be floats; pass a str or Decimal")
        try:
            amount = Decimal(self.amount)
        except (InvalidOperation, TypeError) as exc:
            raise ValueError(f"invalid amount: {self.amount!r}") from exc
        object.__setattr__(self, "amount", amount)
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def parse(cls, text: str) -> Money:
        """Parse ``"12.50 USD"`` or ``"USD 12.50"``."""
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"expected '<amount> <currency>', got {text!r}")
        first, second = parts
        if first.isalpha():
            first, second = second, first
        return cls(first, second)

    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} and {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._check(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._check(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float):
            raise TypeError("multiply Money by a Decimal or an int, not a float")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._check(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._check(other).amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def rounded(self) -> Money:
        """This amount rounded half-up to the currency's minor unit."""
        return Money(self.amount.quantize(quantum(self.currency), rounding=ROUND_HALF_UP), self.currency)

    def allocate(self, ratios: list[int]) -> list[Money]:
        """Split into parts proportional to ``ratios`` that add up exactly to the rounded amount.

        Leftover minor units go one each to the first parts, so ``Money("100", "USD").allocate([1, 1, 1])``
        is 33.34, 33.33 and 33.33.
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios}")
        unit = quantum(self.currency)
        total = self.rounded().amount
        units = int(abs(total) / unit)
        shares = [units * r // sum(ratios) for r in ratios]
        for i in range(units - sum(shares)):
            shares[i] += 1
        sign = -1 if total < 0 else 1
        return [Money(sign * share * unit, self.currency) for share in shares]

    def format(self) -> str:
        """Human-readable form with thousands separators: ``"-1,234.50 USD"``."""
        places = minor_units(self.currency)
        rounded = self.rounded().amount
        sign = "-" if rounded < 0 else ""
        return f"{sign}{abs(rounded):,.{places}f} {self.currency}"

    def __str__(self) -> str:
        return self.format()
