"""Time values of the shared state: epoch seconds inside, aware datetimes outside."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Moment = datetime | float | int


def to_epoch(value: Moment, what: str = "time") -> float:
    """An aware datetime or epoch seconds -> epoch seconds; a naive datetime is refused (which zone?)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what} {value.isoformat()} has no time zone; give an aware datetime")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a datetime or epoch seconds, not {type(value).__name__}")
    return float(value)


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Asia/Almaty)") from None


# Every zone's offset since the 1970s is a whole number of quarter-hours, so a quarter-hour of UTC falls
# in one local day and hour, unless a clock change falls inside it: the writer converts each call's start
# and end (2.8 us each) once per quarter-hour instead.
_QUARTER = 900
_day_hour: dict[tuple[ZoneInfo, int], tuple[str, int]] = {}


def local_day_hour(epoch: float, tz: ZoneInfo) -> tuple[str, int]:
    """The local date (YYYY-MM-DD) and hour of an epoch moment: the hourly rollup's key."""
    key = (tz, int(epoch // _QUARTER))
    found = _day_hour.get(key)
    if found is None:
        start = key[1] * _QUARTER
        found = _convert(start, tz)
        if _convert(start + _QUARTER - 0.001, tz) != found:  # a clock change inside: this moment alone
            return _convert(epoch, tz)
        if len(_day_hour) >= 4096:  # a year of quarter-hours is 35,000: keep only recent ones
            _day_hour.clear()
        _day_hour[key] = found
    return found


def _convert(epoch: float, tz: ZoneInfo) -> tuple[str, int]:
    moment = datetime.fromtimestamp(epoch, tz)
    return moment.strftime("%Y-%m-%d"), moment.hour


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '2h', '1.5d' -> timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 90s, 30m, 2h, 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return timedelta(seconds=seconds)


def parse_moment(text: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 date or date-time; without an offset it is the centre's local time."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date-time (e.g. 2025-03-01T09:30 or 2025-03-01T09:30+05:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
