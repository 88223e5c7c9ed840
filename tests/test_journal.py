"""The call journal: concurrent calls, idempotent writes, and a crash in the middle of a call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.journal import HOLD_MAX, OUTCOMES, Journal, State, open_state
from ivr.journal.db import Rows, Tx, Write
from ivr.journal.schema import MIGRATIONS
from ivr.journal.timeutil import zone
from ivr.journal.writes import end_calls, insert_calls, insert_events
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)

EVENTS_PER_CALL = 8


async def one_call(journal: Journal, n: int) -> None:
    call_id = f"call-{n:04d}"
    journal.call_started(call_id, time.time(), caller=f"+7701{n:07d}", language="kk", menu="1414")
    for step in range(EVENTS_PER_CALL):
        if step == 2:
            journal.event(call_id, "language", "welcome", {"language": "ru" if n % 3 == 0 else "kk"})
        else:
            journal.event(call_id, "dtmf", f"node{step}", {"digits": str(step % 10)})
        await asyncio.sleep(0)  # let the other calls interleave, as a real call waits for Asterisk
    await journal.call_ended(call_id, OUTCOMES[n % len(OUTCOMES)], topic=f"topic{n % 5}")


async def test_thousand_concurrent_calls_lose_and_duplicate_nothing(backend):
    state = await open_state(Settings(**backend), engine_id="engine-a")
    try:
        await asyncio.gather(*(one_call(state.journal, n) for n in range(1000)))
        calls, runs, per_call, rollup, ru = await state.db.read(
            lambda tx: (
                tx.one("SELECT COUNT(*) FROM calls WHERE outcome IS NOT NULL")[0],
                tx.one("SELECT COUNT(*) FROM call_event_runs")[0],
                stored_seqs(tx),
                tx.one("SELECT SUM(calls) FROM call_rollup")[0],
                tx.one("SELECT COUNT(*) FROM calls WHERE language = 'ru'")[0],
            )
        )
    finally:
        await state.close()
    assert calls == 1000
    assert runs == 1000  # each call's events were handed over once, at its end: one row
    assert len(per_call) == 1000
    assert all(seqs == list(range(1, EVENTS_PER_CALL + 1)) for seqs in per_call.values())
    assert rollup == 1000
    assert ru == len([n for n in range(1000) if n % 3 == 0])


def stored_seqs(tx: Tx) -> dict[str, list[int]]:
    """Each call's event seqs as stored: its runs in order, each run's events in order."""
    seqs: dict[str, list[int]] = {}
    for call_id, events in tx.all("SELECT call_id, events FROM call_event_runs ORDER BY call_id, first_seq"):
        seqs.setdefault(call_id, []).extend(event[0] for event in json.loads(events))
    return seqs


async def test_a_run_handed_over_twice_is_stored_once(backend):
    state = await open_state(Settings(**backend))
    try:
        # The journal's rows and the writer thread's are written by different writers: start first.
        await state.journal.call_started("c1", time.time(), "+77010000001", "kk", "1414")
        run = ("c1", [(seq, 1.7e9 + seq, "dtmf", "main", {"digits": str(seq)}) for seq in (1, 2, 3)])
        await state.db.submit(Rows(insert_events, [run]))
        await state.db.submit(Rows(insert_events, [run, run]))  # a batch retried, twice in one batch
        rows = await state.db.read(lambda tx: tx.all("SELECT call_id, first_seq FROM call_event_runs"))
        record = await state.journal.call("c1")
    finally:
        await state.close()
    assert rows == [("c1", 1)]
    assert [(e.seq, e.at, e.data) for e in record.events] == [
        (1, 1.7e9 + 1, {"digits": "1"}),
        (2, 1.7e9 + 2, {"digits": "2"}),
        (3, 1.7e9 + 3, {"digits": "3"}),
    ]


async def test_a_batch_of_ends_counts_each_open_call_once_under_its_own_hour_language_and_topic(backend):
    """1,200 ends in one batch (more than one lookup of open calls holds): calls started in earlier
    batches, in Kazakh or Russian, in two local hours; ends whose start never reached the database;
    calls ended twice in the batch and one ended in an earlier batch."""
    almaty = zone("Asia/Almaty")
    ten = datetime(2025, 11, 29, 10, 40, tzinfo=almaty).timestamp()
    eleven = ten + 3600
    state = await open_state(Settings(**backend))
    try:
        starts = [
            (f"c{n}", ten if n % 2 else eleven, "+7701", "ru" if n % 3 else "kk", "1414", "e", almaty)
            for n in range(1200)
        ]
        await state.db.submit(Rows(insert_calls, starts, phase=0))
        await state.db.submit(Rows(end_calls, [("c7", ten + 60, "queued", "egov", "e", almaty)], phase=2))
        ends = [(f"c{n}", ten + 120, OUTCOMES[n % 3], f"t{n % 2}", "e", almaty) for n in range(1200)]
        ends += [(f"lost{n}", eleven + 60, "abandoned", None, "e", almaty) for n in range(5)]
        ends += [
            ("c1", ten + 180, "failed", None, "e", almaty),
            ("lost0", eleven + 90, "failed", None, "e", almaty),
        ]
        await state.db.submit(Rows(end_calls, ends, phase=2))
        rollup = await state.db.read(
            lambda tx: tx.all("SELECT day, hour, language, topic, outcome, calls FROM call_rollup")
        )
        outcomes = dict(await state.db.read(lambda tx: tx.all("SELECT call_id, outcome FROM calls")))
    finally:
        await state.close()
    expected: Counter[tuple[object, ...]] = Counter({("2025-11-29", 10, "ru", "egov", "queued"): 1})
    for n in range(1200):
        if n != 7:
            hour = 10 if n % 2 else 11
            expected["2025-11-29", hour, "ru" if n % 3 else "kk", f"t{n % 2}", OUTCOMES[n % 3]] += 1
    expected["2025-11-29", 11, "", "", "abandoned"] += 5  # started when they ended, language unknown
    assert Counter({tuple(row[:5]): row[5] for row in rollup}) == expected
    assert outcomes["c7"] == "queued" and outcomes["c1"] == OUTCOMES[1]  # the first outcome stands
    assert outcomes["lost0"] == "abandoned" and len(outcomes) == 1205


async def schema_version(state: State) -> int:
    return await state.db.read(lambda tx: tx.one("SELECT MAX(version) FROM schema_version")[0])


_OLD_EVENT = "INSERT INTO call_events (call_id, seq, at, kind, node, data) VALUES (?, ?, ?, ?, ?, ?)"


async def test_events_stored_one_row_each_before_the_upgrade_are_still_read_in_seq_order(
    backend, monkeypatch
):
    # A state database at schema v1 (one row per event), as the previous release left it.
    with monkeypatch.context() as before_runs:
        before_runs.setattr("ivr.journal.db.MIGRATIONS", MIGRATIONS[:1])
        state = await open_state(Settings(**backend))
        try:
            state.journal.call_started("old", time.time(), "+77010000001", "kk", "1414")
            await state.db.submit(Write(_OLD_EVENT, ("old", 1, 1.7e9, "node", "welcome", "{}")))
            await state.db.submit(
                Write(_OLD_EVENT, ("old", 2, 1.7e9 + 1, "dtmf", "welcome", '{"digits":"2"}'))
            )
            assert await schema_version(state) == 1
        finally:
            await state.close()
    state = await open_state(Settings(**backend))  # migrates to runs
    try:
        journal = state.journal
        # The engine was upgraded mid-call: its next events went as a run.
        run = (
            "old",
            [
                (3, 1.7e9 + 2, "speech", "main", {"text": "кезек", "confidence": 0.9}),
                (4, 1.7e9 + 3, "node", "queue_menu", None),
            ],
        )
        await state.db.submit(Rows(insert_events, [run]))
        record = await journal.call("old")
        assert await schema_version(state) == len(MIGRATIONS)
    finally:
        await state.close()
    assert [(e.seq, e.kind, e.node, e.data) for e in record.events] == [
        (1, "node", "welcome", {}),
        (2, "dtmf", "welcome", {"digits": "2"}),
        (3, "speech", "main", {"text": "кезек", "confidence": 0.9}),
        (4, "node", "queue_menu", {}),
    ]


async def test_a_repeated_write_is_neither_duplicated_nor_counted_twice(backend):
    state = await open_state(Settings(**backend))
    try:
        started = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)
        journal = state.journal
        journal.call_started("c1", started, "+77010000001", "kk", "1414")
        journal.event("c1", "node", "welcome", {}, at=started)
        journal.event("c1", "speech", "main", {"text": "кезек", "confidence": 0.91}, at=started)
        # The same call written again from seq 1 (an engine retrying after a reconnect).
        again = Journal(state.db, "Asia/Almaty")
        again.call_started("c1", started, "+77010000001", "kk", "1414")
        again.event("c1", "node", "welcome", {"different": True}, at=started)
        await journal.call_ended("c1", "self_served", "booking", at=started)
        await journal.call_ended("c1", "abandoned", "booking", at=started)
        record = await journal.call("c1")
        rollup = await state.db.read(lambda tx: tx.all("SELECT outcome, calls FROM call_rollup"))
    finally:
        await state.close()
    assert [(e.seq, e.kind, e.data) for e in record.events] == [
        (1, "node", {}),
        (2, "speech", {"text": "кезек", "confidence": 0.91}),
    ]
    assert record.outcome == "self_served"  # the first outcome stands
    assert rollup == [("self_served", 1)]


async def test_call_records_its_local_day_and_hour_and_language_changes(backend):
    state = await open_state(Settings(**backend))
    try:
        # 2025-03-03 20:30 UTC is 2025-03-04 01:30 in Almaty (UTC+5).
        started = datetime(2025, 3, 3, 20, 30, tzinfo=UTC)
        state.journal.call_started("night", started, "+77010000002")
        state.journal.event("night", "language", "welcome", {"language": "ru"})
        await state.journal.call_ended("night", "queued", "outage")
        row = await state.db.read(lambda tx: tx.one("SELECT day, hour, language FROM calls"))
        record = await state.journal.call("night")
    finally:
        await state.close()
    assert row == ("2025-03-04", 1, "ru")
    assert record.language == "ru" and record.topic == "outage"


async def test_bad_journal_input_is_refused_with_the_reason(backend):
    state = await open_state(Settings(**backend))
    try:
        with pytest.raises(ValueError, match="outcome 'served' is not one of"):
            state.journal.call_ended("c", "served")
        with pytest.raises(ValueError, match="no time zone"):
            state.journal.call_started("c", datetime(2025, 1, 1), "1")
        with pytest.raises(ValueError, match="needs data"):
            state.journal.event("c", "language", "welcome", {})
    finally:
        await state.close()


CRASHING_ENGINE = """
import asyncio, sys, time
from ivr.config import Settings
from ivr.journal import open_state

async def main():
    state = await open_state(Settings(state_dir=sys.argv[1], database_url=sys.argv[2]))
    journal = state.journal
    await journal.call_started("crash-call", time.time(), "+77010000003", "kk", "1414")
    seq = 0
    while True:
        seq += 1
        await journal.event("crash-call", "node", f"node{seq}", {"n": seq})
        print("acked", seq, flush=True)
        journal.event("crash-call", "dtmf", f"node{seq}", {"digits": "1"})  # not awaited: may be lost
        seq += 1

asyncio.run(main())
"""


def start_engine_script(text: str, backend: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    """An engine of a few lines in its own process, on the test's database, for `kill -9`."""
    script = tmp_path / "engine.py"
    script.write_text(text)
    return subprocess.Popen(
        [sys.executable, str(script), backend["state_dir"], backend["database_url"]],
        stdout=subprocess.PIPE,
        text=True,
    )


def kill_when_ready(text: str, backend: dict[str, str], tmp_path: Path) -> None:
    """Run the script until it prints "ready", then `kill -9` it: no clean-up, no flush."""
    child = start_engine_script(text, backend, tmp_path)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


async def test_a_crash_mid_call_keeps_every_acknowledged_event(backend, tmp_path):
    child = start_engine_script(CRASHING_ENGINE, backend, tmp_path)
    acknowledged = 0
    try:
        for line in child.stdout:
            acknowledged = int(line.split()[1])
            if acknowledged >= 41:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)  # no clean-up, no flush: as if the engine died
        child.wait()
    assert acknowledged >= 41

    state = await open_state(Settings(**backend))
    try:
        record = await state.journal.call("crash-call")
    finally:
        await state.close()
    seqs = [e.seq for e in record.events]
    assert record.outcome is None  # the call never ended
    assert seqs[:acknowledged] == list(range(1, acknowledged + 1))
    assert seqs == list(range(1, len(seqs) + 1))  # what survived is a prefix: nothing out of order
    node_events = [e for e in record.events if e.kind == "node"]
    assert [e.data["n"] for e in node_events[: (acknowledged + 1) // 2]] == list(
        range(1, acknowledged + 1, 2)
    )
    assert {e.kind for e in record.events} <= {"node", "dtmf"}


HOLDING_ENGINE = """
import asyncio, sys, time
from ivr.config import Settings
from ivr.journal import HOLD_MAX, open_state

async def main():
    state = await open_state(Settings(state_dir=sys.argv[1], database_url=sys.argv[2]))
    journal = state.journal
    journal.call_started("queued-call", time.time(), "+77010000004", "kk", "1414")
    journal.event("queued-call", "node", "welcome")
    journal.event("queued-call", "dtmf", "main", {"digits": "0"})
    journal.event("queued-call", "queue", "operator", {"queue": "kk-general"})  # a durability point
    journal.event("queued-call", "queue_result", "operator", {"status": "TIMEOUT"})  # held
    journal.call_started("long-call", time.time(), "+77010000005", "kk", "1414")
    for n in range(HOLD_MAX + 5):  # the first HOLD_MAX go on their own
        journal.event("long-call", "dtmf", "main", {"digits": str(n % 10)})
    started = journal.call_started("browsing-call", time.time(), "+77010000006", "ru", "1414")
    journal.event("browsing-call", "node", "welcome")  # held: no durability point yet
    await state.callbacks.request("+77010000004", "kk", "kk-general", call_id="queued-call")
    await started  # everything handed over so far is committed; the held events are not
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


QUIET_ENGINE = """
import asyncio, sys, time
from ivr.config import Settings
from ivr.journal import open_state

async def main():
    state = await open_state(Settings(state_dir=sys.argv[1], database_url=sys.argv[2]))
    journal = state.journal
    journal.hold_seconds = 0.2  # HOLD_SECONDS, shortened for the test
    journal.call_started("quiet-call", time.time(), "+77010000007", "ru", "1414")
    journal.event("quiet-call", "node", "welcome")
    journal.event("quiet-call", "node", "long-answer")  # then a long prompt: no event, no durability point
    await asyncio.sleep(1.0)
    await journal.call_started("later-call", time.time(), "+77010000008", "ru", "1414")  # commits in order
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_quiet_call_held_longer_than_hold_seconds_keeps_its_path_through_a_crash(backend, tmp_path):
    kill_when_ready(QUIET_ENGINE, backend, tmp_path)
    state = await open_state(Settings(**backend))
    try:
        quiet = await state.journal.call("quiet-call")
    finally:
        await state.close()
    assert quiet.outcome is None
    assert [(e.kind, e.node) for e in quiet.events] == [("node", "welcome"), ("node", "long-answer")]


async def test_a_crash_loses_only_the_events_held_since_each_calls_last_durability_point(backend, tmp_path):
    kill_when_ready(HOLDING_ENGINE, backend, tmp_path)
    state = await open_state(Settings(**backend))
    try:
        queued = await state.journal.call("queued-call")
        long = await state.journal.call("long-call")
        browsing = await state.journal.call("browsing-call")
        callbacks = await state.callbacks.list()
        in_progress = await state.db.read(
            lambda tx: tx.one("SELECT COUNT(*) FROM calls WHERE outcome IS NULL")[0]
        )
    finally:
        await state.close()
    # Up to entering the queue, not the queue's result recorded after it.
    assert [e.kind for e in queued.events] == ["node", "dtmf", "queue"]
    assert [e.seq for e in long.events] == list(range(1, HOLD_MAX + 1))
    assert browsing.events == ()  # its start is there (the board counts it in the IVR), its path is not
    assert in_progress == 3
    assert [(c.call_id, c.state) for c in callbacks] == [("queued-call", "pending")]


async def test_the_sweep_hands_over_a_quiet_call_by_when_it_began_holding_again(backend, monkeypatch):
    """A call that handed over at its queue entry and then holds one more event is swept by that
    event's time, not by when it first held; a call holding since the start is swept first."""
    now = [100.0]  # the journal's monotonic clock, moved by hand; sweeps still run on the loop's timer
    monkeypatch.setattr("ivr.journal.journal._monotonic", lambda: now[0])
    state = await open_state(Settings(**backend))
    journal = state.journal
    journal.hold_seconds = 0.2  # sweeps every 0.1 s of the loop; due: held over 0.1 s of `now`

    async def stored_kinds(call_id: str) -> list[str]:
        await journal.call_started(f"marker-{now[0]}", time.time(), "", "ru", "1414")  # commits in order
        record = await journal.call(call_id)
        return [event.kind for event in record.events]

    try:
        journal.call_started("queued", time.time(), "+77010000001", "ru", "1414")
        journal.call_started("browsing", time.time(), "+77010000002", "ru", "1414")
        journal.event("queued", "node", "main")
        journal.event("browsing", "node", "main")
        journal.event("queued", "queue", "operator", {"queue": "ru-general"})  # handed over now
        now[0] = 100.15
        journal.event("queued", "queue_result", "operator", {"status": "TIMEOUT"})  # holding again
        now[0] = 100.13
        await asyncio.sleep(0.25)  # two sweeps: "browsing" is due, "queued"'s new hold is not
        assert await stored_kinds("browsing") == ["node"]
        assert await stored_kinds("queued") == ["node", "queue"]
        now[0] = 100.3
        await asyncio.sleep(0.25)
        assert await stored_kinds("queued") == ["node", "queue", "queue_result"]
    finally:
        await state.close()
