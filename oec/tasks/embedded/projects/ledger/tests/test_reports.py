import datetime

import pytest

from ledger.accounts import Chart
from ledger.money import Money
from ledger.reports import balance_tree, format_report, income_statement, trial_balance
from ledger.transactions import Journal, Posting, Transaction

D = datetime.date


def usd(amount):
    return Money(amount, "USD")


@pytest.fixture
def journal():
    chart = Chart()
    for name in ("Assets:Bank:Checking", "Assets:Cash", "Liabilities:Visa", "Expenses:Food", "Expenses:Rent",
                 "Income:Salary"):
        chart.open(name)
    journal = Journal(chart)
    entries = [
        (D(2024, 1, 1), "Salary", "Assets:Bank:Checking", "Income:Salary", "3000"),
        (D(2024, 1, 2), "Rent", "Expenses:Rent", "Assets:Bank:Checking", "1200"),
        (D(2024, 1, 3), "Groceries", "Expenses:Food", "Liabilities:Visa", "150"),
        (D(2024, 1, 4), "ATM", "Assets:Cash", "Assets:Bank:Checking", "100"),
    ]
    for date, description, debit, credit, amount in entries:
        journal.add(Transaction.create(date, description, [Posting(debit, usd(amount)), Posting(credit)]))
    return journal


def test_trial_balance_sums_to_zero(journal):
    lines = trial_balance(journal)
    assert sum((line.amount for line in lines), usd("0")) == usd("0")
    assert {line.account for line in lines} == {
        "Assets:Bank:Checking", "Assets:Cash", "Liabilities:Visa", "Expenses:Food", "Expenses:Rent", "Income:Salary"
    }


def test_balance_tree_rolls_up_sub_accounts(journal):
    lines = {line.account: line.amount for line in balance_tree(journal, "Assets", "USD")}
    assert lines["Assets"] == usd("1800")
    assert lines["Assets:Bank"] == usd("1700")


def test_liabilities_are_presented_positive(journal):
    (line,) = [x for x in balance_tree(journal, "Liabilities", "USD") if x.account == "Liabilities:Visa"]
    assert line.amount == usd("150")


def test_income_statement_expenses(journal):
    statement = income_statement(journal, D(2024, 1, 1), D(2024, 1, 31), "USD")
    assert statement.expenses == usd("1350")


def test_format_report_aligns_amounts(journal):
    text = format_report(balance_tree(journal, "Expenses", "USD"))
    lines = text.splitlines()
    assert lines[0].startswith("Expenses")
    assert lines[1].startswith("  Food")
    assert len({len(line) for line in lines}) == 1
