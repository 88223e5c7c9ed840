"""Opening hours in Almaty time: the engine's clock is UTC, the desk works 09:00-18:00 UTC+5."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from ivr.contact.hours import (
    DayHours,
    HoursError,
    OpeningHours,
    kazakhstan_public_holidays,
    resolve_timezone,
)

UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def hours() -> OpeningHours:
    return OpeningHours.kazakhstan_1414()


# ---- the working day in Almaty time, from UTC instants ----------------------------------------


def test_almaty_is_utc_plus_five(hours):
    # Tuesday 2026-11-24 04:00 UTC is 09:00 in Almaty (UTC+5 since March 2024).
    assert utc(2026, 11, 24, 4).astimezone(hours.timezone).hour == 9


def test_opens_at_nine_almaty_exactly(hours):
    assert not hours.is_open(utc(2026, 11, 24, 3, 59, 59))
    assert hours.is_open(utc(2026, 11, 24, 4, 0, 0))


def test_closes_at_six_almaty_exactly(hours):
    assert hours.is_open(utc(2026, 11, 24, 12, 59, 59))
    assert not hours.is_open(utc(2026, 11, 24, 13, 0, 0))


def test_open_at_noon_on_a_weekday_in_another_zone(hours):
    # 12:00 in Almaty given as 10:00 in Moscow (UTC+3).
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert hours.is_open(dt.datetime(2026, 11, 24, 10, 0, tzinfo=moscow))


def test_weekend_is_closed(hours):
    assert not hours.is_open(utc(2026, 11, 28, 7))  # Saturday 12:00 Almaty
    assert not hours.is_open(utc(2026, 11, 29, 7))  # Sunday 12:00 Almaty


def test_utc_evening_before_is_already_the_next_local_day(hours):
    # Sunday 23:30 UTC is Monday 04:30 in Almaty: a weekday, but before opening.
    moment = utc(2026, 11, 29, 23, 30)
    assert not hours.is_open(moment)
    assert hours.next_opening(moment) == dt.datetime(2026, 11, 30, 9, 0, tzinfo=hours.timezone)


def test_naive_datetime_is_refused(hours):
    with pytest.raises(ValueError, match="no timezone"):
        hours.is_open(dt.datetime(2026, 11, 24, 12, 0))


# ---- holidays ------------------------------------------------------------------------------


def test_public_holiday_on_a_weekday_is_closed(hours):
    assert not hours.is_open(utc(2026, 12, 16, 7))  # Independence Day, Wednesday
    assert not hours.is_open(utc(2026, 5, 7, 7))  # Defender of the Fatherland Day, Thursday
    assert hours.is_open(utc(2026, 12, 17, 7))


def test_kazakhstan_holidays_2026_with_weekend_transfers():
    days = kazakhstan_public_holidays(2026)
    expected = {
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 2),
        dt.date(2026, 1, 7),
        dt.date(2026, 3, 8),  # Sunday ...
        dt.date(2026, 3, 9),  # ... moves to Monday
        dt.date(2026, 3, 21),  # Nauryz Saturday ...
        dt.date(2026, 3, 22),  # ... and Sunday ...
        dt.date(2026, 3, 23),
        dt.date(2026, 3, 24),  # ... move to the next working days after the holiday
        dt.date(2026, 3, 25),
        dt.date(2026, 5, 1),
        dt.date(2026, 5, 7),
        dt.date(2026, 5, 9),  # Saturday ...
        dt.date(2026, 5, 11),  # ... moves to Monday
        dt.date(2026, 7, 6),
        dt.date(2026, 8, 30),  # Sunday ...
        dt.date(2026, 8, 31),
        dt.date(2026, 10, 25),  # Sunday ...
        dt.date(2026, 10, 26),
        dt.date(2026, 12, 16),
    }
    assert days == expected


def test_kazakhstan_holidays_2027():
    days = kazakhstan_public_holidays(2027)
    assert dt.date(2027, 1, 4) in days  # 2 Jan is a Saturday
    assert dt.date(2027, 3, 24) in days  # 21 Mar is a Sunday; 22-23 are holidays already
    assert dt.date(2027, 5, 3) in days  # 1 May is a Saturday
    assert dt.date(2027, 5, 10) in days  # 9 May is a Sunday
    assert dt.date(2027, 3, 25) not in days
    assert len(days) == 18


def test_orthodox_christmas_and_kurban_ait_are_not_transferred():
    # 7 Jan 2029 is a Sunday: religious holidays give no extra Monday off.
    assert dt.date(2029, 1, 8) not in kazakhstan_public_holidays(2029)
    with_kurban = kazakhstan_public_holidays(2029, kurban_ait=dt.date(2029, 4, 22))  # a Sunday
    assert dt.date(2029, 4, 22) in with_kurban
    assert dt.date(2029, 4, 23) not in with_kurban


def test_kurban_ait_of_another_year_is_refused():
    with pytest.raises(HoursError, match="not in 2026"):
        kazakhstan_public_holidays(2026, kurban_ait=dt.date(2027, 5, 16))


# ---- next opening and closing soon ---------------------------------------------------------


def test_next_opening_across_a_weekend(hours):
    friday_evening = utc(2026, 11, 27, 14)  # Friday 19:00 Almaty
    assert hours.next_opening(friday_evening) == dt.datetime(2026, 11, 30, 9, 0, tzinfo=hours.timezone)


def test_next_opening_across_weekend_and_transferred_holidays(hours):
    # Friday 20 March 2026 18:00: Nauryz 21-23 and the two transferred days 24-25 follow the weekend.
    closing_time = utc(2026, 3, 20, 13)
    assert not hours.is_open(closing_time)
    assert hours.next_opening(closing_time) == dt.datetime(2026, 3, 26, 9, 0, tzinfo=hours.timezone)


def test_next_opening_same_morning(hours):
    early = utc(2026, 11, 24, 2)  # 07:00 Almaty
    assert hours.next_opening(early) == dt.datetime(2026, 11, 24, 9, 0, tzinfo=hours.timezone)


def test_next_opening_when_open_is_now(hours):
    moment = utc(2026, 11, 24, 6)
    assert hours.next_opening(moment) == moment
    assert hours.next_opening(moment).tzinfo is hours.timezone


def test_next_opening_over_new_year(hours):
    new_year_eve = utc(2026, 12, 31, 14)  # Thursday 19:00; 1-2 Jan holidays, then the weekend
    assert hours.next_opening(new_year_eve) == dt.datetime(2027, 1, 5, 9, 0, tzinfo=hours.timezone)


def test_closing_soon(hours):
    assert hours.closing_soon(utc(2026, 11, 24, 12, 50), minutes=15)  # 17:50
    assert not hours.closing_soon(utc(2026, 11, 24, 12, 30), minutes=15)  # 17:30
    assert not hours.closing_soon(utc(2026, 11, 24, 13, 5), minutes=15)  # closed: not "closing"
    assert hours.closes_at(utc(2026, 11, 24, 12, 50)) == dt.datetime(
        2026, 11, 24, 18, 0, tzinfo=hours.timezone
    )


# ---- configuration -------------------------------------------------------------------------


def test_from_mapping_short_form_of_the_design_brief():
    hours = OpeningHours.from_mapping(
        {
            "timezone": "Asia/Almaty",
            "open": "09:00",
            "close": "18:00",
            "days": ["mon", "tue", "wed", "thu", "fri"],
        }
    )
    assert hours.week[0] == (DayHours(dt.time(9), dt.time(18)),)
    assert hours.week[5] == ()
    assert hours.is_open(utc(2026, 11, 24, 4))


def test_from_mapping_week_with_lunch_break_special_days_and_public_holidays():
    hours = OpeningHours.from_mapping(
        {
            "week": {"mon": ["09:00-13:00", "14:00-18:00"], "sat": "10:00-14:00", "sun": "closed"},
            "holidays": ["2026-05-27"],
            "public_holidays": "KZ",
            "special_days": {dt.date(2026, 11, 29): "09:00-12:00", "2026-11-30": "closed"},
        }
    )
    assert hours.is_open(utc(2026, 11, 23, 5))  # Monday 10:00
    assert not hours.is_open(utc(2026, 11, 23, 8, 30))  # Monday 13:30: lunch
    assert hours.next_opening(utc(2026, 11, 23, 8, 30)) == dt.datetime(
        2026, 11, 23, 14, tzinfo=hours.timezone
    )
    assert not hours.is_open(utc(2026, 11, 24, 5))  # Tuesday: not in week, closed
    assert hours.is_open(utc(2026, 11, 28, 5))  # Saturday 10:00
    assert hours.is_open(utc(2026, 11, 29, 5))  # a Sunday worked as a special day
    assert not hours.is_open(utc(2026, 11, 30, 5))  # a Monday made a day off
    assert dt.date(2026, 5, 27) in hours.holidays
    assert dt.date(2027, 12, 16) in hours.holidays


def test_special_day_wins_over_holiday():
    hours = OpeningHours.from_mapping(
        {"public_holidays": "KZ", "special_days": {"2026-12-16": "10:00-14:00"}}
    )
    assert hours.is_open(utc(2026, 12, 16, 6))


def test_open_until_midnight():
    hours = OpeningHours.from_mapping({"week": {"mon": "18:00-24:00"}})
    assert hours.is_open(utc(2026, 11, 23, 18, 59, 59))  # Monday 23:59:59
    assert not hours.is_open(utc(2026, 11, 23, 19))  # Tuesday 00:00
    assert hours.closes_at(utc(2026, 11, 23, 18)) == dt.datetime(2026, 11, 24, 0, 0, tzinfo=hours.timezone)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"opening": "09:00"}, "unknown key"),
        ({"week": {"mon": "9-18"}}, "hours.week.mon: '9' is not a time"),
        ({"week": {"mon": "18:00-09:00"}}, "closing time 09:00 is not after opening time 18:00"),
        ({"week": {"funday": "09:00-18:00"}}, "'funday' is not a weekday"),
        ({"week": {"mon": ["09:00-13:00", "12:00-18:00"]}}, "overlap"),
        ({"week": {"mon": "09:00"}}, "expected 'HH:MM-HH:MM'"),
        ({"week": {"mon": "closed"}}, "no day is open"),
        ({"open": "09:00", "days": ["mon"]}, "close missing"),
        ({"open": "09:00", "close": "18:00", "week": {}}, "either week or"),
        ({"holidays": ["2026-02-30"]}, "hours.holidays[0]: '2026-02-30' is not a date"),
        ({"holidays": "2026-01-01"}, "expected a list"),
        ({"public_holidays": "RU"}, "only KZ"),
        ({"timezone": "Asia/Nowhere"}, "unknown zone"),
        ({"special_days": ["2026-01-01"]}, "special_days: expected a mapping"),
    ],
)
def test_from_mapping_errors_say_what_is_wrong(mapping, message):
    with pytest.raises(HoursError) as caught:
        OpeningHours.from_mapping(mapping)
    assert message in str(caught.value)


def test_hours_are_immutable(hours):
    with pytest.raises(AttributeError):
        hours.holidays = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        hours.special_days[dt.date(2026, 1, 1)] = ()  # type: ignore[index]


def test_kazakh_zones_fall_back_to_utc_plus_five_without_tzdata(tmp_path):
    # A fresh CI container may have neither /usr/share/zoneinfo nor the tzdata wheel.
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        try:
            zoneinfo.ZoneInfo("Asia/Almaty")
        except zoneinfo.ZoneInfoNotFoundError:
            pass
        else:
            pytest.skip("the tzdata wheel is installed: the zone is always found")
        zone = resolve_timezone("Asia/Almaty")
        assert zone.utcoffset(None) == dt.timedelta(hours=5)
        assert OpeningHours(timezone=zone).is_open(utc(2026, 11, 24, 4))
        with pytest.raises(HoursError, match="unknown zone"):
            resolve_timezone("Europe/Moscow")
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_from_menu_hours_adapter():
    loader = pytest.importorskip("ivr.menus.model")
    menu_hours = loader.Hours(
        timezone="Asia/Almaty",
        week={
            "mon": ((dt.time(9), dt.time(13)), (dt.time(14), dt.time(18))),
            "sat": ((dt.time(10), dt.time.max),),
        },
        holidays=(dt.date(2026, 11, 23),),
    )
    hours = OpeningHours.from_menu_hours(menu_hours)
    assert not hours.is_open(utc(2026, 11, 23, 5))  # a Monday listed as holiday
    assert hours.is_open(utc(2026, 11, 30, 5))
    assert not hours.is_open(utc(2026, 11, 30, 8, 30))
    assert hours.is_open(utc(2026, 11, 28, 18, 59))  # Saturday 23:59
