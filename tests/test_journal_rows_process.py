"""The journal's writer process: rows written and acknowledged after their commit, handed to the writer
thread when the process dies, written even when the engine is killed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.clock import FixedClock
from ivr.config import ConfigError, Settings, load_settings
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.journal import open_state
from ivr.testing.engine_fixtures import OPEN_HOURS, project_settings
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)


async def stored_calls(state) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return dict(await state.db.read(lambda tx: tx.all("SELECT call_id, outcome FROM calls")))


async def test_the_journal_rows_go_through_the_writer_process_not_the_thread(backend):
    state = await open_state(Settings(**backend), journal_writer="process")
    try:
        assert state.rows is not None and state.rows.pid is not None
        state.journal.call_started("p1", time.time(), "+77010000001", "ru", "1414")
        state.journal.event("p1", "node", "welcome")
        await state.journal.call_ended("p1", "queued", "egov")  # awaited: committed when it returns
        assert await stored_calls(state) == {"p1": "queued"}
        record = await state.journal.call("p1")
        assert [e.node for e in record.events] == ["welcome"]
        assert state.db.batches == 0  # the writer thread committed nothing
        assert not state.rows.broken
    finally:
        await state.close()


async def test_closing_the_state_writes_what_was_shipped_and_ends_the_process(backend):
    state = await open_state(Settings(**backend), journal_writer="process")
    pid = state.rows.pid
    for n in range(50):
        state.journal.call_started(f"c{n}", time.time(), "+7701", "kk", "1414")
        state.journal.call_ended(f"c{n}", "self_served")  # not awaited
    await state.close()
    assert not process_alive(pid)
    state = await open_state(Settings(**backend), journal_writer="process")
    try:
        assert await stored_calls(state) == {f"c{n}": "self_served" for n in range(50)}
    finally:
        await state.close()


async def test_a_writer_process_that_dies_hands_its_rows_to_the_writer_thread(backend, caplog):
    caplog.set_level(logging.ERROR, "ivr.journal.rows_process")
    state = await open_state(Settings(**backend), journal_writer="process")
    try:
        pid = state.rows.pid
        os.kill(pid, signal.SIGSTOP)  # it reads nothing more: what is shipped now stays unacknowledged
        state.journal.call_started("lost-with-it", time.time(), "+7701", "kk", "1414")
        ended = state.journal.call_ended("lost-with-it", "abandoned")
        state.journal.submit_held()  # shipped into the pipe now, not in 20 ms
        assert state.rows.pending_writes == 1  # its start and end, one shipment: the backlog /metrics shows
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(ended, 10)  # acknowledged all the same: by the writer thread
        assert state.rows.broken
        assert (
            "writer process ended" in caplog.text and "1 shipments not acknowledged" in caplog.text
        )  # its start and its end
        await state.journal.call_started("after", time.time(), "+7701", "ru", "1414")  # the thread's now
        assert await stored_calls(state) == {"lost-with-it": "abandoned", "after": None}
    finally:
        await state.close()


async def test_a_writer_process_that_cannot_start_leaves_the_rows_to_the_thread(backend, caplog, monkeypatch):
    caplog.set_level(logging.ERROR, "ivr.journal.rows_process")
    monkeypatch.setattr("ivr.journal.rows_process._CHILD", "import sys; sys.exit(3)")  # e.g. a broken install
    state = await open_state(Settings(**backend), journal_writer="process")
    try:
        assert state.rows.broken
        assert "did not start (it ended with status 3" in caplog.text
        await state.journal.call_ended("no-process", "callback")
        assert await stored_calls(state) == {"no-process": "callback"}
    finally:
        await state.close()


KILLED_ENGINE = """
import asyncio, sys, time
from ivr.config import Settings
from ivr.journal import open_state
from ivr.testing.engine_fixtures import OPEN_HOURS, project_settings

async def main():
    state = await open_state(
        Settings(state_dir=sys.argv[1], database_url=sys.argv[2]), journal_writer="process"
    )
    journal = state.journal
    journal.call_started("in-the-pipe", time.time(), "+77010000003", "kk", "1414")
    journal.call_ended("in-the-pipe", "queued")  # not awaited
    journal.submit_held()  # shipped into the writer's pipe now, not in 20 ms
    print("ready", state.rows.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_what_the_engine_shipped_is_written_even_when_the_engine_is_killed(backend, tmp_path):
    script = tmp_path / "engine.py"
    script.write_text(KILLED_ENGINE)
    engine = subprocess.Popen(
        [sys.executable, str(script), backend["state_dir"], backend["database_url"]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        word, writer = engine.stdout.readline().split()
        assert word == "ready"
    finally:
        os.kill(engine.pid, signal.SIGKILL)  # no clean-up, no flush
        engine.wait()
    await wait_until_gone(int(writer))  # its input ended: it writes what it read, then exits
    state = await open_state(Settings(**backend), journal_writer="process")
    try:
        assert await stored_calls(state) == {"in-the-pipe": "queued"}
    finally:
        await state.close()


async def test_the_writer_thread_alone_by_default(backend):
    state = await open_state(Settings(**backend))
    try:
        assert state.rows is None
        await state.journal.call_started("t1", time.time(), "+7701", "kk", "1414")
        assert await stored_calls(state) == {"t1": None}
        assert state.db.batches >= 1
    finally:
        await state.close()


async def test_the_engine_takes_its_journal_writer_from_its_settings(tmp_path: Path):
    settings = project_settings(tmp_path, journal_writer="process")
    engine = Engine(settings, EngineServices(settings=settings, clock=FixedClock(OPEN_HOURS)))
    await engine.start()
    try:
        rows = engine.services.state.rows
        assert rows is not None and rows.pid is not None and not rows.broken
    finally:
        await engine.stop(1)


def test_an_unknown_journal_writer_is_a_clear_configuration_error(tmp_path: Path):
    config = tmp_path / "ivr.toml"
    config.write_text('journal_writer = "fork"\n')
    with pytest.raises(ConfigError, match='journal_writer: expected "process" or "thread", got \'fork\''):
        load_settings(config, env={})


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A process that has exited but was not reaped yet is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_until_gone(pid: int, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if not process_alive(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the writer process {pid} is still running")
