"""What the wallboard shows at one moment, as a JSON-ready dict: this engine's live calls and queues,
the centre's figures from the shared journal, the incidents being announced.

Each source degrades on its own: AMI down shows "AMI down" beside the journal figures, a journal error
shows beside the live ones; the board never goes blank because one part is missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from ivr.contact.hours import dialled_at
from ivr.http.cache import Cached
from ivr.http.live import NO_LANGUAGE, LiveCalls
from ivr.http.queues import QueueWatch
from ivr.http.today import Today, read_today
from ivr.journal.incidents import Incident
from ivr.journal.timeutil import zone

log = logging.getLogger("ivr.http")

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
    _today: Cached[Today | None] | None = attrs.field(default=None, init=False)
    _error: str = attrs.field(default="", init=False)

    def __attrs_post_init__(self) -> None:
        self._today = Cached(self._read_today, None, self.journal_max_age)

    async def _read_today(self) -> Today | None:
        if self.state is None:
            return None
        now, timezone = self.clock(), self.timezone
        return await self.state.db.read(lambda tx: read_today(tx, now, timezone, CHART_HOURS))

    async def today(self) -> tuple[Today | None, str]:
        """The journal figures and, when they could not be read, why (shown on the board)."""
        assert self._today is not None
        try:
            return await self._today.get(), ""
        except Exception as exc:  # the board shows the live part and says the journal is unreadable
            log.warning("board: journal figures unavailable: %s", exc)
            return self._today.last, f"{type(exc).__name__}: {exc}"

    async def incidents(self) -> list[Incident]:
        if self.state is None:
            return []
        try:
            return await self.state.incidents.active(now=self.clock())
        except Exception as exc:
            log.warning("board: incidents unavailable: %s", exc)
            return []


async def snapshot(sources: BoardSources) -> dict[str, Any]:
    now = sources.clock()
    tz = zone(sources.timezone)
    queues = await sources.queues.view()
    today, journal_error = await sources.today()
    incidents = await sources.incidents()
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
        "journal": "off" if sources.state is None else (journal_error or "ok"),
        "today": _today(today, tz, now, sources.hours()),
        "incidents": [_incident(i, tz) for i in incidents],
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
