from datetime import datetime

import pytest

from cronlite.errors import CronError
from cronlite.expression import CronExpression


def test_parse_fields():
    cron = CronExpression.parse("*/30 9-17 1 * *")
    assert cron.minutes == {0, 30}
    assert cron.hours == frozenset(range(9, 18))
    assert cron.days == {1}
    assert cron.day_restricted and not cron.weekday_restricted


def test_macro_expands():
    assert CronExpression.parse("@hourly").minutes == {0}
    assert str(CronExpression.parse(" @daily ")) == "@daily"


def test_wrong_field_count_is_reported():
    with pytest.raises(CronError, match="expected 5 fields, got 4"):
        CronExpression.parse("* * * *")


def test_matches_minute_and_hour():
    cron = CronExpression.parse("15 10 * * *")
    assert cron.matches(datetime(2024, 5, 17, 10, 15, 42))
    assert not cron.matches(datetime(2024, 5, 17, 11, 15))


def test_month_restriction():
    cron = CronExpression.parse("0 0 * JUN *")
    assert cron.matches(datetime(2024, 6, 3))
    assert not cron.matches(datetime(2024, 7, 3))
