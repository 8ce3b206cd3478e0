"""ledger: a small double-entry bookkeeping library.

Amounts are :class:`Money` (a ``Decimal`` and a currency), accounts live in a :class:`Chart`,
balanced :class:`Transaction` objects are recorded in a :class:`Journal`, foreign amounts are
converted with :class:`ExchangeRates`, bank statements are read with :class:`CsvImporter`, and
:mod:`ledger.reports` turns a journal into balances and statements.
"""

from ledger.accounts import Account, Chart
from ledger.importer import CsvFormat, CsvImporter, CsvImportError, Rule, parse_amount
from ledger.money import CurrencyMismatch, Money
from ledger.rates import ExchangeRates, RateNotFound
from ledger.transactions import Journal, Posting, Transaction, UnbalancedTransaction

__all__ = [
    "Account",
    "Chart",
    "CsvFormat",
    "CsvImportError",
    "CsvImporter",
    "CurrencyMismatch",
    "ExchangeRates",
    "Journal",
    "Money",
    "Posting",
    "RateNotFound",
    "Rule",
    "Transaction",
    "UnbalancedTransaction",
    "parse_amount",
]
