import datetime
from decimal import Decimal

import pytest

from ledger.money import Money
from ledger.rates import ExchangeRates, RateNotFound

D = datetime.date


def test_latest_rate_before_the_date():
    rates = ExchangeRates()
    rates.add(D(2024, 1, 1), "EUR", "USD", "1.10")
    rates.add(D(2024, 1, 10), "EUR", "USD", "1.20")
    assert rates.rate("EUR", "USD", D(2024, 1, 5)) == Decimal("1.10")
    assert rates.rate("EUR", "USD", D(2024, 2, 1)) == Decimal("1.20")


def test_no_rate_before_the_first_one():
    rates = ExchangeRates()
    rates.add(D(2024, 1, 10), "EUR", "USD", "1.10")
    with pytest.raises(RateNotFound):
        rates.rate("EUR", "USD", D(2024, 1, 1))


def test_same_currency_rate_is_one():
    assert ExchangeRates().rate("usd", "USD", D(2024, 1, 1)) == 1


def test_convert_rounds_to_target_currency():
    rates = ExchangeRates()
    rates.add(D(2024, 1, 1), "USD", "JPY", "148.537")
    assert rates.convert(Money("10", "USD"), "JPY", D(2024, 1, 2)) == Money("1485", "JPY")


def test_rates_must_be_positive():
    with pytest.raises(ValueError):
        ExchangeRates().add(D(2024, 1, 1), "EUR", "USD", "0")
