"""Calendar arithmetic that the standard library leaves out: month shifts, nth weekdays, business days.

Weekdays here use Python's convention (Monday = 0 ... Sunday = 6), unlike cron fields.
"""

from collections.abc import Iterable
from datetime import date, timedelta


def is_leap_year(year: int) -> bool:
    """Gregorian leap year: divisible by 4, except centuries not divisible by 400."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    """Number of days in ``month`` (1-12) of ``year``."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be in 1-12, got {month}")
    if month == 2:
        return 29 if is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def add_months(day: date, months: int) -> date:
    """Shift ``day`` by ``months`` (may be negative), clamping to the last day of a shorter month."""
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month_index + 1
    return date(year, month, min(day.day, days_in_month(year, month)))


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` of the month (n = 1 first, n = -1 last), e.g. Thanksgiving = (11, 3, 4)."""
    if n == 0 or not 0 <= weekday <= 6:
        raise ValueError(f"need n != 0 and weekday in 0-6, got n={n}, weekday={weekday}")
    if n > 0:
        first = date(year, month, 1)
        result = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    else:
        last = date(year, month, days_in_month(year, month))
        result = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-n - 1))
    if result.month != month:
        raise ValueError(f"month {year}-{month:02d} has no weekday {weekday} number {n}")
    return result


def business_days_between(start: date, end: date, holidays: Iterable[date] = ()) -> int:
    """Count Monday-Friday days in ``[start, end)`` that are not holidays; negative if end < start."""
    if end < start:
        return -business_days_between(end, start, holidays)
    closed = set(holidays)
    count = 0
    day = start
    while day < end:
        if day.weekday() < 5 and day not in closed:
            count += 1
        day += timedelta(days=1)
    return count
