"""Human durations as ops write them: `30s`, `15m`, `4h`, `2d`, `1w`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
#: Far beyond any real follow-up; keeps `opened_at + due_in` a representable date instead of an OverflowError.
MAX_DURATION = timedelta(days=3650)


def parse_duration(value: object) -> timedelta:
    """Parse `4h` into a timedelta; a timedelta passes through. Raises ValueError naming the problem."""
    if isinstance(value, timedelta):
        return value
    match = _PATTERN.match(value) if isinstance(value, str) else None
    if match:
        try:
            duration = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        except OverflowError:  # `9999999999d`: a ValueError names the file and line, an OverflowError crashes
            duration = MAX_DURATION * 2
        if duration > MAX_DURATION:
            raise ValueError(f"bad duration {value!r}: at most {format_duration(MAX_DURATION)}")
        if duration > timedelta(0):  # `0.0000001s` rounds to zero
            return duration
    raise ValueError(f"bad duration {value!r}: use a positive number and a unit, like 30s, 15m, 4h, 2d or 1w")


def format_duration(value: timedelta) -> str:
    """A short exact form, as people write it: 5400 s -> '90m', 86400 s -> '24h', 7 days -> '7d'."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0 and (unit != "d" or seconds >= 2 * 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: A pydantic field type: accepts `4h` (or a timedelta), serialises back to `4h`.
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
