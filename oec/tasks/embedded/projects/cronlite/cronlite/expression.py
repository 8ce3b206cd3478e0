"""Five-field cron expressions ("minute hour day month weekday") and the times they match.

Day matching follows Vixie cron: when both the day-of-month and the day-of-week fields are
restricted (neither starts with ``*``), a day matches if EITHER field matches; otherwise both must.
"""

from dataclasses import dataclass
from datetime import date, datetime

from cronlite.errors import CronError
from cronlite.fields import DAY, HOUR, MINUTE, MONTH, WEEKDAY, parse_field

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; build it with :meth:`parse`. Weekdays count from Sunday = 0."""

    source: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, text: str) -> "CronExpression":
        """Parse five whitespace-separated fields or one of the ``@`` macros (e.g. ``@daily``)."""
        stripped = text.strip()
        expanded = MACROS.get(stripped.lower(), stripped)
        fields = expanded.split()
        if len(fields) != 5:
            raise CronError(f"expected 5 fields, got {len(fields)} in {text!r}")
        minute, hour, day, month, weekday = fields
        return cls(
            source=stripped,
            minutes=parse_field(minute, MINUTE),
            hours=parse_field(hour, HOUR),
            days=parse_field(day, DAY),
            months=parse_field(month, MONTH),
            weekdays=parse_field(weekday, WEEKDAY),
            day_restricted=not day.startswith("*"),
            weekday_restricted=not weekday.startswith("*"),
        )

    def matches_day(self, day: date) -> bool:
        """Whether the expression can fire at some time on ``day``."""
        if day.month not in self.months:
            return False
        day_ok = day.day in self.days
        # date.weekday() counts from Monday = 0; cron counts from Sunday = 0.
        weekday_ok = day.isoweekday() % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def matches(self, moment: datetime) -> bool:
        """Whether the expression fires at ``moment`` (seconds are ignored)."""
        return moment.minute in self.minutes and moment.hour in self.hours and self.matches_day(moment.date())

    def __str__(self) -> str:
        return self.source
