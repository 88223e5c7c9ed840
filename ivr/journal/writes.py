"""What the writer thread does with the journal's rows: one function per kind of row, each run once per
batch over every row of that kind (db.Rows), so a batch of a thousand calls is a handful of statements.

SQLite takes the rows through executemany (a C loop). PostgreSQL takes them through COPY into a
temporary table and one set-based statement each (Tx.stage): 2 us a row on the writer thread against
9-15 us for executemany or a multi-row INSERT. Everything derived from a row (its JSON, the local day and
hour) is computed here, off the event loop. A call's events are one row per run (what it handed over at
once), so SQLite's per-row cost (~4 us) is paid once a hand-over, not once an event.
"""

from __future__ import annotations

import json
from typing import Any

from ivr.journal.db import Dialect, Tx
from ivr.journal.timeutil import local_day_hour

# One encoder for every run: json.dumps with options builds a new one per call. A run's tuples encode as
# arrays. No circular check (a dict of ids per container): event data is plain values, and a circular
# one would still fail, with RecursionError.
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=str, check_circular=False
).encode
LANGUAGE = "language"

# -- call starts: (call_id, started_at, caller, language, menu, engine_id, zone) ------------------------

_INSERT_CALL = (
    "INSERT INTO calls (call_id, started_at, caller, language, menu, engine_id, day, hour) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING"
)
_CALLS_IN = (
    "call_id TEXT, started_at DOUBLE PRECISION, caller TEXT, language TEXT, menu TEXT, engine_id TEXT, "
    "day TEXT, hour INTEGER"
)
_INSERT_CALLS_STAGED = (
    "INSERT INTO calls (call_id, started_at, caller, language, menu, engine_id, day, hour) "
    "SELECT * FROM journal_calls_in ON CONFLICT (call_id) DO NOTHING"
)


def insert_calls(tx: Tx, rows: list[tuple[Any, ...]]) -> None:
    params = [
        (call_id, start, caller, language, menu, engine_id, *local_day_hour(start, tz))
        for call_id, start, caller, language, menu, engine_id, tz in rows
    ]
    if tx.dialect is Dialect.POSTGRESQL:
        tx.stage("journal_calls_in", _CALLS_IN, params)
        tx.execute(_INSERT_CALLS_STAGED)
    else:
        tx.executemany(_INSERT_CALL, params)


# -- events: (call_id, run) per hand-over, a run a list of (seq, at, kind, node, data dict or None) in seq
# order. One row per run, its events one JSON array: SQLite's cost is per row, so a call's dozen events
# cost one row's. A run written again has the same (call_id, first_seq) and is dropped.

_INSERT_RUN = (
    "INSERT INTO call_event_runs (call_id, first_seq, events) VALUES (?, ?, ?) "
    "ON CONFLICT (call_id, first_seq) DO NOTHING"
)
_RUNS_IN = "call_id TEXT, first_seq INTEGER, events TEXT"
_INSERT_RUNS_STAGED = (
    "INSERT INTO call_event_runs (call_id, first_seq, events) "
    "SELECT * FROM journal_runs_in ON CONFLICT (call_id, first_seq) DO NOTHING"
)
_SET_LANGUAGE = "UPDATE calls SET language = ? WHERE call_id = ?"


def insert_events(tx: Tx, runs: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    params = [(call_id, run[0][0], _ENCODE(run)) for call_id, run in runs]
    if tx.dialect is Dialect.POSTGRESQL:
        tx.stage("journal_runs_in", _RUNS_IN, params)
        tx.execute(_INSERT_RUNS_STAGED)
    else:
        tx.executemany(_INSERT_RUN, params)
    # Runs come in seq order, so a call's last choice is the one kept.
    languages = [
        (data["language"], call_id)
        for call_id, run in runs
        for _, _, kind, _, data in run
        if kind == LANGUAGE
    ]
    if languages:
        tx.executemany(_SET_LANGUAGE, languages)


def run_events(events: str) -> list[tuple[int, float, str, str, dict[str, Any]]]:
    """The events of a stored run as (seq, at, kind, node, data): the reader's side of insert_events."""
    return [(seq, at, kind, node, data or {}) for seq, at, kind, node, data in json.loads(events)]


# -- call ends: (call_id, ended_at, outcome, topic, engine_id, zone) ------------------------------------
# A call whose start was lost gets a row started when it ended. Only the first outcome of a call counts,
# and only it increments the hourly rollup.

_INSERT_UNSTARTED = (
    "INSERT INTO calls (call_id, started_at, engine_id, day, hour) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id) DO NOTHING"
)
_ROLLUP_ONE = (
    "INSERT INTO call_rollup (day, hour, language, topic, outcome, calls) "
    "SELECT day, hour, language, ?, ?, 1 FROM calls WHERE call_id = ? AND outcome IS NULL "
    "ON CONFLICT (day, hour, language, topic, outcome) DO UPDATE SET calls = call_rollup.calls + 1"
)
_END = "UPDATE calls SET ended_at = ?, outcome = ?, topic = ? WHERE call_id = ? AND outcome IS NULL"
_ENDS_IN = "call_id TEXT, ended_at DOUBLE PRECISION, outcome TEXT, topic TEXT, engine_id TEXT, day TEXT, hour INTEGER"
_INSERT_UNSTARTED_STAGED = (
    "INSERT INTO calls (call_id, started_at, engine_id, day, hour) "
    "SELECT call_id, ended_at, engine_id, day, hour FROM journal_ends_in ON CONFLICT (call_id) DO NOTHING"
)
# The rollup counts exactly the rows this UPDATE changed: another engine ending the same call at the
# same time waits for the row lock and then finds an outcome.
_END_AND_ROLLUP_STAGED = (
    "WITH ended AS (UPDATE calls SET ended_at = e.ended_at, outcome = e.outcome, topic = e.topic "
    "FROM journal_ends_in e WHERE calls.call_id = e.call_id AND calls.outcome IS NULL "
    "RETURNING calls.day, calls.hour, calls.language, COALESCE(calls.topic, '') AS topic, calls.outcome) "
    "INSERT INTO call_rollup (day, hour, language, topic, outcome, calls) "
    "SELECT day, hour, language, topic, outcome, COUNT(*) FROM ended GROUP BY day, hour, language, topic, outcome "
    "ON CONFLICT (day, hour, language, topic, outcome) DO UPDATE SET calls = call_rollup.calls + EXCLUDED.calls"
)


def end_calls(tx: Tx, rows: list[tuple[Any, ...]]) -> None:
    first: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        first.setdefault(row[0], row)  # a later end of the same call in this batch changes nothing
    ends = [
        (call_id, ended, outcome, topic, engine_id, *local_day_hour(ended, tz))
        for call_id, ended, outcome, topic, engine_id, tz in first.values()
    ]
    if tx.dialect is Dialect.POSTGRESQL:
        tx.stage("journal_ends_in", _ENDS_IN, ends)
        tx.execute(_INSERT_UNSTARTED_STAGED)
        tx.execute(_END_AND_ROLLUP_STAGED)
        return
    tx.executemany(
        _INSERT_UNSTARTED, [(c, ended, engine, day, hour) for c, ended, _, _, engine, day, hour in ends]
    )
    tx.executemany(_ROLLUP_ONE, [(topic or "", outcome, c) for c, _, outcome, topic, *_ in ends])
    tx.executemany(_END, [(ended, outcome, topic, c) for c, ended, outcome, topic, *_ in ends])
