from decimal import Decimal

import pytest

from ledger.money import CurrencyMismatch, Money, minor_units


def test_amounts_are_exact_decimals():
    total = Money("0.10", "USD") + Money("0.20", "USD")
    assert total == Money("0.30", "USD")
    assert isinstance(total.amount, Decimal)


def test_float_amounts_are_rejected():
    with pytest.raises(TypeError):
        Money(0.1, "USD")


def test_currency_codes_are_normalised():
    assert Money("1", "eur").currency == "EUR"
    with pytest.raises(ValueError):
        Money("1", "EURO")


def test_mixing_currencies_is_an_error():
    with pytest.raises(CurrencyMismatch):
        Money("1", "USD") + Money("1", "EUR")


def test_parse_accepts_both_orders():
    assert Money.parse("12.50 USD") == Money("12.50", "USD")
    assert Money.parse("USD 12.50") == Money("12.50", "USD")


def test_minor_units():
    assert minor_units("JPY") == 0
    assert minor_units("usd") == 2
    assert minor_units("BHD") == 3


def test_rounded_uses_the_currency_minor_unit():
    assert Money("1234.567", "USD").rounded().amount == Decimal("1234.57")
    assert Money("1234.4", "JPY").rounded().amount == Decimal("1234")


def test_allocate_even_split():
    parts = Money("10.00", "USD").allocate([1, 1])
    assert parts == [Money("5.00", "USD"), Money("5.00", "USD")]


def test_format_with_thousands_separator():
    assert Money("1234567.5", "USD").format() == "1,234,567.50 USD"
    assert Money("-42", "JPY").format() == "-42 JPY"
