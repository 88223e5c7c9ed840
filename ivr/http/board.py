"""What the wallboard shows at one moment, as a JSON-ready dict: this engine's live calls and queues,
the centre's figures from the shared journal, the incidents being announced.

Each source degrades on its own: AMI down shows "AMI down" beside the journal figures, a journal error
shows beside the live ones; the board never goes blank because one part is missing. While the database
does not answer, the board shows the journal's figures it read last and the incidents the engine
announces (the list it read last), and says since when and as of when; the log gets one line when the
database stops answering the board and one when it answers again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from ivr.contact.hours import dialled_at
from ivr.http.cache import Cached
from ivr.http.live import NO_LANGUAGE, LiveCalls
from ivr.http.queues import QueueWatch
from ivr.http.today import Today, read_today
from ivr.journal.incidents import Incident, LastRead
from ivr.journal.outage import NoAnswer, Unanswered, unreachable
from ivr.journal.timeutil import zone

log = logging.getLogger("ivr.http")

AWAY_PATIENCE = 0.2  # the same while the database does not answer: figures a read brings are shown soon
TOP_NODES = 8  # nodes listed by name; the rest are summed as "other"
CHART_HOURS = 8


@attrs.define
class BoardSources:
    name: str  # which engine this is
    live: LiveCalls
    queues: QueueWatch
    state: Any  # ivr.journal.state.State, or None (no journal)
    clock: Callable[[], dt.datetime]
    timezone: str
    test_clock: Callable[[], bool] = lambda: False  # the engine's clock is pinned (ivr serve --clock)
    hours: Callable[[], Any] = lambda: None  # the engine's opening hours: callbacks are dialled in them
    journal_max_age: float = 2.0
    journal_patience: float = 2.0  # seconds a snapshot waits for the journal's figures
    _today: Cached[Today | None] | None = attrs.field(default=None, init=False)
    _read_at: dt.datetime | None = attrs.field(default=None, init=False)  # the figures shown were read then
    _failing: Unanswered = attrs.field(factory=Unanswered, init=False)  # the journal's figures
    _failing_since: dt.datetime | None = attrs.field(default=None, init=False)
    _away: bool = attrs.field(default=False, init=False)  # the failure is the database not answering
    _incidents_failing: Unanswered = attrs.field(factory=Unanswered, init=False)  # not an outage: an error
    _incidents_since: float = attrs.field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        self._today = Cached(self._read_today, None, self.journal_max_age)

    async def _read_today(self) -> Today | None:
        if self.state is None:
            return None
        now, timezone = self.clock(), self.timezone
        today = await self.state.db.read(lambda tx: read_today(tx, now, timezone, CHART_HOURS))
        self._read_at = now
        return today

    async def today(self) -> tuple[Today | None, dict[str, Any]]:
        """The journal figures (the last read, when they cannot be read now) and the journal's state as
        the board shows it."""
        assert self._today is not None
        if self.state is None:
            return None, {"state": "off"}
        # Not kept waiting by a database that neither answers nor refuses (hung, its packets dropped):
        # the read goes on, and the board shows the figures it read last meanwhile, and says so.
        patience = AWAY_PATIENCE if self._failing.away else self.journal_patience
        reading = asyncio.ensure_future(self._today.get())
        reading.add_done_callback(_retrieved)
        try:
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            if not (await asyncio.wait({reading}, timeout=patience))[0]:
                raise NoAnswer(f"no answer within {self.journal_patience:g} s")
            today = reading.result()
        except Exception as exc:  # the board shows the live part and the figures it read last
            # (a wait run out while the database is known not to answer: the reason known stands)
            if not (isinstance(exc, NoAnswer) and self._failing.away and self._away):
                self._figures_failed(exc)
            tz = zone(self.timezone)
            assert self._failing_since is not None
            return self._today.last, {
                "state": "away" if self._away else "error",
                "since": _moment(self._failing_since, tz),
                "as_of": None if self._read_at is None else _moment(self._read_at, tz),
                "error": self._failing.error,
            }
        lasted = self._failing.answered(time.monotonic())
        if lasted is not None:
            log.warning(
                "board: %s after %.1f s: the journal's figures are current again",
                "the state database answers again" if self._away else "the journal's figures can be read",
                lasted,
            )
            self._away = False
        return today, {"state": "ok"}

    def _figures_failed(self, exc: BaseException) -> None:
        """One log line when the figures stop being readable; another only when the reason changes (from
        the database not answering to another error, or from one error to another)."""
        away, previous = unreachable(exc), self._failing.error
        if self._failing.failed(exc, time.monotonic()):
            self._failing_since = self.clock()
        elif away == self._away and (away or self._failing.error == previous):
            return  # the same outage, asked again
        self._away = away
        tz = zone(self.timezone)
        shown = (
            "no journal figures (none were read yet)"
            if self._read_at is None
            else self._read_at.astimezone(tz).strftime("the journal's figures as of %H:%M")
        )
        if away:
            log.warning(
                "board: the state database does not answer (%s): the board shows %s, and says so, until it answers",
                self._failing.error, shown,
            )  # fmt: skip
        else:
            log.warning(
                "board: journal figures unavailable (%s): the board shows %s", self._failing.error, shown
            )

    async def incidents(self) -> tuple[list[Incident], LastRead | None]:
        """The incidents the engine announces now and, when they do not come from the database now, what
        they come from: while it does not answer, the list the engine read last (the store serves it);
        after another error, none (read_at None)."""
        if self.state is None:
            return [], None
        store = self.state.incidents
        try:
            incidents = await store.active(now=self.clock())
        except Exception as exc:
            failing, previous = self._incidents_failing, self._incidents_failing.error
            if failing.failed(exc, time.monotonic()):
                self._incidents_since = self.clock().timestamp()
                log.warning("board: incidents unavailable: %s", failing.error)
            elif failing.error != previous:
                log.warning("board: incidents unavailable: %s", failing.error)
            return [], LastRead(None, self._incidents_since, failing.error)
        if self._incidents_failing.answered(time.monotonic()) is not None:
            log.warning("board: incidents can be read again")
        return incidents, store.unanswered


def _retrieved(reading: asyncio.Future[Any]) -> None:
    """A read no one waited for to the end: its failure is not left unretrieved (asyncio would log it)."""
    if not reading.cancelled():
        reading.exception()


async def snapshot(sources: BoardSources) -> dict[str, Any]:
    now = sources.clock()
    tz = zone(sources.timezone)
    queues = await sources.queues.view()
    today, journal = await sources.today()
    incidents, last_read = await sources.incidents()
    live = sources.live
    return {
        "engine": sources.name,
        "at": now.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "timezone": sources.timezone,
        "test_clock": sources.test_clock(),
        "in_ivr": {
            "total": live.in_ivr(),
            "by_language": _languages(live.by_language(in_ivr=True)),
            "by_node": _top(live.by_node(), TOP_NODES),
            "in_queues": live.in_queues(),  # this engine's calls waiting for or talking to an operator
        },
        "ami": queues.ami,
        "queues": [attrs.asdict(q) for q in queues.queues],
        # {"state": "ok"}, {"state": "off"} (no journal), or {"state": "away" (the database does not
        # answer) | "error", "since", "as_of" (when `today` was read; null: never), "error"}
        "journal": journal,
        "today": _today(today, tz, now, sources.hours()),
        "incidents": [_incident(i, tz) for i in incidents],
        # null while the database answers; else the incidents are the list the engine read last
        "incidents_stale": None if last_read is None else _last_read(last_read, tz),
    }


def _moment(at: dt.datetime | float, tz: ZoneInfo) -> str:
    moment = dt.datetime.fromtimestamp(at, tz) if isinstance(at, float | int) else at.astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _last_read(last_read: LastRead, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "as_of": None if last_read.read_at is None else _moment(last_read.read_at, tz),
        "since": _moment(last_read.since, tz),
        "error": last_read.error,
    }


def _languages(counts: dict[str, int]) -> dict[str, int]:
    shown = {"kk": counts.get("kk", 0), "ru": counts.get("ru", 0)}
    shown["choosing"] = counts.get(NO_LANGUAGE, 0)
    for language, count in counts.items():
        if language not in ("kk", "ru", NO_LANGUAGE):
            shown[language] = count
    return shown


def _top(counts: dict[str, int], limit: int) -> list[tuple[str, int]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = ranked[:limit]
    rest = sum(count for _, count in ranked[limit:])
    return top + ([("…", rest)] if rest else [])


def _dialled_at(next_attempt_at: float, now: dt.datetime, hours: Any, tz: ZoneInfo) -> str:
    """When the dialer will call: due, and in opening hours; with the date unless it is today."""
    moment = dialled_at(hours, dt.datetime.fromtimestamp(next_attempt_at, tz), now).astimezone(tz)
    return moment.strftime("%H:%M" if moment.date() == now.astimezone(tz).date() else "%d.%m %H:%M")


def _today(today: Today | None, tz: ZoneInfo, now: dt.datetime, hours: Any = None) -> dict[str, Any] | None:
    if today is None:
        return None
    return {
        "day": today.day,
        "calls": today.calls,
        "self_served": today.self_served,
        "self_service_share": round(today.self_service_share, 3),
        "abandoned": today.abandoned,
        "queued": today.queued,
        "no_operator": today.no_operator,
        "after_hours": today.after_hours,
        "callback": today.callback,
        "other": today.other,
        "callbacks_waiting": today.callbacks_waiting,
        "callbacks_done": today.callbacks_done,
        "callbacks_next": [
            {
                "number": c.number,
                "language": c.language,
                "queue": c.queue,
                "attempts": c.attempts,
                "next": _dialled_at(c.next_attempt_at, now, hours, tz),
            }
            for c in today.callbacks_next
        ],
        "in_ivr_by_engine": [list(pair) for pair in today.in_ivr_by_engine],
        "bars": [
            {
                "at": dt.datetime.fromtimestamp(bar.start, tz).strftime("%H:%M"),
                "calls": bar.calls,
                "self_served": bar.self_served,
            }
            for bar in today.bars
        ],
    }


def _incident(incident: Incident, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kk": incident.text_kk,
        "ru": incident.text_ru,
        "topics": list(incident.topics),
        "until": incident.until.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
    }
