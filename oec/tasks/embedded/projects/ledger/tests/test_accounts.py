import pytest

from ledger.accounts import Account, Chart


def test_account_type_from_root_segment():
    assert Account("Assets:Bank:Checking").type == "asset"
    assert Account("liabilities:Visa").type == "liability"
    with pytest.raises(ValueError):
        Account("Stuff:Things")


def test_depth_and_parent():
    account = Account("Assets:Bank:Checking")
    assert account.depth == 3
    assert account.parent == "Assets:Bank"
    assert Account("Assets").parent is None


def test_opening_an_account_opens_its_parents():
    chart = Chart()
    chart.open("Expenses:Food:Groceries")
    assert "Expenses" in chart
    assert "Expenses:Food" in chart
    assert len(chart) == 3


def test_lookup_ignores_case():
    chart = Chart()
    chart.open("Assets:Bank")
    assert chart.get("assets:bank").name == "Assets:Bank"


def test_unknown_account():
    with pytest.raises(KeyError, match="unknown account"):
        Chart().get("Assets:Nowhere")


def test_duplicate_account_is_rejected():
    chart = Chart()
    chart.open("Assets:Cash")
    with pytest.raises(ValueError):
        chart.open("ASSETS:CASH")


def test_subtree():
    chart = Chart()
    for name in ("Assets:Bank:Checking", "Assets:Bank:Savings", "Assets:Cash"):
        chart.open(name)
    names = [a.name for a in chart.subtree("Assets:Bank")]
    assert names == ["Assets:Bank", "Assets:Bank:Checking", "Assets:Bank:Savings"]


def test_liabilities_are_credit_normal():
    assert Account("Liabilities:Loan").sign == -1
    assert Account("Expenses:Rent").sign == 1
