"""Accounts and the chart of accounts.

Accounts are named by colon-separated paths (``Assets:Bank:Checking``); the first segment gives
the account type. Lookups ignore case and the spaces around segments, so names typed by hand or
read from a CSV file (``"expenses : food"``) find the account declared as ``Expenses:Food``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

ROOT_TYPES = {
    "assets": "asset",
    "liabilities": "liability",
    "equity": "equity",
    "income": "income",
    "expenses": "expense",
}
# Accounts whose balance is normally a credit: reports show them with the sign flipped so that
# a salary or a loan reads as a positive number.
CREDIT_NORMAL = frozenset({"liability", "equity", "income"})


def normalize_name(name: str) -> str:
    """Canonical spelling of an account path: segments stripped, joined by ``:``."""
    parts = [part.strip() for part in name.split(":")]
    if not all(parts):
        raise ValueError(f"invalid account name: {name!r}")
    return ":".join(parts)


def account_key(name: str) -> str:
    """Key used for lookups: the normalised name, case-folded."""
    return normalize_name(name).casefold()


@dataclass(frozen=True)
class Account:
    """One account of the chart. ``name`` is normalised; its root segment gives its type."""

    name: str

    def __post_init__(self) -> None:
        name = normalize_name(self.name)
        root = name.split(":")[0].casefold()
        if root not in ROOT_TYPES:
            raise ValueError(f"account {name!r} must start with one of {sorted(ROOT_TYPES)}")
        object.__setattr__(self, "name", name)

    @property
    def type(self) -> str:
        return ROOT_TYPES[self.name.split(":")[0].casefold()]

    @property
    def depth(self) -> int:
        """1 for a root account (``Assets``), 2 for ``Assets:Bank``..."""
        return self.name.count(":") + 1

    @property
    def parent(self) -> str | None:
        return self.name.rsplit(":", 1)[0] if ":" in self.name else None

    @property
    def sign(self) -> int:
        """+1 for debit-normal accounts, -1 for credit-normal ones (used to present balances)."""
        return -1 if self.type in CREDIT_NORMAL else 1

    def is_within(self, ancestor: str) -> bool:
        """True if this account is ``ancestor`` or one of its sub-accounts."""
        key, other = account_key(self.name), account_key(ancestor)
        return key == other or key.startswith(other + ":")


class Chart:
    """The set of open accounts. Opening an account also opens its missing parents."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}

    def open(self, name: str) -> Account:
        account = Account(name)
        key = account_key(account.name)
        if key in self._accounts:
            raise ValueError(f"account {account.name!r} is already open")
        if account.parent is not None and account_key(account.parent) not in self._accounts:
            self.open(account.parent)
        self._accounts[key] = account
        return account

    def get(self, name: str) -> Account:
        try:
            return self._accounts[account_key(name)]
        except KeyError:
            raise KeyError(f"unknown account: {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and account_key(name) in self._accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(sorted(self._accounts.values(), key=lambda a: account_key(a.name)))

    def __len__(self) -> int:
        return len(self._accounts)

    def subtree(self, name: str) -> list[Account]:
        """``name`` and all its sub-accounts, sorted by name."""
        root = self.get(name)
        return [account for account in self if account.is_within(root.name)]
