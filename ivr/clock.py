"""The one clock every time-dependent decision reads: opening hours, holidays, outages, callbacks and
the journal's timestamps.

Time is an input like any other. The engine runs on `SystemClock`; tests pin a `FixedClock` (it
moves only when told to) so that no result depends on the hour, the day or the machine's time zone;
a test deployment can run `ivr serve --clock 2026-11-25T10:00+05:00`, a `RunningClock` that starts at
the given moment and then advances at the real pace.

Durations inside a call (how long it has been in the IVR) are not wall-clock time: they come from the
event loop's monotonic clock, which no pinned moment affects.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Protocol

import attrs


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current moment, timezone-aware (UTC)."""
        ...

    def time(self) -> float:
        """The current moment in epoch seconds."""
        ...


class ClockError(ValueError):
    """A moment given for a clock is not an aware ISO 8601 date-time."""


def parse_clock_moment(text: str) -> dt.datetime:
    """'2026-11-25T10:00+05:00' -> an aware datetime; a moment without an offset is refused, because
    which zone it means would depend on the machine."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClockError(
            f"{text!r} is not an ISO date-time; write it with its offset, e.g. 2026-11-25T10:00+05:00"
        ) from None
    if moment.tzinfo is None:
        raise ClockError(
            f"{text!r} has no UTC offset; add one (Almaty is +05:00), e.g. {moment.isoformat()}+05:00"
        )
    return moment.astimezone(dt.UTC)


class SystemClock:
    """The machine's clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def time(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ClockError(f"{moment.isoformat()} has no time zone; give an aware datetime")
    return moment.astimezone(dt.UTC)


@attrs.define
class FixedClock:
    """A clock that stands still until a test moves it: `set(moment)` or `advance(seconds)`."""

    moment: dt.datetime = attrs.field(converter=_aware)

    def now(self) -> dt.datetime:
        return self.moment

    def time(self) -> float:
        return self.moment.timestamp()

    def set(self, moment: dt.datetime) -> None:
        self.moment = _aware(moment)

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


@attrs.define
class RunningClock:
    """Starts at `start` and runs forward at the real pace (measured on the monotonic clock)."""

    start: dt.datetime = attrs.field(converter=_aware)
    _origin: float = attrs.field(factory=time.monotonic, alias="origin")
    # time() is read for every journal event: plain float arithmetic, not a datetime per read.
    _start_epoch: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._start_epoch = self.start.timestamp()

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=time.monotonic() - self._origin)

    def time(self) -> float:
        return self._start_epoch + (time.monotonic() - self._origin)


SYSTEM_CLOCK = SystemClock()


@attrs.define
class OffsetClock:
    """The machine's clock moved by `offset` seconds: the admin commands' view of a test deployment."""

    offset: float

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)

    def time(self) -> float:
        return time.time() + self.offset


# `ivr serve --clock` leaves how far its clock runs from the real time in its state directory, so that
# `ivr incident`, `ivr callbacks` and `ivr stats` on the same state live at the engine's time (an
# incident added "for 2h" is heard by its callers, "today" is the engine's day). A serve on the real
# time removes it.
TEST_CLOCK_FILE = "test-clock.json"


def share_test_clock(state_dir: str | Path, clock: Clock) -> None:
    path = Path(state_dir) / TEST_CLOCK_FILE
    if isinstance(clock, SystemClock):
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"offset_seconds": clock.time() - time.time()}) + "\n", encoding="utf-8")


def shared_test_clock(state_dir: str | Path) -> OffsetClock | None:
    """The clock `ivr serve --clock` left in `state_dir`, or None (the real time)."""
    try:
        data = json.loads((Path(state_dir) / TEST_CLOCK_FILE).read_text(encoding="utf-8"))
        return OffsetClock(float(data["offset_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
