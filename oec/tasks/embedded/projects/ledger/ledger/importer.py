"""Import bank statements exported as CSV into balanced transactions.

Each CSV row becomes a transaction between the bank account being imported and a category account
chosen by keyword rules (the first matching rule wins; unmatched rows go to a fallback account).
Bank exports vary: amounts may carry thousands separators, currency symbols or accounting-style
parentheses for negatives, and spreadsheet programs often prepend a byte-order mark to the file.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ledger.money import Money
from ledger.transactions import Posting, Transaction

_SYMBOLS = "$€£¥"


class CsvImportError(ValueError):
    """A row of the statement cannot be read; the message gives its line number."""


def parse_amount(text: str, *, decimal_comma: bool = False) -> Decimal:
    """Parse ``"1,234.50"``, ``"-$12"``, ``"(40.00)"`` (negative) or, with ``decimal_comma``, ``"1.234,50"``."""
    cleaned = text.strip()
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    cleaned = cleaned.strip("()").replace(" ", "")
    if cleaned.startswith("-"):
        negative, cleaned = not negative, cleaned[1:]
    cleaned = cleaned.strip(_SYMBOLS)
    if decimal_comma:
        cleaned = cleaned.replace(".", "").replace(",", ".")
    else:
        cleaned = cleaned.replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"invalid amount: {text!r}") from None
    return -value if negative else value


@dataclass(frozen=True)
class Rule:
    """Rows whose description contains ``keyword`` (ignoring case) go to ``account``."""

    keyword: str
    account: str

    def matches(self, description: str) -> bool:
        return self.keyword.casefold() in description.casefold()


@dataclass(frozen=True)
class CsvFormat:
    """Column names and conventions of one bank's export."""

    date_column: str = "Date"
    description_column: str = "Description"
    amount_column: str = "Amount"
    currency_column: str | None = None
    currency: str = "USD"
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    delimiter: str = ","


class CsvImporter:
    """Turns statement rows of ``account`` into transactions, categorised by rules."""

    def __init__(
        self,
        account: str,
        rules: Sequence[Rule] = (),
        fallback: str = "Expenses:Uncategorized",
        fmt: CsvFormat | None = None,
    ) -> None:
        self.account = account
        self.rules = list(rules)
        self.fallback = fallback
        self.fmt = fmt or CsvFormat()

    def add_rule(self, keyword: str, account: str) -> None:
        self.rules.append(Rule(keyword, account))

    def categorize(self, description: str) -> str:
        """The account of the first rule matching ``description``, else the fallback account."""
        for rule in self.rules:
            if rule.matches(description):
                return rule.account
        return self.fallback

    def _transaction(self, row: dict[str, str]) -> Transaction:
        fmt = self.fmt
        date = datetime.datetime.strptime(row[fmt.date_column].strip(), fmt.date_format).date()
        description = " ".join(row[fmt.description_column].split())
        currency = row[fmt.currency_column] if fmt.currency_column else fmt.currency
        amount = Money(parse_amount(row[fmt.amount_column], decimal_comma=fmt.decimal_comma), currency)
        postings = [Posting(self.account, amount), Posting(self.categorize(description))]
        return Transaction.create(date, description, postings)

    def parse(self, lines: Iterable[str]) -> list[Transaction]:
        """Read CSV text lines (header first) into transactions; blank rows are skipped."""
        reader = csv.DictReader(lines, delimiter=self.fmt.delimiter)
        columns = [self.fmt.date_column, self.fmt.description_column, self.fmt.amount_column]
        if self.fmt.currency_column:
            columns.append(self.fmt.currency_column)
        if missing := [c for c in columns if c not in (reader.fieldnames or [])]:
            raise CsvImportError(f"line 1: missing column(s) {missing}; found {reader.fieldnames}")
        transactions = []
        for row in reader:
            if not any((value or "").strip() for value in row.values()):
                continue
            try:
                transactions.append(self._transaction(row))
            except (ValueError, KeyError, TypeError) as exc:
                raise CsvImportError(f"line {reader.line_num}: {exc}") from exc
        return transactions

    def read(self, path: Path | str) -> list[Transaction]:
        """Import a statement file (UTF-8, with or without a byte-order mark)."""
        text = Path(path).read_text(encoding="utf-8-sig")
        return self.parse(io.StringIO(text, newline=""))
