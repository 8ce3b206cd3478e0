"""Next and previous fire times of a cron expression, and iteration over upcoming runs.

Times are naive or aware datetimes treated as wall-clock time: the search steps through
calendar fields and keeps ``tzinfo`` as given, without daylight-saving adjustment.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

from cronlite.errors import CronError
from cronlite.expression import CronExpression

# Feb 29 recurs at most 8 years apart (e.g. 2096 -> 2104); beyond that a schedule never fires.
_SEARCH_YEARS = 8


def _coerce(expression: CronExpression | str) -> CronExpression:
    return expression if isinstance(expression, CronExpression) else CronExpression.parse(expression)


def _start_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1, day=1, hour=0, minute=0)
    return moment.replace(month=moment.month + 1, day=1, hour=0, minute=0)


def next_run(expression: CronExpression | str, after: datetime) -> datetime:
    """The first time strictly after ``after`` at which ``expression`` fires (whole minutes)."""
    cron = _coerce(expression)
    candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    last_year = candidate.year + _SEARCH_YEARS
    while candidate.year <= last_year:
        if candidate.month not in cron.months:
            candidate = _start_of_next_month(candidate)
        elif not cron.matches_day(candidate.date()):
            candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
        elif candidate.hour not in cron.hours:
            candidate = candidate.replace(minute=0) + timedelta(hours=1)
        elif candidate.minute not in cron.minutes:
            candidate += timedelta(minutes=1)
        else:
            return candidate
    raise CronError(f"{cron.source!r} never fires within {_SEARCH_YEARS} years after {after.isoformat()}")


def previous_run(expression: CronExpression | str, before: datetime) -> datetime:
    """The last time strictly before ``before`` at which ``expression`` fires (whole minutes)."""
    cron = _coerce(expression)
    candidate = before.replace(second=0, microsecond=0)
    if candidate == before:
        candidate -= timedelta(minutes=1)
    first_year = candidate.year - _SEARCH_YEARS
    while candidate.year >= first_year:
        if not cron.matches_day(candidate.date()):
            candidate = candidate.replace(hour=23, minute=59) - timedelta(days=1)
        elif candidate.hour not in cron.hours:
            candidate = candidate.replace(minute=59) - timedelta(hours=1)
        elif candidate.minute not in cron.minutes:
            candidate -= timedelta(minutes=1)
        else:
            return candidate
    raise CronError(f"{cron.source!r} never fired within {_SEARCH_YEARS} years before {before.isoformat()}")


def iter_runs(
    expression: CronExpression | str, start: datetime, end: datetime | None = None
) -> Iterator[datetime]:
    """Fire times strictly after ``start`` and, if ``end`` is given, not after ``end``."""
    cron = _coerce(expression)
    moment = start
    while True:
        moment = next_run(cron, moment)
        if end is not None and moment > end:
            return
        yield moment
