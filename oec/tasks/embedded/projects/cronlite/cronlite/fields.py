"""Parsing of one cron field ("*/15", "1-5", "MON-FRI", "1,15,30") into the set of values it allows."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from cronlite.errors import CronError

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class FieldSpec:
    """The legal values of one field; ``names`` maps upper-case aliases to numbers.

    ``wrap`` is the number of distinct values when ``high`` is an alias of ``low`` (weekday 7 is
    Sunday like 0), so parsed values are reduced modulo ``wrap``.
    """

    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    wrap: int | None = None


MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY = FieldSpec("day of month", 1, 31)
MONTH = FieldSpec("month", 1, 12, {name: number for number, name in enumerate(_MONTH_NAMES, start=1)})
WEEKDAY = FieldSpec("day of week", 0, 7, {name: number for number, name in enumerate(_WEEKDAY_NAMES)}, wrap=7)


def _value(text: str, spec: FieldSpec) -> int:
    token = text.strip().upper()
    if token in spec.names:
        return spec.names[token]
    if not token.isdigit():
        raise CronError(f"invalid value {text!r} in {spec.name} field")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise CronError(f"{spec.name} value {number} is outside {spec.low}-{spec.high}")
    return number


def _parse_item(item: str, spec: FieldSpec) -> set[int]:
    if not item:
        raise CronError(f"empty list item in {spec.name} field")
    range_text, has_step, step_text = item.partition("/")
    step = 1
    if has_step:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"invalid step {step_text!r} in {spec.name} field")
        step = int(step_text)
    if range_text == "*":
        low, high = spec.low, spec.high
    elif "-" in range_text:
        start, end = range_text.split("-", 1)
        low, high = _value(start, spec), _value(end, spec)
        if low > high:
            raise CronError(f"range {range_text!r} in {spec.name} field runs backwards")
    else:
        low = _value(range_text, spec)
        # "5/15" is shorthand for "5-<max>/15", as in Vixie cron.
        high = spec.high if has_step else low
    return set(range(low, high + 1, step))


def parse_field(text: str, spec: FieldSpec) -> frozenset[int]:
    """The values allowed by ``text``, a comma-separated list of values, ranges and steps."""
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, spec)
    if spec.wrap is not None:
        values = {value % spec.wrap for value in values}
    return frozenset(values)
