"""The journal through a database outage: what is recorded meanwhile is held in order and written once
when the database answers again, the writes someone awaits fail at once, what is held is capped, and a
stop during the outage is bounded and says what it loses. Real outages: a PostgreSQL server of the
test's own stopped and started again, a SQLite file locked by another connection."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from ivr.clock import FixedClock
from ivr.config import Settings
from ivr.http.live import LiveCalls
from ivr.http.metrics import EngineMetrics
from ivr.http.queues import QueuesView
from ivr.journal import Journal, State, StateError, open_state
from ivr.journal.db import HOLD_ROWS, Database, WriteHeld, _connect_postgresql
from tests.pg import backend_fixture, cluster_fixture, fresh_database_url  # noqa: F401  (the `backend` and `cluster` fixtures)
from tests.test_journal import stored_seqs

WRITERS = ("thread", "process")
STEPS = [("node", "welcome"), ("language", "welcome"), ("dtmf", "main")]


def whole_call(journal: Journal, call_id: str, clock: FixedClock, language: str = "kk") -> None:
    """A call from start to end, nothing awaited, as the engine records one."""
    journal.call_started(call_id, clock.time(), "+77010000000", None, "1414")
    journal.event(call_id, "node", "welcome")
    journal.event(call_id, "language", "welcome", {"language": language})
    journal.event(call_id, "dtmf", "main", {"digits": "2"})
    journal.call_ended(call_id, "self_served", "egov")


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll for a condition; the timeout only turns a hang into a failure."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition was not met in time")


async def journal_contents(
    state: State,
) -> tuple[dict[str, tuple[str | None, str]], dict[str, list[int]], Counter]:
    """Each call's (outcome, language), each call's stored event seqs, and the rollup by (language,
    outcome)."""

    def read(tx):  # type: ignore[no-untyped-def]
        calls = {
            c: (outcome, language)
            for c, outcome, language in tx.all("SELECT call_id, outcome, language FROM calls")
        }
        rollup: Counter = Counter()
        for language, outcome, count in tx.all("SELECT language, outcome, calls FROM call_rollup"):
            rollup[language, outcome] += count
        return calls, stored_seqs(tx), rollup

    return await state.db.read(read)


def metric(state: State, name: str) -> float:
    services = SimpleNamespace(state=state, speech=None)
    text = EngineMetrics(LiveCalls(), lambda: QueuesView("off"), services, lambda: None).render().decode()
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("writer", WRITERS)
async def test_calls_placed_while_postgresql_is_down_are_written_once_when_it_is_back(
    cluster, clock, writer, caplog, capfd, tmp_path
):
    caplog.set_level(logging.INFO, "ivr.journal")
    settings = Settings(state_dir=str(tmp_path), database_url=cluster.fresh_database_url())
    state = await open_state(settings, clock=clock, journal_writer=writer)
    journal = state.journal
    try:
        for n in range(10):
            whole_call(journal, f"before-{n}", clock)
        journal.call_started("running", clock.time(), "+77010000100", None, "1414")
        journal.event("running", "node", "welcome")
        await journal.flush()

        await asyncio.to_thread(cluster.stop)  # pg_ctl stop -m fast: the server and its connections go
        for n in range(30):
            whole_call(journal, f"during-{n}", clock, "ru" if n % 3 else "kk")
            if n % 10 == 9:
                journal.submit_held()  # several shipments, each met by the outage
                await asyncio.sleep(0.1)
        journal.event("running", "language", "welcome", {"language": "ru"})  # its language choice
        journal.event("running", "queue", "operator", {"queue": "ru-general"})  # handed over now
        journal.submit_held()
        await until(lambda: state.held_rows >= 30 * 3 + 1)

        # What someone waits for fails at once, as before the change: the caller takes its safe path.
        with pytest.raises((StateError, psycopg.OperationalError)):
            await asyncio.wait_for(
                state.callbacks.request("+77010000100", "ru", "ru-general", call_id="running"), 60
            )
        with pytest.raises(WriteHeld):  # held, to be written: no one waits for the outage to end
            await asyncio.wait_for(journal.call_started("awaited", clock.time(), "+7701", "kk", "1414"), 60)
        with pytest.raises((StateError, psycopg.OperationalError)):
            await asyncio.wait_for(journal.call("before-0"), 60)  # reads fail as before
        assert metric(state, "ivr_journal_held_rows") == state.held_rows > 0
        assert metric(state, "ivr_journal_backlog_writes") > 0

        await asyncio.to_thread(cluster.start)
        await until(lambda: state.held_rows == 0)
        for n in range(5):
            whole_call(journal, f"after-{n}", clock)
        journal.call_ended("running", "queued", "egov")
        await journal.flush()
        calls, seqs, rollup = await journal_contents(state)
        assert metric(state, "ivr_journal_held_rows") == 0
        assert metric(state, "ivr_journal_dropped_rows_total") == 0
    finally:
        await state.close()

    whole = [
        f"{when}-{n}" for when, count in (("before", 10), ("during", 30), ("after", 5)) for n in range(count)
    ]
    assert set(calls) == {*whole, "running", "awaited"}  # each once: call_id is the key
    assert all(calls[c][0] == "self_served" and seqs[c] == [1, 2, 3] for c in whole)
    assert calls["running"] == ("queued", "ru") and seqs["running"] == [1, 2, 3]
    assert calls["awaited"] == (None, "kk")  # its start was held and written, the call never ended
    assert sum(rollup.values()) == len(whole) + 1  # each ended call counted once
    assert rollup == Counter((language, outcome) for outcome, language in calls.values() if outcome)
    if writer == "thread":
        logged = [r.getMessage() for r in caplog.records if r.name == "ivr.journal.db"]
    else:  # the writer process logs its own outage, to the engine's stderr
        logged = capfd.readouterr().err.splitlines()
    assert len([line for line in logged if "state database unreachable" in line]) == 1
    [ended] = [line for line in logged if "answers again" in line]
    assert "journal rows held were written" in ended and "dropped" not in ended
    assert not [line for line in logged if "state write failed" in line]  # not a line per failed write


@pytest.mark.parametrize("writer", WRITERS)
async def test_a_stop_while_postgresql_is_down_ends_and_says_what_it_loses(
    cluster, clock, writer, caplog, capfd, tmp_path
):
    caplog.set_level(logging.INFO, "ivr.journal")
    url = cluster.fresh_database_url()
    state = await open_state(
        Settings(state_dir=str(tmp_path), database_url=url), clock=clock, journal_writer=writer
    )
    whole_call(state.journal, "kept", clock)
    await state.journal.flush()
    await asyncio.to_thread(cluster.stop)
    try:
        for n in range(4):
            whole_call(state.journal, f"lost-{n}", clock)
        state.journal.submit_held()
        await until(lambda: state.held_rows > 0)
    finally:
        # One more try, then the held rows are given up: the engine stops within its bound, not when
        # the database comes back (a hang would end in wait_for's generous timeout instead).
        await asyncio.wait_for(state.close(), 60)
    logged = "\n".join(r.getMessage() for r in caplog.records) + capfd.readouterr().err
    assert "stopping with the state database unreachable" in logged
    assert "12 journal rows held are lost" in logged  # 4 starts, 4 runs, 4 ends
    assert "not acknowledged" not in logged  # the writer process did not hand them to the thread

    await asyncio.to_thread(cluster.start)
    state = await open_state(Settings(state_dir=str(tmp_path), database_url=url), clock=clock)
    try:
        calls, _, rollup = await journal_contents(state)
    finally:
        await state.close()
    assert calls == {"kept": ("self_served", "kk")} and rollup == Counter({("kk", "self_served"): 1})


async def test_a_batch_whose_commit_was_lost_on_the_way_back_is_written_again_and_counted_once(
    backend, clock, monkeypatch, caplog
):
    """The commit reached the database, its answer did not (the connection broke just then): the writer
    cannot know, holds the batch and writes it again, and nothing is stored or counted twice."""
    caplog.set_level(logging.INFO, "ivr.journal")
    state = await open_state(Settings(**backend), clock=clock)
    commit = Database._commit
    answers = ["lost"]

    def commit_and_lose_the_answer(db: Database) -> None:
        commit(db)
        if answers:
            answers.pop()
            if db.dialect.value == "sqlite":
                error = sqlite3.OperationalError("disk I/O error")
                error.sqlite_errorcode = sqlite3.SQLITE_IOERR
                raise error
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    try:
        monkeypatch.setattr(Database, "_commit", commit_and_lose_the_answer)
        for n in range(20):
            whole_call(state.journal, f"c{n}", clock, "ru" if n % 2 else "kk")
        state.journal.submit_held()
        await until(lambda: not answers)
        await until(lambda: state.db.held_rows == 0)
        await state.journal.flush()
        calls, seqs, rollup = await journal_contents(state)
        runs = await state.db.read(lambda tx: tx.one("SELECT COUNT(*) FROM call_event_runs")[0])
    finally:
        await state.close()
    assert len(calls) == 20 and runs == 20 and all(s == [1, 2, 3] for s in seqs.values())
    assert rollup == Counter({("kk", "self_served"): 10, ("ru", "self_served"): 10})
    assert len(lines(caplog, "state database unreachable")) == 1
    assert lines(caplog, "answers again")[0].endswith("60 journal rows held were written")


@pytest.fixture
def sqlite_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], sqlite3.Connection]:
    """Another process's long write transaction on the engine's SQLite file (an admin's sqlite3 shell,
    a backup tool): the writer fails once its busy timeout, shortened here, runs out."""
    monkeypatch.setattr("ivr.journal.db.BUSY_TIMEOUT", 0.05)

    def lock() -> sqlite3.Connection:
        other = sqlite3.connect(tmp_path / "state" / "ivr.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        return other

    return lock


async def released(state: State, lock: sqlite3.Connection):  # type: ignore[no-untyped-def]
    """The lock given up: what was held is written, and the journal's contents read back."""
    lock.execute("ROLLBACK")
    await until(lambda: state.held_rows == 0)
    await state.journal.flush()
    return await journal_contents(state)


@pytest.mark.parametrize("writer", WRITERS)
async def test_a_locked_sqlite_file_holds_the_rows_until_it_is_released(sqlite_lock, clock, writer, tmp_path):
    state = await open_state(Settings(state_dir=str(tmp_path / "state")), clock=clock, journal_writer=writer)
    try:
        whole_call(state.journal, "before", clock)
        await state.journal.flush()
        other = sqlite_lock()
        for n in range(5):
            whole_call(state.journal, f"during-{n}", clock)
        state.journal.submit_held()
        await until(lambda: state.held_rows == 15)
        with pytest.raises((StateError, sqlite3.OperationalError), match="locked"):  # fails at once
            await asyncio.wait_for(state.callbacks.request("+77010000100", "kk", "kk-general"), 60)
        calls, seqs, rollup = await released(state, other)
    finally:
        await state.close()
    assert set(calls) == {"before", *(f"during-{n}" for n in range(5))}
    assert all(s == [1, 2, 3] for s in seqs.values()) and sum(rollup.values()) == 6


@pytest.mark.parametrize("writer", WRITERS)
async def test_past_the_cap_the_oldest_held_rows_are_dropped_counted_and_logged_once(
    sqlite_lock, clock, writer, caplog, capfd, tmp_path
):
    caplog.set_level(logging.INFO, "ivr.journal")
    settings = Settings(state_dir=str(tmp_path / "state"), journal_hold_rows=30)
    state = await open_state(settings, clock=clock, journal_writer=writer)
    try:
        await state.journal.flush()
        other = sqlite_lock()
        for n in range(25):
            whole_call(state.journal, f"c{n:02d}", clock)
            state.journal.submit_held()  # a shipment per call: its start, its run, its end
        await until(lambda: state.held_rows == 30 and metric(state, "ivr_journal_dropped_rows_total") == 45)
        calls, _, rollup = await released(state, other)
    finally:
        await state.close()
    assert sorted(calls) == [f"c{n:02d}" for n in range(15, 25)]  # the newest ten calls kept, whole
    assert sum(rollup.values()) == 10
    logged = [r.getMessage() for r in caplog.records if r.name == "ivr.journal.db"]
    if writer == "process":
        logged = capfd.readouterr().err.splitlines()
    assert len([line for line in logged if "the oldest are dropped" in line]) == 1
    [ended] = [line for line in logged if "answers again" in line]
    assert "30 journal rows held were written, 45 dropped" in ended


def test_the_cap_is_a_setting_whose_default_the_writer_uses():
    assert Settings().journal_hold_rows == HOLD_ROWS


def test_a_postgresql_server_gone_silent_is_given_up_on_within_30_s() -> None:
    # A network that drops packets neither answers nor refuses: the writer must not wait the kernel's
    # 15 minutes for it. The URL's own settings win over ours.
    connection = _connect_postgresql(fresh_database_url() + "?keepalives_idle=20", autocommit=True)
    try:
        dsn = dict(item.split("=", 1) for item in connection.info.dsn.split())
    finally:
        connection.close()
    assert (dsn["tcp_user_timeout"], dsn["keepalives"], dsn["keepalives_idle"]) == ("30000", "1", "20")
