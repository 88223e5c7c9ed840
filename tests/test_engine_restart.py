"""An engine that stopped without closing its calls (killed, or its machine went down): its next start
journals them as handed back, so the board stops counting them as in the IVR."""

from __future__ import annotations

import socket
import subprocess
import sys

import attrs
import pytest

from ivr.engine.app import Engine, StartupError
from ivr.engine.services import EngineServices
from ivr.journal.engines import LEASE_SECONDS
from ivr.journal.state import open_state
from ivr.testing.engine_fixtures import OPEN_HOURS


def a_finished_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def calls_left_open(settings, engine_id: str, *call_ids: str) -> None:
    state = await open_state(settings, engine_id)
    for call_id in call_ids:
        await state.journal.call_started(call_id, OPEN_HOURS, "77011234567", "ru", "1414")
    await state.close()


async def test_a_killed_engines_calls_are_handed_back_at_the_next_start(
    engine_settings, clock, caplog
) -> None:
    host = socket.gethostname()
    killed = f"{host}:{a_finished_process_id()}"
    alive = f"{host}:1"  # another engine of this machine, still running
    elsewhere = "ivr-b.example:4242"  # another machine's engine: not this one's to judge
    await calls_left_open(engine_settings, killed, "1795000000.1@127.0.0.1", "1795000000.2@127.0.0.1")
    await calls_left_open(engine_settings, alive, "1795000000.3@127.0.0.1")
    await calls_left_open(engine_settings, elsewhere, "1795000000.4@127.0.0.1")
    engine = Engine(engine_settings, EngineServices(settings=engine_settings, clock=clock))
    await engine.start()
    try:
        journal = engine.services.state.journal
        outcomes = [(await journal.call(f"1795000000.{n}@127.0.0.1")).outcome for n in (1, 2, 3, 4)]
    finally:
        await engine.stop(1)
    assert outcomes == ["handed_back", "handed_back", None, None]
    assert f"calls left unfinished by {killed} (2) (stopped without closing them" in caplog.text


async def test_a_named_engine_closes_what_its_last_run_left(engine_settings, clock) -> None:
    settings = attrs.evolve(engine_settings, http=attrs.evolve(engine_settings.http, name="ivr-a"))
    await calls_left_open(settings, "ivr-a", "1795000000.5@127.0.0.1")
    await calls_left_open(settings, "ivr-b", "1795000000.6@127.0.0.1")  # another engine, alive somewhere
    engine = Engine(settings, EngineServices(settings=settings, clock=clock))
    await engine.start()
    try:
        state = engine.services.state
        assert state.engine_id == "ivr-a"  # the name of the board is the journal's too
        outcomes = [(await state.journal.call(f"1795000000.{n}@127.0.0.1")).outcome for n in (5, 6)]
    finally:
        await engine.stop(1)
    assert outcomes == ["handed_back", None]


HOLD_THE_NAME = """
import asyncio, sys
from ivr.config import Settings
from ivr.journal.engines import EngineLease
from ivr.journal.state import open_state

async def main(state_dir, name, now):
    state = await open_state(Settings(state_dir=state_dir), name)
    await EngineLease(state.db, name, lambda: now).claim()
    print("holding", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin, or kills us

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


async def test_a_second_engine_with_a_running_engines_name_refuses_to_start(engine_settings, clock) -> None:
    # Two engines with one name would close each other's calls at start: the second one must not run.
    settings = attrs.evolve(engine_settings, http=attrs.evolve(engine_settings.http, name="ivr-a"))
    await calls_left_open(settings, "ivr-a", "1795000000.7@127.0.0.1")  # the running engine's call
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_NAME, settings.state_dir, "ivr-a", str(clock.time())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline() == "holding\n"
        engine = Engine(settings, EngineServices(settings=settings, clock=clock))
        with pytest.raises(StartupError) as refused:
            await engine.start()
        await engine.stop(0)
        assert (
            f'another engine is running with the name "ivr-a": {socket.gethostname()} (process {other.pid})'
            in str(refused.value)
        )
        assert "give this one its own [http] name" in str(refused.value)
        state = await open_state(settings, "ivr-a")
        try:
            assert (await state.journal.call("1795000000.7@127.0.0.1")).outcome is None  # left alone
        finally:
            await state.close()
    finally:
        other.kill()  # as kill -9 would: its lease is left behind, and its process is gone
        other.wait()
    engine = Engine(settings, EngineServices(settings=settings, clock=clock))
    await engine.start()  # this machine's process holding the name is gone: the name is free
    try:
        outcome = (await engine.services.state.journal.call("1795000000.7@127.0.0.1")).outcome
    finally:
        await engine.stop(1)
    assert outcome == "handed_back"  # now the call is an earlier run's


async def lease_of_another_machine(settings, name: str, seen_at: float) -> None:
    state = await open_state(settings, name)
    await state.db.write(
        lambda tx: tx.execute(
            "INSERT INTO engines (engine_id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?)",
            (name, "ivr-b.example", 4242, seen_at - 3600, seen_at),
        )
    )
    await state.close()


async def test_another_machines_engine_holds_its_name_until_its_lease_runs_out(
    engine_settings, clock, caplog
) -> None:
    settings = attrs.evolve(engine_settings, http=attrs.evolve(engine_settings.http, name="ivr-b"))
    await lease_of_another_machine(settings, "ivr-b", clock.time() - 20)  # renewed 20 s ago
    engine = Engine(settings, EngineServices(settings=settings, clock=clock))
    with pytest.raises(StartupError, match=r"ivr-b\.example \(process 4242\), last heard of 20 s ago"):
        await engine.start()
    await engine.stop(0)

    clock.advance(LEASE_SECONDS)  # no renewal for longer than a lease: that engine has stopped
    engine = Engine(settings, EngineServices(settings=settings, clock=clock))
    await engine.start()
    await engine.stop(1)
    assert (
        'the name "ivr-b" was held by ivr-b.example (process 4242), not heard of for 80 s: taken over'
        in caplog.text
    )


async def test_a_clean_stop_gives_the_name_back_at_once(engine_settings, clock) -> None:
    settings = attrs.evolve(engine_settings, http=attrs.evolve(engine_settings.http, name="ivr-c"))
    first = Engine(settings, EngineServices(settings=settings, clock=clock))
    await first.start()
    await first.stop(1)
    state = await open_state(settings, "ivr-c")
    try:
        left = await state.db.read(lambda tx: tx.all("SELECT engine_id FROM engines"))
    finally:
        await state.close()
    assert left == []
