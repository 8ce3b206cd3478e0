import datetime

import pytest

from ledger.accounts import Chart
from ledger.money import Money
from ledger.transactions import Journal, Posting, Transaction, UnbalancedTransaction

D = datetime.date


def usd(amount):
    return Money(amount, "USD")


@pytest.fixture
def journal():
    chart = Chart()
    for name in ("Assets:Bank", "Expenses:Food", "Expenses:Rent", "Income:Salary"):
        chart.open(name)
    return Journal(chart)


def test_balanced_transaction():
    txn = Transaction.create(D(2024, 1, 5), "Lunch", [Posting("Expenses:Food", usd("12")), Posting("Assets:Bank", usd("-12"))])
    assert len(txn.postings) == 2


def test_unbalanced_transaction_is_rejected():
    with pytest.raises(UnbalancedTransaction):
        Transaction.create(D(2024, 1, 5), "Lunch", [Posting("Expenses:Food", usd("12")), Posting("Assets:Bank", usd("-10"))])


def test_elided_amount_is_filled_in():
    txn = Transaction.create(D(2024, 1, 5), "Rent", [Posting("Expenses:Rent", usd("900")), Posting("Assets:Bank")])
    assert txn.postings[1].amount == usd("-900")


def test_journal_balance(journal):
    journal.add(Transaction.create(D(2024, 1, 1), "Pay", [Posting("Assets:Bank", usd("3000")), Posting("Income:Salary")]))
    journal.add(Transaction.create(D(2024, 1, 2), "Rent", [Posting("Expenses:Rent", usd("900")), Posting("Assets:Bank")]))
    assert journal.balance("Assets:Bank") == {"USD": usd("2100")}
    assert journal.balance("Expenses") == {"USD": usd("900")}


def test_journal_rejects_unknown_accounts(journal):
    txn = Transaction.create(D(2024, 1, 1), "Gift", [Posting("Assets:Bank", usd("5")), Posting("Income:Gifts")])
    with pytest.raises(KeyError):
        journal.add(txn)


def test_journal_keeps_date_order(journal):
    later = Transaction.create(D(2024, 2, 1), "B", [Posting("Expenses:Food", usd("1")), Posting("Assets:Bank")])
    earlier = Transaction.create(D(2024, 1, 1), "A", [Posting("Expenses:Food", usd("1")), Posting("Assets:Bank")])
    journal.add(later)
    journal.add(earlier)
    assert [t.description for t in journal.transactions()] == ["A", "B"]


def test_transactions_from_start_date(journal):
    for day in (1, 10, 20):
        journal.add(Transaction.create(D(2024, 3, day), f"d{day}", [Posting("Expenses:Food", usd("1")), Posting("Assets:Bank")]))
    assert [t.description for t in journal.transactions(start=D(2024, 3, 10))] == ["d10", "d20"]
