from datetime import timedelta

import pytest

from cronlite.durations import format_duration, parse_duration
from cronlite.errors import CronError


def test_parse_compound_duration():
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)


def test_parse_spaces_fractions_and_sign():
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("-1w 2d") == -timedelta(days=9)


def test_parse_rejects_garbage():
    for text in ["", "10", "1h30x", "h", "1h 2"]:
        with pytest.raises(CronError):
            parse_duration(text)


def test_format_duration_round_trip():
    for text in ["1h30m", "45s", "2h5s"]:
        assert format_duration(parse_duration(text)) == text


def test_format_zero():
    assert format_duration(timedelta()) == "0s"
