import pytest

from cronlite.errors import CronError
from cronlite.fields import HOUR, MINUTE, MONTH, WEEKDAY, parse_field


def test_star_covers_whole_range():
    assert parse_field("*", HOUR) == frozenset(range(24))


def test_lists_ranges_and_steps():
    assert parse_field("0-10/5,30,45-47", MINUTE) == {0, 5, 10, 30, 45, 46, 47}


def test_star_with_step():
    assert parse_field("*/15", MINUTE) == {0, 15, 30, 45}


def test_month_names():
    assert parse_field("JAN,MAR-MAY", MONTH) == {1, 3, 4, 5}


def test_weekday_names():
    assert parse_field("MON-FRI", WEEKDAY) == {1, 2, 3, 4, 5}


def test_invalid_minute_fields_name_the_field():
    for text in ["60", "1-", "5-1", "*/0", "a", "1,,2"]:
        with pytest.raises(CronError, match="minute"):
            parse_field(text, MINUTE)
