"""The call journal: each call's path, held in memory while the call runs, written at the points
that matter.

A call's start is handed over at once (the wallboard counts the calls in progress from it, and its
15-minute bars from their starts). Its events are appended to a list on the call, a tuple each, and
handed over together at the call's durability points:

- the call's end (its events and its outcome go in the same transaction);
- entering an operator queue (`queue` event), where a caller may wait for minutes;
- a callback request (`callback` event; the request itself is durable before that: CallbackStore.request
  commits it before the caller hears the confirmation);
- every HOLD_MAX (32) events, so a long call never holds many;
- HOLD_SECONDS (10 s) after the first event it holds, so a quiet call (listening to a long prompt,
  waiting for a key) never keeps its path only in memory for long: a sweep every second hands over
  what would be held longer than that by the next one;
- whenever someone awaits what `event()` returned, and on `flush()` and `State.close()`.

What is handed over leaves the event loop every SHIP_EVERY (20 ms) as one Rows per kind (starts, events,
ends) rather than one submit per write; the writer (the journal's writer process, ivr/journal/rows_process.py,
or the database's writer thread) commits it within its batch window (50 ms), encoding the events' JSON and
the local day and hour there (ivr/journal/writes.py). Each hand-over is
stored as one row (a "run": `call_event_runs`, its events one JSON array), not one row per event.

So a `kill -9` of the engine loses exactly:
- of each call in progress, the events recorded since its last durability point, at most its last
  HOLD_SECONDS (its start stays: the call is counted unfinished, as before);
- what was recorded in the last SHIP_EVERY before it, not yet shipped: call starts, ends with their
  events, events handed over. What was shipped to the writer process is still written (it ends when
  its pipe does); with the writer thread, what was shipped and not committed is lost too (~0.1 s).
While the database does not answer, the writer holds what is shipped, in order, up to a cap
(ivr.journal.db, ivr.journal.held): a `kill -9` then loses all it holds too, a clean stop what it still
holds after one more try; past the cap the oldest held rows are dropped, counted.
Nothing acknowledged is ever lost: a journal write whose result was awaited, callback requests,
incidents (awaiting a journal write during an outage raises WriteHeld at once: it is held, not
acknowledged). What survives of a call is always a prefix of its events, unless the cap dropped some.

`data` dicts are kept as given until the writer encodes them: do not change one after recording it.

Events carry (call_id, seq) keys; a run is keyed by its call and first seq and inserted with ON CONFLICT
DO NOTHING, so a write repeated after a reconnect never duplicates a row, and the reader keeps one event
per seq. Call end is idempotent too: only the first outcome of a call counts, and only it increments the
hourly rollup the statistics read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import attrs

from ivr.journal.db import Database, Rows, Tx
from ivr.journal.rows_process import RowsProcess
from ivr.journal.timeutil import Moment, to_epoch, zone
from ivr.journal.writes import end_calls, insert_calls, insert_events, run_events

_monotonic = time.monotonic

# How a call ended (docs: README "Call outcomes"):
#   self_served  heard an answer and ended in the IVR      queued       handed to an operator queue and answered
#   callback     a callback request was stored             transferred  sent on to another number
#   abandoned    the caller hung up (in the IVR or queue)  no_operator  no queue could take the caller; goodbye
#   after_hours  outside opening hours, no callback; bye   handed_back  handed to the dialplan (engine stopping,
#                                                                       or a menu it lacks)
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
_OUTCOMES = frozenset(OUTCOMES)

# Event kinds the engine writes; others are accepted as long as they are short identifiers.
NODE = "node"
DTMF = "dtmf"
SPEECH = "speech"
LANGUAGE = "language"
ERROR = "error"
# Events after which the call's events so far are handed to the writer (see the module docstring).
DURABLE_KINDS = frozenset({"queue", "callback"})
HOLD_MAX = 32  # events a call holds at most before handing them over
HOLD_SECONDS = 10.0  # and seconds
# The sweep runs this often, and hands over what would be older than HOLD_SECONDS at the next one: the
# calls that come due trickle to the writer (about 1/12 of 5,000 calls a second) rather than half of
# them at once, as a sweep every HOLD_SECONDS / 2 would, in a burst of writer work holding the GIL.
SWEEP_EVERY = 1.0
SHIP_EVERY = 0.02  # seconds between shipments of what was handed over to the writer

# How event() handles a kind, decided once per kind (the engine uses a dozen all day): one dict
# lookup per event instead of a string scan and two set tests.
_PLAIN, _LANGUAGE, _DURABLE = "plain", "language", "durable"
_kinds: dict[str, str] = {LANGUAGE: _LANGUAGE, **dict.fromkeys(DURABLE_KINDS, _DURABLE)}


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


class _OpenCall:
    """A call this journal is recording: its next seq and the events not yet handed over, each
    (seq, at, kind, node, data): the call's id is the run's, not repeated in each event.

    `event()` returns it: awaiting it makes the call's events so far durable."""

    __slots__ = ("call_id", "held", "held_since", "journal", "seq")

    def __init__(self, journal: Journal, call_id: str) -> None:
        self.journal = journal
        self.call_id = call_id
        self.seq = 1
        self.held: list[tuple[Any, ...]] = []
        self.held_since = 0.0  # time.monotonic() of the first event held

    def __await__(self) -> Generator[Any, None, Any]:
        if self.held:
            self.journal._hand_over(self)
        return self.journal._shipped().__await__()


class _Everything:
    """What call_started and call_ended return: awaiting it makes the journal's writes so far durable."""

    __slots__ = ("journal",)

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __await__(self) -> Generator[Any, None, Any]:
        return self.journal._shipped().__await__()


class Journal:
    def __init__(
        self,
        db: Database,
        timezone: str = "Asia/Almaty",
        engine_id: str = "",
        now: Callable[[], float] = time.time,
        hold_seconds: float = HOLD_SECONDS,
        rows: RowsProcess | None = None,
    ) -> None:
        self._db = db
        # Where shipments go: a writer process (ivr.journal.rows_process), else the writer thread.
        self._rows: RowsProcess | Database = rows if rows is not None else db
        self.hold_seconds = hold_seconds
        self._now = now  # epoch seconds from the engine's clock (pinned in tests)
        self._tz = zone(timezone)
        self._engine_id = engine_id
        self._open: dict[str, _OpenCall] = {}
        # (held_since, call) each time a call begins holding events, oldest first: the sweep looks at
        # the calls that come due, not at every open call (5,000 open: a pass of 0.2-1.5 ms a second).
        # An entry whose call has handed over since is stale (call.held_since moved on, or nothing held)
        # and is dropped when it reaches the front, within hold_seconds.
        self._holding: deque[tuple[float, _OpenCall]] = deque()
        # Rows handed over and not yet shipped to the writer, which happens SHIP_EVERY seconds.
        self._starts: list[tuple[Any, ...]] = []
        self._events: list[tuple[str, list[tuple[Any, ...]]]] = []  # (call_id, its held events) per hand-over
        self._ends: list[tuple[Any, ...]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last_ack: Awaitable[Any] | None = None  # of the last shipment: tickets commit in order
        self._everything = _Everything(self)
        self._sweeper: asyncio.TimerHandle | None = None

    def call_started(
        self,
        call_id: str,
        started_at: Moment,
        caller: str,
        language: str | None = None,
        menu: str = "",
    ) -> Awaitable[Any]:
        if type(call_id) is not str or not call_id:
            _check_id(call_id)
        # The engine passes epoch seconds: a datetime or an int goes the long way.
        start = started_at if type(started_at) is float else to_epoch(started_at, "started_at")
        if call_id not in self._open:
            self._open_call(call_id)
        self._starts.append((call_id, start, caller or "", language or "", menu, self._engine_id, self._tz))
        if self._timer is None:
            self._arm()
        return self._everything

    def event(
        self,
        call_id: str,
        kind: str,
        node: str = "",
        data: dict[str, Any] | None = None,
        at: Moment | None = None,
    ) -> Awaitable[Any]:
        """Record one step: a node visited, an input (dtmf digits; speech text + confidence), a
        language change (kind 'language', data {'language': 'kk'}), an error. Held in memory until the
        call's next durability point; awaiting the result makes it durable now."""
        call = self._open.get(call_id)
        if call is None:
            _check_id(call_id)
            call = self._open_call(call_id)  # started before this journal
        handling = _kinds.get(kind)
        if handling is None:
            handling = _check_kind(kind)
        if handling is _LANGUAGE and not (data and data.get("language")):
            raise ValueError("a 'language' event needs data={'language': ...}")
        seq = call.seq
        call.seq = seq + 1
        held = call.held
        if not held:
            call.held_since = since = _monotonic()
            self._holding.append((since, call))
        held.append((seq, self._now() if at is None else to_epoch(at, "at"), kind, node or "", data))
        if handling is _DURABLE or len(held) >= HOLD_MAX:
            self._hand_over(call)
        return call

    def call_ended(
        self, call_id: str, outcome: str, topic: str | None = None, at: Moment | None = None
    ) -> Awaitable[Any]:
        if type(call_id) is not str or not call_id:
            _check_id(call_id)
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        ended = self._now() if at is None else to_epoch(at, "at")
        call = self._open.pop(call_id, None)
        if call is not None and call.held:
            self._hand_over(call)
        self._ends.append((call_id, ended, outcome, topic, self._engine_id, self._tz))
        if self._timer is None:
            self._arm()
        return self._everything

    def submit_held(self) -> None:
        """Hand everything recorded so far to the writer (before a shutdown, or to read it back)."""
        for call in self._open.values():
            if call.held:
                self._hand_over(call)
        self._ship()

    def close(self) -> None:
        """Stop sweeping and hand everything held to the writer: the state is closing."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.submit_held()

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed."""
        self.submit_held()
        if self._rows is not self._db:
            await self._rows.flush()
        await self._db.flush()

    def _open_call(self, call_id: str) -> _OpenCall:
        call = self._open[call_id] = _OpenCall(self, call_id)
        if self._sweeper is None:
            self._arm_sweep()
        return call

    def _hand_over(self, call: _OpenCall) -> None:
        self._events.append((call.call_id, call.held))
        call.held = []
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script): nothing to wait for
            self._ship()
            return
        self._timer = loop.call_later(SHIP_EVERY, self._ship)

    def _arm_sweep(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a script without a loop: its calls end or flush before it exits
            return
        self._sweeper = loop.call_later(self._sweep_every(), self._sweep)

    def _sweep_every(self) -> float:
        return min(SWEEP_EVERY, self.hold_seconds / 2)

    def _sweep(self) -> None:
        """Hand over the events of every call that would hold them longer than HOLD_SECONDS by the next
        sweep: the front of the holding queue, as far as it is due."""
        self._sweeper = None
        oldest = _monotonic() - (self.hold_seconds - self._sweep_every())
        holding = self._holding
        while holding and holding[0][0] <= oldest:
            since, call = holding.popleft()
            if call.held and call.held_since == since:
                self._hand_over(call)
        if self._open:
            self._arm_sweep()

    def _ship(self) -> None:
        """Hand the starts, events and ends gathered since the last shipment to the writer, one Rows
        each: one shipment per SHIP_EVERY rather than a write per start, hand-over and end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        shipment = []
        if self._starts:
            shipment.append(Rows(insert_calls, self._starts, phase=0))
            self._starts = []
        if self._events:
            shipment.append(Rows(insert_events, self._events, phase=1))
            self._events = []
        if self._ends:
            shipment.append(Rows(end_calls, self._ends, phase=2))
            self._ends = []
        if shipment:
            self._last_ack = self._rows.submit_all(shipment)  # to the process: one write to its pipe

    async def _shipped(self) -> None:
        self._ship()
        if self._last_ack is not None:
            await self._last_ack

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
            events = _merged(
                tx.all("SELECT seq, at, kind, node, data FROM call_events WHERE call_id = ?", (row[0],)),
                tx.all("SELECT events FROM call_event_runs WHERE call_id = ? ORDER BY first_seq", (row[0],)),
            )
            return CallRecord(*row, events=events)

        return await self._db.read(fetch)


def _merged(rows: list[tuple[Any, ...]], runs: list[tuple[str]]) -> tuple[CallEvent, ...]:
    """A call's events in seq order from both tables: one row per event (schema v1, written before
    runs) and one row per run. A seq stored twice (two journals wrote the same call) keeps the first
    found, as ON CONFLICT DO NOTHING kept the first written."""
    by_seq: dict[int, CallEvent] = {}
    for seq, at, kind, node, data in rows:
        by_seq.setdefault(seq, CallEvent(seq, at, kind, node, json.loads(data)))
    for (events,) in runs:
        for seq, at, kind, node, data in run_events(events):
            if seq not in by_seq:
                by_seq[seq] = CallEvent(seq, at, kind, node, data)
    return tuple(by_seq[seq] for seq in sorted(by_seq))


def _check_id(call_id: str) -> None:
    if not call_id or not isinstance(call_id, str):
        raise ValueError(f"call_id must be a non-empty string, not {call_id!r}")


def _check_kind(kind: str) -> str:
    if not kind or not isinstance(kind, str) or not kind.replace("_", "").isalnum():
        raise ValueError(f"event kind {kind!r} must be a short identifier such as 'node' or 'dtmf'")
    if len(_kinds) < 1000:
        _kinds[kind] = _PLAIN
    return _PLAIN
