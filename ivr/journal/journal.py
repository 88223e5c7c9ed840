"""The call journal: each call's path, written as it happens.

Every method returns a future that completes once the write is committed; the call path may ignore
it (fire-and-forget) because the writer thread commits it within its batch window anyway. Events
carry (call_id, seq) keys and are inserted with ON CONFLICT DO NOTHING, so a write repeated after a
reconnect never duplicates a row. Call end is idempotent too: only the first outcome of a call
counts, and only it increments the hourly rollup the statistics read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ivr.journal.db import Database, Dialect, Tx, Write
from ivr.journal.timeutil import Moment, local_day_hour, to_epoch, zone

# One encoder for every event: json.dumps with options builds a new one per call (on the call path).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
# How a call ended (docs: README "Call outcomes"):
#   self_served  heard an answer and ended in the IVR      queued       handed to an operator queue and answered
#   callback     a callback request was stored             transferred  sent on to another number
#   abandoned    the caller hung up (in the IVR or queue)  no_operator  no queue could take the caller; goodbye
#   after_hours  outside opening hours, no callback; bye   handed_back  engine shutdown handed the call to the dialplan
#   failed       an engine fault (the caller was rescued to an operator queue)
OUTCOMES = (
    "self_served",
    "queued",
    "callback",
    "transferred",
    "abandoned",
    "no_operator",
    "after_hours",
    "handed_back",
    "failed",
)

# Event kinds the engine writes; others are accepted as long as they are short identifiers.
NODE = "node"
DTMF = "dtmf"
SPEECH = "speech"
LANGUAGE = "language"
ERROR = "error"

_INSERT_CALL = (
    "INSERT INTO calls (call_id, started_at, caller, language, menu, engine_id, day, hour) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING"
)
_INSERT_EVENT = (
    "INSERT INTO call_events (call_id, seq, at, kind, node, data) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id, seq) DO NOTHING"
)
_SET_LANGUAGE = "UPDATE calls SET language = ? WHERE call_id = ?"
_END = "UPDATE calls SET ended_at = ?, outcome = ?, topic = ? WHERE call_id = ? AND outcome IS NULL"
_END_AND_ROLLUP_PG = (
    "WITH ended AS (UPDATE calls SET ended_at = ?, outcome = ?, topic = ? WHERE call_id = ? AND outcome IS NULL "
    "RETURNING day, hour, language) "
    "INSERT INTO call_rollup (day, hour, language, topic, outcome, calls) SELECT day, hour, language, ?, ?, 1 "
    "FROM ended ON CONFLICT (day, hour, language, topic, outcome) DO UPDATE SET calls = call_rollup.calls + 1"
)
_ROLLUP_ONE = (
    "INSERT INTO call_rollup (day, hour, language, topic, outcome, calls) "
    "SELECT day, hour, language, ?, ?, 1 FROM calls WHERE call_id = ? "
    "ON CONFLICT (day, hour, language, topic, outcome) DO UPDATE SET calls = call_rollup.calls + 1"
)


@attrs.frozen
class CallEvent:
    seq: int
    at: float
    kind: str
    node: str
    data: dict[str, Any]


@attrs.frozen
class CallRecord:
    call_id: str
    started_at: float
    caller: str
    language: str
    menu: str
    engine_id: str
    ended_at: float | None
    outcome: str | None
    topic: str | None
    events: tuple[CallEvent, ...]


class Journal:
    def __init__(
        self,
        db: Database,
        timezone: str = "Asia/Almaty",
        engine_id: str = "",
        now: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._now = now  # epoch seconds from the engine's clock (pinned in tests)
        self._tz = zone(timezone)
        self._engine_id = engine_id
        self._next_seq: dict[str, int] = {}

    def call_started(
        self,
        call_id: str,
        started_at: Moment,
        caller: str,
        language: str | None = None,
        menu: str = "",
    ) -> Awaitable[Any]:
        _check_id(call_id)
        start = to_epoch(started_at, "started_at")
        day, hour = local_day_hour(start, self._tz)
        self._next_seq.setdefault(call_id, 1)
        params = (call_id, start, caller or "", language or "", menu, self._engine_id, day, hour)
        return self._db.submit(Write(_INSERT_CALL, params, phase=0))

    def event(
        self,
        call_id: str,
        kind: str,
        node: str = "",
        data: dict[str, Any] | None = None,
        at: Moment | None = None,
    ) -> Awaitable[Any]:
        """Record one step: a node visited, an input (dtmf digits; speech text + confidence), a
        language change (kind 'language', data {'language': 'kk'}), an error."""
        _check_id(call_id)
        if not kind or not kind.replace("_", "").isalnum():
            raise ValueError(f"event kind {kind!r} must be a short identifier such as 'node' or 'dtmf'")
        seq = self._next_seq.get(call_id, 1)
        self._next_seq[call_id] = seq + 1
        moment = self._now() if at is None else to_epoch(at, "at")
        payload = _ENCODE(data) if data else "{}"
        future = self._db.submit(Write(_INSERT_EVENT, (call_id, seq, moment, kind, node or "", payload)))
        if kind == LANGUAGE:
            language = (data or {}).get("language")
            if not language:
                raise ValueError("a 'language' event needs data={'language': ...}")
            future = self._db.submit(Write(_SET_LANGUAGE, (language, call_id), phase=1))
        return future

    def call_ended(
        self, call_id: str, outcome: str, topic: str | None = None, at: Moment | None = None
    ) -> Awaitable[Any]:
        _check_id(call_id)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        ended = self._now() if at is None else to_epoch(at, "at")
        self._next_seq.pop(call_id, None)
        day, hour = local_day_hour(ended, self._tz)
        engine_id = self._engine_id

        def end(tx: Tx) -> bool:
            if tx.dialect is Dialect.POSTGRESQL:
                # One round trip: the rollup row is counted only if this end was the first.
                tx.execute(_END_AND_ROLLUP_PG, (ended, outcome, topic, call_id, topic or "", outcome))
                if tx.rowcount == 1:
                    return True
            else:
                tx.execute(_END, (ended, outcome, topic, call_id))
            if tx.rowcount == 0:
                if tx.one("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)) is not None:
                    return False  # ended before: the first outcome stands
                # No start recorded (the engine lost it): keep the call, started when it ended.
                tx.execute(
                    "INSERT INTO calls (call_id, started_at, engine_id, ended_at, outcome, topic, day, hour) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (call_id, ended, engine_id, ended, outcome, topic, day, hour),
                )
            tx.execute(_ROLLUP_ONE, (topic or "", outcome, call_id))
            return True

        return self._db.submit(end)

    async def flush(self) -> None:
        await self._db.flush()

    async def call(self, call_id: str) -> CallRecord | None:
        """The call with this key, or, given Asterisk's bare uniqueid, the latest call with that uniqueid
        (keys are `uniqueid@asterisk-address`: ivr.engine.interpreter.call_key)."""

        def fetch(tx: Tx) -> CallRecord | None:
            columns = "call_id, started_at, caller, language, menu, engine_id, ended_at, outcome, topic"
            row = tx.one(f"SELECT {columns} FROM calls WHERE call_id = ?", (call_id,))
            if row is None and "@" not in call_id:
                escaped = call_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                row = tx.one(
                    f"SELECT {columns} FROM calls WHERE call_id LIKE ? ESCAPE '\\' "
                    "ORDER BY started_at DESC LIMIT 1",
                    (escaped + "@%",),
                )
            if row is None:
                return None
            events = tuple(
                CallEvent(seq, at, kind, node, json.loads(data))
                for seq, at, kind, node, data in tx.all(
                    "SELECT seq, at, kind, node, data FROM call_events WHERE call_id = ? ORDER BY seq",
                    (row[0],),
                )
            )
            return CallRecord(*row, events=events)

        return await self._db.read(fetch)


def _check_id(call_id: str) -> None:
    if not call_id or not isinstance(call_id, str):
        raise ValueError(f"call_id must be a non-empty string, not {call_id!r}")
