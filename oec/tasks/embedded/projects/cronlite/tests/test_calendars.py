from datetime import date

import pytest

from cronlite.calendars import add_months, business_days_between, days_in_month, is_leap_year, nth_weekday


def test_leap_years():
    assert is_leap_year(2024)
    assert not is_leap_year(2023)
    assert days_in_month(2024, 2) == 29


def test_days_in_month_rejects_bad_month():
    with pytest.raises(ValueError, match="13"):
        days_in_month(2024, 13)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 11, 15), 3) == date(2025, 2, 15)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)


def test_nth_weekday_thanksgiving():
    assert nth_weekday(2024, 11, 3, 4) == date(2024, 11, 28)


def test_business_days_skip_weekend_and_holidays():
    assert business_days_between(date(2024, 6, 3), date(2024, 6, 8), holidays=[date(2024, 6, 5)]) == 4
