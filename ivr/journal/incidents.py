"""Outage announcements: added by an admin, heard by every new call until they end or expire.

The engine asks for the active incidents on every new call, so reads come from a cache refreshed
at most every `cache_ttl` seconds (default 1 s): an incident added by `ivr incident add` in another
process reaches new calls within that time, with one small query per second however busy the line.

While the database does not answer (a failure to reach it, or no answer within READ_PATIENCE), the cache
serves the list it last read (each incident still ends at its own expiry, by the engine's clock) and tries
again once a `cache_ttl`, no call waiting for it: callers keep hearing that the service is down exactly
when it is. The log says so once when that begins and once when it ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import attrs

from ivr.journal.db import Database, Tx
from ivr.journal.outage import NoAnswer, Unanswered, unreachable
from ivr.journal.timeutil import Moment, from_epoch, to_epoch, zone

log = logging.getLogger(__name__)

# How long a call waits for the incidents' read before it hears the list read last (a read takes
# milliseconds; longer is a database that does not answer, hung or out of reach).
READ_PATIENCE = 1.0

_COLUMNS = "id, text_kk, text_ru, topics, starts_at, expires_at, ended_at, created_at"


@attrs.frozen
class Incident:
    id: int
    text_kk: str
    text_ru: str
    topics: tuple[str, ...]  # empty: every topic
    starts_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    created_at: datetime

    def text(self, language: str) -> str:
        return self.text_kk if language == "kk" else self.text_ru

    def affects(self, topic: str | None) -> bool:
        """None asks for every incident (the announcement after the language choice)."""
        return topic is None or not self.topics or topic in self.topics

    def is_active(self, now: float) -> bool:
        return self.ended_at is None and self.starts_at.timestamp() <= now < self.expires_at.timestamp()

    @property
    def until(self) -> datetime:
        """When it stopped (or will stop) being announced."""
        return min(self.expires_at, self.ended_at) if self.ended_at else self.expires_at


@attrs.frozen
class LastRead:
    """What the incidents come from while the database does not answer: the list read at `read_at`
    (epoch seconds, the engine's clock; None when none was read before), since `since`, and why."""

    read_at: float | None
    since: float
    error: str


def incident_from_row(row: tuple) -> Incident:
    id_, text_kk, text_ru, topics, starts, expires, ended, created = row
    return Incident(
        int(id_), text_kk, text_ru, tuple(json.loads(topics)), from_epoch(starts), from_epoch(expires),
        from_epoch(ended), from_epoch(created),
    )  # fmt: skip


class IncidentStore:
    def __init__(
        self,
        db: Database,
        cache_ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        timezone: str = "UTC",
        patience: float = READ_PATIENCE,
    ) -> None:
        if not 0 <= cache_ttl <= 2:
            raise ValueError("cache_ttl must be between 0 and 2 seconds so new incidents reach calls quickly")
        self._db = db
        self._ttl = cache_ttl
        self._clock = clock  # for the cache's age only
        self._now = now  # epoch seconds from the engine's clock: which incidents are active
        self._zone = zone(timezone)  # for the log's times
        self._cached: list[Incident] = []
        self._fetched_at: float | None = None
        self._read_at: float | None = None  # when `_cached` was read (the engine's clock)
        self._outage = Unanswered()
        self._outage_since = 0.0  # the engine's clock
        self._refreshing: asyncio.Future[list[Incident]] | None = None
        self._refreshing_generation = 0
        self._refresh_began = 0.0  # the event loop's clock
        self._patience = patience
        self._generation = 0  # bumped by this process's own changes; a read begun before one is stale

    async def add(
        self,
        text_kk: str,
        text_ru: str,
        topics: Iterable[str] = (),
        starts_at: Moment | None = None,
        expires_at: Moment | None = None,
    ) -> int:
        text_kk, text_ru = (text_kk or "").strip(), (text_ru or "").strip()
        if not text_kk or not text_ru:
            raise ValueError("an incident needs its text in both Kazakh (kk) and Russian (ru)")
        topic_list = sorted({t.strip() for t in topics if t and t.strip()})
        now = self._now()
        starts = now if starts_at is None else to_epoch(starts_at, "starts_at")
        if expires_at is None:
            raise ValueError("an incident needs an expiry, so that it cannot be announced forever")
        expires = to_epoch(expires_at, "expires_at")
        if expires <= starts:
            raise ValueError("an incident must expire after it starts")
        topics_json = json.dumps(topic_list, ensure_ascii=False)

        def insert(tx: Tx) -> int:
            row = tx.one(
                "INSERT INTO incidents (text_kk, text_ru, topics, starts_at, expires_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (text_kk, text_ru, topics_json, starts, expires, now),
            )
            return int(row[0])

        incident_id = await self._db.write(insert)
        self._invalidate()  # this process sees its own change at once
        return incident_id

    async def end(self, incident_id: int) -> bool:
        """End an incident now; False when there is no such incident or it had already ended."""

        def finish(tx: Tx) -> bool:
            tx.execute(
                "UPDATE incidents SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                (self._now(), incident_id),
            )
            return tx.rowcount == 1

        ended = await self._db.write(finish)
        self._invalidate()
        return ended

    def _invalidate(self) -> None:
        self._generation += 1
        self._fetched_at = None

    def now(self) -> float:
        """Epoch seconds by the clock incidents are judged by (the engine's)."""
        return self._now()

    @property
    def unanswered(self) -> LastRead | None:
        """None while the database answers; else what `active` and `current` serve meanwhile."""
        if not self._outage.away:
            return None
        return LastRead(self._read_at, self._outage_since, self._outage.error)

    async def active(self, now: Moment | None = None, topic: str | None = None) -> list[Incident]:
        """Incidents to announce at `now`: with topic None every one, else the ones for that topic or all
        topics. Oldest first."""
        moment = self._now() if now is None else to_epoch(now, "now")
        current = await self._current()
        return [i for i in current if i.is_active(moment) and i.affects(topic)]

    async def current(self) -> list[Incident]:
        """Incidents announced now or later (neither ended nor expired), from the cache `active` reads:
        what the engine makes audio for, a second at most after an admin adds one."""
        moment = self._now()
        return [i for i in await self._current() if i.ended_at is None and i.expires_at.timestamp() > moment]

    async def _current(self) -> list[Incident]:
        while True:
            if self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl:
                return self._cached
            generation = self._generation
            # One query for all the calls that arrive while the cache is stale, unless it began
            # before a change this process made (then it cannot show that change).
            if self._refreshing is None or self._refreshing_generation != generation:
                self._refresh(generation)
            reading = self._refreshing
            assert reading is not None
            # A caller is not kept waiting on the database: past `patience` (a server hung, its packets
            # dropped) the list read last, and while it does not answer no wait at all; the read goes
            # on, and what it brings is kept (`_refreshed`).
            waited = asyncio.get_running_loop().time() - self._refresh_began
            patience = 0.0 if self._outage.away else max(0.0, self._patience - waited)
            # asyncio.wait, not wait_for: it leaves the read alone, and on Python 3.11 wait_for can
            # swallow the caller's cancellation when the read ends at that moment (an engine's stop
            # then waits for ever on its incident audio).
            if not (await asyncio.wait({reading}, timeout=patience))[0]:
                if self._outage.away:  # still no answer: the reason known stands
                    self._fetched_at = self._clock()
                    return self._cached
                return self._last_read(NoAnswer(f"no answer within {self._patience:g} s"))
            try:
                current = reading.result()
            except Exception as exc:
                if not unreachable(exc):
                    raise
                return self._last_read(exc)
            if generation == self._generation:
                self._keep(current)
                return current

    def _refresh(self, generation: int) -> None:
        reading = asyncio.ensure_future(self._db.read(functools.partial(_load_current, moment=self._now())))
        self._refreshing, self._refreshing_generation = reading, generation
        self._refresh_began = asyncio.get_running_loop().time()
        reading.add_done_callback(functools.partial(self._refreshed, generation=generation))

    def _refreshed(self, reading: asyncio.Future[list[Incident]], generation: int) -> None:
        """A read ended, whether or not anyone still waits for it."""
        if self._refreshing is reading:
            self._refreshing = None
        if reading.cancelled():
            return
        exc = reading.exception()
        if exc is None:
            if generation == self._generation:
                self._keep(reading.result())
        elif unreachable(exc):
            self._last_read(exc)
        # Another error is raised to those waiting for this read; the next asker reads again.

    def _keep(self, current: list[Incident]) -> None:
        lasted = self._outage.answered(self._clock())
        if lasted is not None:
            log.warning(
                "incidents: the state database answers again after %.1f s: announcements come from it again",
                lasted,
            )
        self._cached, self._fetched_at, self._read_at = current, self._clock(), self._now()

    def _last_read(self, exc: BaseException) -> list[Incident]:
        """The database does not answer: the list read last, tried again in a `cache_ttl` (not on
        every call meanwhile)."""
        if self._outage.failed(exc, self._clock()):
            self._outage_since = self._now()
            if self._read_at is None:
                served = "no list was read before, so none is announced"
            else:
                ids = ", ".join(f"#{i.id}" for i in self._cached) or "none"
                served = (
                    f"announcements come from the list last read at {self._local(self._read_at)} "
                    f"(incidents: {ids}; each still ends at its expiry)"
                )
            log.warning(
                "incidents: the state database does not answer (%s): %s until it answers",
                self._outage.error,
                served,
            )
        self._fetched_at = self._clock()
        return self._cached

    def _local(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self._zone).strftime("%H:%M")

    async def list(self, include_expired: bool = False) -> list[Incident]:
        moment = self._now()

        def load(tx: Tx) -> list[Incident]:
            if include_expired:
                rows = tx.all(f"SELECT {_COLUMNS} FROM incidents ORDER BY starts_at, id")
            else:
                rows = tx.all(
                    f"SELECT {_COLUMNS} FROM incidents WHERE ended_at IS NULL AND expires_at > ? "
                    "ORDER BY starts_at, id",
                    (moment,),
                )
            return [incident_from_row(r) for r in rows]

        return await self._db.read(load)


def _load_current(tx: Tx, moment: float) -> list[Incident]:
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM incidents WHERE ended_at IS NULL AND expires_at > ? ORDER BY starts_at, id",
        (moment,),
    )
    return [incident_from_row(r) for r in rows]
