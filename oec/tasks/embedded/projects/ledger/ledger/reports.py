"""Reports over a journal: trial balance, account tree balances and the income statement.

Balances in reports are presented the way accountants read them: credit-normal accounts
(liabilities, equity, income) have their sign flipped so that a salary shows as a positive income.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ledger.money import Money
from ledger.rates import ExchangeRates
from ledger.transactions import Journal


@dataclass(frozen=True)
class ReportLine:
    account: str
    depth: int
    amount: Money


def trial_balance(journal: Journal, end: datetime.date | None = None) -> list[ReportLine]:
    """Raw (unsigned) balance of every account that has postings of its own, sorted by account."""
    lines = []
    for account in journal.chart:
        own = {}
        for transaction in journal.transactions(end=end):
            for posting in transaction.postings:
                if journal.chart.get(posting.account) == account and posting.amount is not None:
                    currency = posting.amount.currency
                    own[currency] = own.get(currency, Money.zero(currency)) + posting.amount
        lines.extend(ReportLine(account.name, account.depth, m) for _, m in sorted(own.items()))
    return lines


def balance_tree(
    journal: Journal,
    root: str,
    currency: str,
    *,
    end: datetime.date | None = None,
    max_depth: int | None = None,
) -> list[ReportLine]:
    """Presented balance of ``root`` and each sub-account (sub-accounts included), down to ``max_depth``.

    ``max_depth`` counts from the top of the chart: ``Assets`` is depth 1, ``Assets:Bank`` depth 2.
    """
    lines = []
    for account in journal.chart.subtree(root):
        if max_depth is not None and account.depth > max_depth:
            continue
        amount = journal.balance(account.name, end=end).get(currency, Money.zero(currency))
        lines.append(ReportLine(account.name, account.depth, amount * account.sign))
    return lines


@dataclass(frozen=True)
class IncomeStatement:
    income: Money
    expenses: Money

    @property
    def net(self) -> Money:
        return self.income - self.expenses


def income_statement(
    journal: Journal,
    start: datetime.date,
    end: datetime.date,
    currency: str,
    rates: ExchangeRates | None = None,
) -> IncomeStatement:
    """Income and expenses between ``start`` and ``end`` (inclusive), in ``currency``.

    Postings in other currencies are converted at the rate of their transaction's date.
    """
    totals = {"income": Money.zero(currency), "expense": Money.zero(currency)}
    for transaction in journal.transactions(start, end):
        for posting in transaction.postings:
            account = journal.chart.get(posting.account)
            if account.type not in totals or posting.amount is None:
                continue
            amount = posting.amount
            if amount.currency != totals[account.type].currency:
                if rates is None:
                    raise ValueError(f"{amount} needs an exchange rate to be reported in {currency}")
                amount = rates.convert(amount, currency, transaction.date)
            totals[account.type] += amount * account.sign
    return IncomeStatement(income=totals["income"], expenses=totals["expense"])


def format_report(lines: list[ReportLine]) -> str:
    """Render lines as an indented two-column table with the amounts right-aligned."""
    labels = ["  " * (line.depth - 1) + line.account.rsplit(":", 1)[-1] for line in lines]
    amounts = [line.amount.format() for line in lines]
    label_width = max((len(label) for label in labels), default=0)
    amount_width = max((len(amount) for amount in amounts), default=0)
    return "\n".join(
        f"{label.ljust(label_width)}  {amount.rjust(amount_width)}" for label, amount in zip(labels, amounts)
    )
