"""cronlite: a small, dependency-free scheduling toolkit.

Cron expressions (ranges, steps, lists, month and weekday names, macros), next and previous run
computation, human-readable durations, calendar helpers and an in-memory job registry. Nothing
reads the wall clock: every function takes the reference time as an argument.
"""

from cronlite.calendars import add_months, business_days_between, days_in_month, is_leap_year, nth_weekday
from cronlite.durations import format_duration, parse_duration
from cronlite.errors import CronError
from cronlite.expression import CronExpression
from cronlite.fields import DAY, HOUR, MINUTE, MONTH, WEEKDAY, FieldSpec, parse_field
from cronlite.registry import Job, JobRegistry, RunResult
from cronlite.schedule import iter_runs, next_run, previous_run

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "MONTH",
    "WEEKDAY",
    "CronError",
    "CronExpression",
    "FieldSpec",
    "Job",
    "JobRegistry",
    "RunResult",
    "add_months",
    "business_days_between",
    "days_in_month",
    "format_duration",
    "is_leap_year",
    "iter_runs",
    "next_run",
    "nth_weekday",
    "parse_duration",
    "parse_field",
    "previous_run",
]
