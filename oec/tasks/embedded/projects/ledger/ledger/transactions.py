"""Double-entry transactions and the journal that records them.

A transaction is a dated list of postings whose amounts sum to zero in every currency. As in
plain-text accounting tools, one posting may leave its amount out; it then receives whatever
balances the others. The journal keeps transactions in date order (entry order within a day)
and answers balance queries.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ledger.accounts import Chart
from ledger.money import Money


class UnbalancedTransaction(ValueError):
    """The postings of a transaction do not sum to zero, or their missing amount is ambiguous."""


@dataclass(frozen=True)
class Posting:
    """One line of a transaction: an account and a signed amount (debits positive)."""

    account: str
    amount: Money | None = None
    memo: str = ""


def _totals(postings: Iterable[Posting]) -> dict[str, Money]:
    totals: dict[str, Money] = {}
    for posting in postings:
        if posting.amount is not None:
            currency = posting.amount.currency
            totals[currency] = totals.get(currency, Money.zero(currency)) + posting.amount
    return totals


def balance_postings(postings: Sequence[Posting]) -> tuple[Posting, ...]:
    """Fill in the one elided amount, if any, and check that every currency balances."""
    missing = [i for i, p in enumerate(postings) if p.amount is None]
    if len(missing) > 1:
        raise UnbalancedTransaction("at most one posting may leave its amount out")
    totals = _totals(postings)
    if missing:
        if len(totals) != 1:
            raise UnbalancedTransaction("the missing amount is ambiguous: the other postings use several currencies")
        (total,) = totals.values()
        filled = list(postings)
        filled[missing[0]] = replace(postings[missing[0]], amount=-total)
        return tuple(filled)
    for total in totals.values():
        if not total.is_zero():
            raise UnbalancedTransaction(f"postings do not balance: off by {total}")
    return tuple(postings)


@dataclass(frozen=True)
class Transaction:
    """A balanced, dated set of postings. Build it with :meth:`create` to balance it."""

    date: datetime.date
    description: str
    postings: tuple[Posting, ...]
    tags: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def create(
        cls,
        date: datetime.date,
        description: str,
        postings: Sequence[Posting],
        tags: Iterable[str] = (),
    ) -> Transaction:
        if len(postings) < 2:
            raise UnbalancedTransaction("a transaction needs at least two postings")
        return cls(date, description.strip(), balance_postings(postings), frozenset(tags))


class Journal:
    """Transactions against the accounts of one chart, in date order."""

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        self._transactions: list[Transaction] = []

    def add(self, transaction: Transaction) -> None:
        """Record a transaction; every posting must use an open account."""
        for posting in transaction.postings:
            self.chart.get(posting.account)
        bisect.insort_right(self._transactions, transaction, key=lambda t: t.date)

    def __len__(self) -> int:
        return len(self._transactions)

    def transactions(
        self, start: datetime.date | None = None, end: datetime.date | None = None
    ) -> list[Transaction]:
        """Transactions dated from ``start`` to ``end``, both inclusive (None leaves a side open)."""
        return [
            t
            for t in self._transactions
            if (start is None or t.date >= start) and (end is None or t.date <= end)
        ]

    def balance(
        self,
        account: str,
        *,
        start: datetime.date | None = None,
        end: datetime.date | None = None,
    ) -> dict[str, Money]:
        """Sum of the postings to ``account`` and its sub-accounts, per currency (zeros dropped)."""
        root = self.chart.get(account)
        postings = [
            p
            for t in self.transactions(start, end)
            for p in t.postings
            if self.chart.get(p.account).is_within(root.name)
        ]
        return {c: m for c, m in sorted(_totals(postings).items()) if not m.is_zero()}
