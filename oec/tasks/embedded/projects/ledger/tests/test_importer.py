import datetime
from decimal import Decimal

import pytest

from ledger.importer import CsvFormat, CsvImporter, CsvImportError, Rule, parse_amount
from ledger.money import Money

STATEMENT = """Date,Description,Amount
2024-01-03,COFFEE HOUSE  #12,-4.50
2024-01-04,Payroll ACME,"2,500.00"

2024-01-05,Grocery Mart,-82.10
"""


def test_parse_amount_variants():
    assert parse_amount("1,234.50") == Decimal("1234.50")
    assert parse_amount("-$12") == Decimal("-12")
    assert parse_amount("1.234,50", decimal_comma=True) == Decimal("1234.50")
    with pytest.raises(ValueError):
        parse_amount("twelve")


def test_import_statement_rows():
    importer = CsvImporter("Assets:Bank", [Rule("coffee", "Expenses:Coffee"), Rule("payroll", "Income:Salary")])
    transactions = importer.parse(STATEMENT.splitlines())
    assert [t.date for t in transactions] == [datetime.date(2024, 1, d) for d in (3, 4, 5)]
    coffee, pay, grocery = transactions
    assert coffee.description == "COFFEE HOUSE #12"
    assert coffee.postings[1].account == "Expenses:Coffee"
    assert coffee.postings[1].amount == Money("4.50", "USD")
    assert pay.postings[0].amount == Money("2500", "USD")
    assert grocery.postings[1].account == "Expenses:Uncategorized"


def test_custom_format():
    fmt = CsvFormat(date_column="Datum", description_column="Text", amount_column="Betrag", currency="EUR",
                    date_format="%d.%m.%Y", decimal_comma=True, delimiter=";")
    rows = ["Datum;Text;Betrag", "31.01.2024;Miete;-1.200,00"]
    (txn,) = CsvImporter("Assets:Giro", fmt=fmt).parse(rows)
    assert txn.date == datetime.date(2024, 1, 31)
    assert txn.postings[0].amount == Money("-1200", "EUR")


def test_missing_column_is_reported():
    with pytest.raises(CsvImportError, match="missing column"):
        CsvImporter("Assets:Bank").parse(["Date,Text,Amount", "2024-01-01,x,1"])


def test_bad_row_names_its_line():
    with pytest.raises(CsvImportError, match="line 3"):
        CsvImporter("Assets:Bank").parse(["Date,Description,Amount", "2024-01-01,a,1", "2024-13-01,b,2"])


def test_read_file(tmp_path):
    path = tmp_path / "statement.csv"
    path.write_text(STATEMENT, encoding="utf-8")
    assert len(CsvImporter("Assets:Bank").read(path)) == 3
