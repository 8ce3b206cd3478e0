from datetime import datetime

import pytest

from cronlite.errors import CronError
from cronlite.schedule import iter_runs, next_run, previous_run


def test_next_run_same_day():
    assert next_run("30 14 * * *", datetime(2024, 3, 5, 9, 12)) == datetime(2024, 3, 5, 14, 30)


def test_next_run_rolls_to_next_day():
    assert next_run("30 14 * * *", datetime(2024, 3, 5, 15, 0)) == datetime(2024, 3, 6, 14, 30)


def test_next_run_drops_seconds():
    assert next_run("* * * * *", datetime(2024, 3, 5, 9, 12, 30)) == datetime(2024, 3, 5, 9, 13)


def test_next_run_skips_short_months():
    assert next_run("0 12 31 * *", datetime(2024, 4, 1)) == datetime(2024, 5, 31, 12, 0)


def test_impossible_schedule_raises():
    with pytest.raises(CronError, match="never fires"):
        next_run("0 0 30 2 *", datetime(2024, 1, 1))


def test_previous_run():
    assert previous_run("0 */6 * * *", datetime(2024, 3, 5, 13, 59)) == datetime(2024, 3, 5, 12, 0)


def test_iter_runs_until_end():
    runs = list(iter_runs("0 */8 * * *", datetime(2024, 3, 5, 1, 0), datetime(2024, 3, 6, 12, 0)))
    assert runs == [
        datetime(2024, 3, 5, 8, 0),
        datetime(2024, 3, 5, 16, 0),
        datetime(2024, 3, 6, 0, 0),
        datetime(2024, 3, 6, 8, 0),
    ]
