"""Human-readable durations: ``"1h30m"``, ``"2d 4h"``, ``"1.5h"``, ``"250ms"`` <-> ``timedelta``."""

import re
from datetime import timedelta

from cronlite.errors import CronError

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
# "ms" must be tried before "m", or "250ms" would read as 250 minutes followed by a stray "s".
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")
_FORMAT_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> timedelta:
    """Parse a sequence of ``<number><unit>`` parts, optionally signed and space-separated.

    Units: w, d, h, m, s, ms. Every character must belong to a part, so typos such as
    ``"1h30x"`` are errors rather than silently ignored.
    """
    stripped = text.strip()
    sign = -1 if stripped.startswith("-") else 1
    body = stripped.lstrip("+-").strip()
    if not body:
        raise CronError(f"empty duration {text!r}")
    position = 0
    total = 0.0
    for match in _PART.finditer(body):
        if body[position : match.start()].strip():
            raise CronError(f"invalid duration {text!r}: unexpected {body[position : match.start()]!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or body[position:].strip():
        raise CronError(f"invalid duration {text!r}: expected parts like '1h30m'")
    return timedelta(seconds=sign * total)


def format_duration(duration: timedelta) -> str:
    """The shortest ``parse_duration`` text for ``duration``, e.g. ``"1d2h"``; milliseconds are kept."""
    milliseconds = round(duration.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    sign = "-" if milliseconds < 0 else ""
    seconds, millis = divmod(abs(milliseconds), 1000)
    parts = []
    for unit, size in _FORMAT_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return sign + "".join(parts)
