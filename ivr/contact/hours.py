"""Opening hours of the operator desk: when a caller may be queued, and when to offer a callback instead.

Times are wall-clock times in the centre's timezone (Asia/Almaty for 1414). Kazakhstan moved to a
single UTC+5 zone on 1 March 2024; current tzdata has Asia/Almaty at UTC+5 (it was UTC+6 before).
Where the zone database is missing (a bare CI container without /usr/share/zoneinfo and without
the `tzdata` wheel) the Kazakh zones fall back to a fixed UTC+5 offset, which is exact since 2024
because Kazakhstan has no daylight saving time.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

DEFAULT_TIMEZONE = "Asia/Almaty"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Every Kazakh zone has been UTC+5 since 2024-03-01 (the 2024a tzdata release).
_KAZAKH_ZONES = frozenset(
    {
        "Asia/Almaty",
        "Asia/Astana",
        "Asia/Qostanay",
        "Asia/Aqtobe",
        "Asia/Aqtau",
        "Asia/Atyrau",
        "Asia/Oral",
        "Asia/Qyzylorda",
    }
)
_KAZAKHSTAN_OFFSET = dt.timezone(dt.timedelta(hours=5), "UTC+05")

# Longest stretch searched for the next opening: a year plus slack for a run of holidays.
_SEARCH_DAYS = 400


class HoursError(ValueError):
    """An opening-hours setting is malformed; the message names the key and the expected form."""


def resolve_timezone(name: str) -> dt.tzinfo:
    """The zone by IANA name; a Kazakh zone falls back to fixed UTC+5 when tzdata is absent."""
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        if name in _KAZAKH_ZONES:
            return _KAZAKHSTAN_OFFSET
        raise HoursError(
            f"timezone {name!r}: unknown zone (expected an IANA name such as Asia/Almaty)"
        ) from None
    except ValueError as exc:  # malformed key such as "../etc"
        raise HoursError(f"timezone {name!r}: {exc}") from None


def _parse_clock(text: str, where: str, *, closing: bool = False) -> dt.time:
    try:
        hours, minutes = (int(part) for part in text.strip().split(":"))
        if closing and (hours, minutes) == (24, 0):
            return dt.time.max  # "18:00-24:00": open to midnight
        return dt.time(hours, minutes)
    except ValueError:
        raise HoursError(f"{where}: {text!r} is not a time; expected HH:MM such as 09:00") from None


@attrs.frozen
class DayHours:
    """One open period in a day, [open, close): open at 09:00 means 09:00:00 is open, 18:00 is closed."""

    open: dt.time
    close: dt.time

    def __attrs_post_init__(self) -> None:
        if self.close <= self.open:
            raise HoursError(f"closing time {self.close:%H:%M} is not after opening time {self.open:%H:%M}")

    @classmethod
    def parse(cls, text: str, where: str = "hours") -> DayHours:
        """'09:00-18:00' -> DayHours(09:00, 18:00); '24:00' closes at midnight."""
        if not isinstance(text, str) or "-" not in text:
            raise HoursError(
                f"{where}: {text!r} is not an opening period; expected 'HH:MM-HH:MM' such as '09:00-18:00'"
            )
        start, _, end = text.partition("-")
        opening, closing = _parse_clock(start, where), _parse_clock(end, where, closing=True)
        if closing <= opening:
            raise HoursError(
                f"{where}: closing time {closing:%H:%M} is not after opening time {opening:%H:%M}"
            )
        return cls(opening, closing)

    def contains(self, moment: dt.time) -> bool:
        return self.open <= moment < self.close

    def __str__(self) -> str:
        return f"{self.open:%H:%M}-{'24:00' if self.close == dt.time.max else format(self.close, '%H:%M')}"


# A day's opening periods in time order; empty: closed all day.
Periods = tuple[DayHours, ...]
OFFICE_DAY: Periods = (DayHours(dt.time(9), dt.time(18)),)


def periods(value: Any, where: str) -> Periods:
    """A day's periods from config: 'closed' / None / '09:00-18:00' / ['09:00-13:00', '14:00-18:00']."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "closed"):
        return ()
    items = list(value) if isinstance(value, list | tuple) else [value]
    parsed = sorted(
        (item if isinstance(item, DayHours) else DayHours.parse(item, where) for item in items),
        key=lambda period: period.open,
    )
    for earlier, later in itertools.pairwise(parsed):
        if later.open < earlier.close:
            raise HoursError(f"{where}: periods {earlier} and {later} overlap")
    return tuple(parsed)


def _weekday_index(name: str, where: str) -> int:
    key = str(name).strip().lower()[:3]
    if key not in WEEKDAYS:
        raise HoursError(f"{where}: {name!r} is not a weekday; expected one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


def _parse_date(value: Any, where: str) -> dt.date:
    # YAML already turns 2026-01-01 into a date; TOML and JSON give strings.
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise HoursError(
            f"{where}: {value!r} is not a date; expected YYYY-MM-DD such as 2026-03-21"
        ) from None


# Fixed-date public holidays (month, day) that move to the next working day when on a weekend.
_FIXED_HOLIDAYS = (
    (1, 1),
    (1, 2),
    (3, 8),
    (3, 21),
    (3, 22),
    (3, 23),
    (5, 1),
    (5, 7),
    (5, 9),
    (7, 6),
    (8, 30),
    (10, 25),
    (12, 16),
)


def kazakhstan_public_holidays(year: int, *, kurban_ait: dt.date | None = None) -> frozenset[dt.date]:
    """Days off for Kazakhstan's public holidays in `year`, with the weekend transfers the law makes.

    Fixed-date holidays (Law "On holidays in the Republic of Kazakhstan", as amended in 2022-2023):
    New Year 1-2 Jan, Orthodox Christmas 7 Jan, International Women's Day 8 Mar, Nauryz 21-23 Mar,
    Unity Day 1 May, Defender of the Fatherland Day 7 May, Victory Day 9 May, Capital Day 6 Jul,
    Constitution Day 30 Aug, Republic Day 25 Oct, Independence Day 16 Dec.
    Labour Code art. 85: a holiday that falls on Saturday or Sunday moves the day off to the next
    working day, except the religious holidays (Orthodox Christmas, Kurban Ait's first day).

    Kurban Ait follows the lunar calendar and its date is announced each year, so it is not
    computed here: pass it (or list it under `holidays` in the menu) once it is announced.
    Day swaps the government decrees (a working Saturday for a bridge Monday) are config too
    (`special_days`).
    """
    transferable = [dt.date(year, month, day) for month, day in _FIXED_HOLIDAYS]
    religious = [dt.date(year, 1, 7)]
    if kurban_ait is not None:
        if kurban_ait.year != year:
            raise HoursError(f"kurban_ait {kurban_ait} is not in {year}")
        religious.append(kurban_ait)
    days_off = set(transferable) | set(religious)
    for holiday in transferable:
        if holiday.weekday() < 5:
            continue
        moved = holiday + dt.timedelta(days=1)
        while moved.weekday() >= 5 or moved in days_off:
            moved += dt.timedelta(days=1)
        days_off.add(moved)
    return frozenset(days_off)


def _freeze_week(week: Mapping[int, Any] | Iterable[Any]) -> tuple[Periods, ...]:
    if isinstance(week, Mapping):
        days = [week.get(day) for day in range(7)]
    else:
        days = list(week)
        if len(days) != 7:
            raise HoursError(f"week needs 7 entries, Monday first; got {len(days)}")
    return tuple(periods(day, f"week.{WEEKDAYS[index]}") for index, day in enumerate(days))


def _freeze_special(days: Mapping[dt.date, Any]) -> Mapping[dt.date, Periods]:
    return MappingProxyType(
        {day: periods(value, f"special_days.{day}") for day, value in sorted(days.items())}
    )


@attrs.frozen
class OpeningHours:
    """When operators answer: a weekly timetable, holidays and special days in one timezone.

    `week` has 7 entries, Monday first, each a day's periods (empty: closed); a DayHours or
    'HH:MM-HH:MM' alone is accepted for a single period. `special_days` override everything else
    for their date: periods for a shortened or extra working day (a Saturday worked in exchange
    for a bridge Monday), empty for an extra day off. Datetimes passed in must be timezone-aware
    (UTC from the engine's clock is fine); results are in the centre's timezone.
    """

    timezone: dt.tzinfo = attrs.field(factory=lambda: resolve_timezone(DEFAULT_TIMEZONE))
    week: tuple[Periods, ...] = attrs.field(
        factory=lambda: (OFFICE_DAY,) * 5 + ((), ()), converter=_freeze_week
    )
    holidays: frozenset[dt.date] = attrs.field(factory=frozenset, converter=frozenset)
    special_days: Mapping[dt.date, Periods] = attrs.field(factory=dict, converter=_freeze_special)

    @classmethod
    def kazakhstan_1414(cls, years: Iterable[int] = (2026, 2027)) -> OpeningHours:
        """The 1414 default: Mon-Fri 09:00-18:00 Asia/Almaty, closed on Kazakhstan's public holidays."""
        holidays: set[dt.date] = set()
        for year in years:
            holidays |= kazakhstan_public_holidays(year)
        return cls(holidays=frozenset(holidays))

    @classmethod
    def from_menu_hours(cls, hours: Any) -> OpeningHours:
        """From a loaded menu's `hours` (ivr.menus.model.Hours: timezone name, week of
        {mon: ((open, close), ...)}, holidays), already validated by the menu loader."""
        week = {
            WEEKDAYS.index(day): tuple(DayHours(opens, closes) for opens, closes in intervals)
            for day, intervals in hours.week.items()
        }
        return cls(timezone=resolve_timezone(hours.timezone), week=week, holidays=frozenset(hours.holidays))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OpeningHours:
        """Build from an `hours:` mapping (a menu file or ivr.toml). Accepted keys:

        timezone: Asia/Almaty
        week: {mon: "09:00-18:00", ..., sat: ["10:00-13:00", "14:00-16:00"], sun: closed}, or the
        short form  open: "09:00"  close: "18:00"  days: [mon, tue, wed, thu, fri]
        holidays: [2026-05-27, ...]
        public_holidays: KZ               (add Kazakhstan's holidays for public_holiday_years)
        public_holiday_years: [2026, 2027]
        special_days: {2026-03-07: "09:00-13:00", 2026-12-31: closed}
        Without week or the short form: Mon-Fri 09:00-18:00.
        """
        if not isinstance(data, Mapping):
            raise HoursError(f"hours: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - _MAPPING_KEYS)
        if unknown:
            raise HoursError(
                f"hours: unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(_MAPPING_KEYS))})"
            )

        timezone = resolve_timezone(str(data.get("timezone", DEFAULT_TIMEZONE)))
        week = _week_from_mapping(data)
        holidays = {
            _parse_date(day, f"hours.holidays[{i}]") for i, day in enumerate(_as_list(data, "holidays"))
        }
        country = data.get("public_holidays")
        if country is not None:
            if str(country).upper() != "KZ":
                raise HoursError(f"hours.public_holidays: {country!r} is not supported; only KZ (Kazakhstan)")
            years = _as_list(data, "public_holiday_years") or [2026, 2027]
            for year in years:
                if not isinstance(year, int) or isinstance(year, bool):
                    raise HoursError(f"hours.public_holiday_years: {year!r} is not a year")
                holidays |= kazakhstan_public_holidays(year)
        special = data.get("special_days") or {}
        if not isinstance(special, Mapping):
            raise HoursError("hours.special_days: expected a mapping of date -> 'HH:MM-HH:MM' or closed")
        special_days = {
            _parse_date(day, "hours.special_days"): periods(value, f"hours.special_days.{day}")
            for day, value in special.items()
        }
        if not any(week) and not any(special_days.values()):
            raise HoursError("hours: no day is open; give at least one weekday opening period")
        return cls(timezone=timezone, week=week, holidays=frozenset(holidays), special_days=special_days)

    # ---- questions the engine asks -------------------------------------------------------------

    def hours_on(self, day: dt.date) -> Periods:
        """The opening periods on a local calendar date; empty when closed all day."""
        if day in self.special_days:
            return self.special_days[day]
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def is_open(self, now: dt.datetime) -> bool:
        return self._current_period(self._local(now)) is not None

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the current open period ends, or None when closed now."""
        local = self._local(now)
        period = self._current_period(local)
        if period is None:
            return None
        if period.close == dt.time.max:  # open to midnight: closes at the start of the next day
            return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=self.timezone)
        return dt.datetime.combine(local.date(), period.close, tzinfo=self.timezone)

    def closing_soon(self, now: dt.datetime, minutes: float) -> bool:
        """Open now but closing within `minutes`: too late to join a queue with a long wait."""
        closing = self.closes_at(now)
        return closing is not None and closing - self._local(now) <= dt.timedelta(minutes=minutes)

    def next_opening(self, now: dt.datetime) -> dt.datetime:
        """The moment operators are next available: `now` itself (in local time) when open now."""
        local = self._local(now)
        if self._current_period(local) is not None:
            return local
        for offset in range(_SEARCH_DAYS):
            day = local.date() + dt.timedelta(days=offset)
            for period in self.hours_on(day):
                opening = dt.datetime.combine(day, period.open, tzinfo=self.timezone)
                if opening > local:
                    return opening
        raise HoursError(
            f"no opening within {_SEARCH_DAYS} days of {local:%Y-%m-%d}: check hours and holidays"
        )

    def _current_period(self, local: dt.datetime) -> DayHours | None:
        moment = local.time().replace(tzinfo=None)
        return next((p for p in self.hours_on(local.date()) if p.contains(moment)), None)

    def _local(self, now: dt.datetime) -> dt.datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"{now!r} has no timezone; pass an aware datetime such as datetime.now(UTC)")
        return now.astimezone(self.timezone)


_MAPPING_KEYS = frozenset(
    {
        "timezone",
        "open",
        "close",
        "days",
        "week",
        "holidays",
        "public_holidays",
        "public_holiday_years",
        "special_days",
    }
)


def _as_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise HoursError(f"hours.{key}: expected a list, got {value!r}")
    return list(value)


def _week_from_mapping(data: Mapping[str, Any]) -> tuple[Periods, ...]:
    short_form = {"open", "close", "days"} & set(data)
    if "week" in data and short_form:
        raise HoursError(f"hours: give either week or {'/'.join(sorted(short_form))}, not both")
    if "week" in data:
        week_data = data["week"]
        if not isinstance(week_data, Mapping):
            raise HoursError("hours.week: expected a mapping such as {mon: '09:00-18:00', sun: closed}")
        week: list[Periods] = [()] * 7
        for name, value in week_data.items():
            week[_weekday_index(name, "hours.week")] = periods(value, f"hours.week.{name}")
        return tuple(week)
    if not short_form:
        return (OFFICE_DAY,) * 5 + ((), ())
    missing = [key for key in ("open", "close") if key not in data]
    if missing:
        raise HoursError(f"hours: {' and '.join(missing)} missing; the short form needs open, close and days")
    period = DayHours.parse(f"{data['open']}-{data['close']}", "hours.open/close")
    open_days = {_weekday_index(day, "hours.days") for day in _as_list(data, "days") or WEEKDAYS[:5]}
    return tuple((period,) if day in open_days else () for day in range(7))


def dialled_at(hours: Any, due: dt.datetime, now: dt.datetime) -> dt.datetime:
    """When a callback due at `due` is dialled: once due (not before `now`), and only in opening hours,
    so a night's request goes out at the next opening. Hours without a calendar (forced open or closed,
    for tests and `ivr simulate`) keep the moment."""
    moment = max(due, now)
    if hours is None or hours.is_open(moment) or not hasattr(hours, "next_opening"):
        return moment
    return hours.next_opening(moment)
