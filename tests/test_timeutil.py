"""The local day and hour the journal files a call under (the hourly rollup's key), in zones with odd
offsets and around clock changes, against a plain conversion of each moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.journal.timeutil import local_day_hour, zone


def converted(moment: datetime, name: str) -> tuple[str, int]:
    local = moment.astimezone(zone(name))
    return local.strftime("%Y-%m-%d"), local.hour


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("Europe/London", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # clocks forward an hour
        ("Europe/London", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # and back
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # a half-hour change
        ("America/St_Johns", datetime(2026, 3, 8, 5, 30, tzinfo=UTC)),  # -03:30 to -02:30
        ("Asia/Almaty", datetime(2024, 2, 29, 18, 0, tzinfo=UTC)),  # Kazakhstan's move to +05:00 in 2024
    ],
)
def test_every_second_around_a_clock_change_is_filed_under_its_own_local_hour(
    name: str, change: datetime
) -> None:
    for second in range(-1800, 1800, 7):
        moment = change + timedelta(seconds=second)
        assert local_day_hour(moment.timestamp(), zone(name)) == converted(moment, name), moment


@pytest.mark.parametrize("name", ["Asia/Kathmandu", "Australia/Eucla", "Pacific/Chatham", "Asia/Almaty"])
def test_zones_a_quarter_or_half_hour_off_get_the_right_hour_all_day(name: str) -> None:
    start = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    for minute in range(0, 24 * 60, 1):
        moment = start + timedelta(minutes=minute, seconds=31.5)
        assert local_day_hour(moment.timestamp(), zone(name)) == converted(moment, name), moment
