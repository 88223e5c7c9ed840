"""An engine that stopped without closing its calls (killed, or its machine went down): its next start
journals them as handed back, so the board stops counting them as in the IVR."""

from __future__ import annotations

import socket
import subprocess
import sys

import attrs

from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
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
