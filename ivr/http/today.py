"""The centre's figures for the board from the shared journal: today so far, the last hours in 15-minute
steps, calls still in the IVR per engine. "Now" and "today" come from the caller's clock (the engine's
injectable one), never from the system clock, so any hour can be shown and tested.

Read in one go on the journal's reader thread: a few indexed aggregates (the hourly rollup for today,
`calls.started_at` for the chart), a handful of milliseconds however many boards are open, because the
board asks at most once per refresh.
"""

from __future__ import annotations

from datetime import datetime, time

import attrs

from ivr.http.privacy import mask_number
from ivr.journal.db import Dialect, Tx
from ivr.journal.timeutil import zone

STEP = 15 * 60  # seconds per chart bar
# An unfinished call older than this is taken to be one a crashed engine never ended.
STALE_CALL = 3600.0
NEXT_CALLBACKS = 5


@attrs.frozen
class Bar:
    start: float  # epoch seconds
    calls: int
    self_served: int


@attrs.frozen
class WaitingCallback:
    number: str  # masked: the last four digits at most
    language: str
    queue: str
    attempts: int
    next_attempt_at: float


@attrs.frozen
class Today:
    day: str  # local YYYY-MM-DD
    calls: int  # ended today, as the rollup counts them
    self_served: int
    abandoned: int
    queued: int  # answered by an operator in a queue
    no_operator: int  # no queue could take the caller: apology and hang-up
    after_hours: int  # came when the centre was closed and left no callback
    callback: int  # left a callback request
    other: int  # transferred, handed back to the dialplan, or rescued after an engine fault
    callbacks_waiting: int
    callbacks_done: int
    callbacks_next: tuple[WaitingCallback, ...]  # the next few to be dialled
    in_ivr_by_engine: tuple[tuple[str, int], ...]  # calls started, not ended, per engine (centre-wide)
    bars: tuple[Bar, ...]  # oldest first

    @property
    def self_service_share(self) -> float:
        return self.self_served / self.calls if self.calls else 0.0


def read_today(tx: Tx, now: datetime, timezone: str, hours: int = 8) -> Today:
    tz = zone(timezone)
    local = now.astimezone(tz)
    day = local.date()
    day_start = datetime.combine(day, time(), tz).timestamp()
    at = now.timestamp()
    row = tx.one(
        "SELECT COALESCE(SUM(calls), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'self_served' THEN calls ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'abandoned' THEN calls ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'queued' THEN calls ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'no_operator' THEN calls ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'after_hours' THEN calls ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN outcome = 'callback' THEN calls ELSE 0 END), 0) "
        "FROM call_rollup WHERE day = ?",
        (day.isoformat(),),
    )
    calls, self_served, abandoned, queued, no_operator, after_hours, callback = (
        (int(v) for v in row) if row else (0,) * 7
    )
    waiting = tx.one("SELECT COUNT(*) FROM callbacks WHERE state IN ('pending', 'dialing')")
    done = tx.one(
        "SELECT COUNT(*) FROM callbacks WHERE state = 'done' AND updated_at >= ? AND updated_at <= ?",
        (day_start, at),
    )
    upcoming = tx.all(
        "SELECT number, language, queue, attempts, next_attempt_at FROM callbacks "
        "WHERE state IN ('pending', 'dialing') ORDER BY next_attempt_at, id LIMIT ?",
        (NEXT_CALLBACKS,),
    )
    engines = tx.all(
        "SELECT engine_id, COUNT(*) FROM calls WHERE outcome IS NULL AND started_at > ? AND started_at <= ? "
        "GROUP BY engine_id ORDER BY engine_id",
        (at - STALE_CALL, at),
    )
    return Today(
        day=day.isoformat(),
        calls=calls,
        self_served=self_served,
        abandoned=abandoned,
        queued=queued,
        no_operator=no_operator,
        after_hours=after_hours,
        callback=callback,
        other=calls - self_served - abandoned - queued - no_operator - after_hours - callback,
        callbacks_waiting=int(waiting[0]) if waiting else 0,
        callbacks_done=int(done[0]) if done else 0,
        callbacks_next=tuple(
            WaitingCallback(mask_number(str(n)), str(lang), str(q), int(a), float(t))
            for n, lang, q, a, t in upcoming
        ),
        in_ivr_by_engine=tuple((str(e), int(n)) for e, n in engines),
        bars=_bars(tx, at, hours),
    )


def _bars(tx: Tx, at: float, hours: int) -> tuple[Bar, ...]:
    """Calls started per 15 minutes over the last `hours`, with how many of them were self-served."""
    last = int(at // STEP) * STEP
    first = last - (hours * 3600 // STEP - 1) * STEP
    # SQLite's CAST truncates (the floor, for these positive times); PostgreSQL's rounds, so FLOOR there.
    bucket_of = (
        "FLOOR(started_at / ?)" if tx.dialect is Dialect.POSTGRESQL else "CAST(started_at / ? AS INTEGER)"
    )
    counted = {
        int(bucket): (int(n), int(s))
        for bucket, n, s in tx.all(
            f"SELECT {bucket_of}, COUNT(*), "
            "SUM(CASE WHEN outcome = 'self_served' THEN 1 ELSE 0 END) "
            "FROM calls WHERE started_at >= ? AND started_at <= ? GROUP BY 1",
            (STEP, first, at),
        )
    }
    return tuple(
        Bar(float(start), *counted.get(start // STEP, (0, 0))) for start in range(first, last + 1, STEP)
    )
