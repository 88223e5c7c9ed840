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


def local_day_hour(epoch: float, tz: ZoneInfo) -> tuple[str, int]:
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
