"""Callback requests: lifecycle, leases, and exclusive claims across engine processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from ivr.config import Settings
from ivr.journal import LeaseLost, open_state
from ivr.journal.cli import main as cli
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)


async def test_request_claim_and_finish(backend):
    state = await open_state(Settings(**backend))
    store = state.callbacks
    try:
        first = await store.request("+77011234567", "kk", "kk-general", "booking", "call-1")
        assert await store.request("+77011234567", "kk", "kk-general", "booking", "call-1") == first
        second = await store.request("87017654321", "ru", "ru-general", None, "call-2")
        now = time.time()
        claimed = await store.claim("engine-a", now, lease_seconds=60)
        assert (claimed.id, claimed.state, claimed.engine_id, claimed.attempts) == (
            first,
            "dialing",
            "engine-a",
            1,
        )
        assert (
            claimed.number == "+77011234567" and claimed.queue == "kk-general" and claimed.topic == "booking"
        )
        other = await store.claim("engine-b", now, lease_seconds=60)
        assert other.id == second
        assert await store.claim("engine-c", now, lease_seconds=60) is None
        await store.finish(first, "engine-a", "done")
        await store.finish(second, "engine-b", "failed")
        assert [c.state for c in await store.list()] == ["done", "failed"]
        assert [c.id for c in await store.list("done")] == [first]
        assert await store.list("pending") == []
    finally:
        await state.close()


async def test_retry_later_makes_it_due_again_after_the_delay(backend):
    state = await open_state(Settings(**backend))
    store = state.callbacks
    try:
        callback_id = await store.request("+77011234567", "ru", "ru-general")
        now = time.time()
        await store.claim("engine-a", now)
        await store.retry_later(callback_id, "engine-a", "no answer", delay=300, now=now)
        waiting = await store.get(callback_id)
        assert (waiting.state, waiting.last_error, waiting.engine_id) == ("pending", "no answer", None)
        assert await store.claim("engine-a", now + 299) is None
        again = await store.claim("engine-b", now + 301)
        assert (again.id, again.attempts, again.engine_id) == (callback_id, 2, "engine-b")
    finally:
        await state.close()


async def test_a_claim_put_back_unattempted_is_not_counted(backend):
    state = await open_state(Settings(**backend))
    store = state.callbacks
    try:
        callback_id = await store.request("+77011234567", "kk", "kk-general")
        now = time.time()
        for n in range(3):
            taken = await store.claim("engine-a", now + 31 * n)
            assert (taken.id, taken.attempts) == (callback_id, 1)
            await store.retry_later(
                callback_id, "engine-a", "no free operator", 30, now + 31 * n, attempted=False
            )
        waiting = await store.get(callback_id)
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 0, "no free operator")
    finally:
        await state.close()


async def test_an_expired_lease_releases_the_callback_to_another_engine(backend):
    state = await open_state(Settings(**backend))
    store = state.callbacks
    try:
        callback_id = await store.request("+77011234567", "kk", "kk-general")
        now = time.time()
        await store.claim("engine-dead", now, lease_seconds=30)
        assert await store.claim("engine-b", now + 29, lease_seconds=30) is None  # still leased
        taken = await store.claim("engine-b", now + 31, lease_seconds=30)
        assert (taken.id, taken.engine_id, taken.attempts) == (callback_id, "engine-b", 2)
        assert "lease of engine engine-dead expired" in taken.last_error
        # The engine that lost the lease cannot finish or reschedule it any more.
        with pytest.raises(LeaseLost):
            await store.finish(callback_id, "engine-dead", "done")
        with pytest.raises(LeaseLost):
            await store.retry_later(callback_id, "engine-dead", "busy", 10)
        await store.renew(callback_id, "engine-b", 120, now=now + 40)
        assert await store.claim("engine-c", now + 100) is None  # renewed until now + 160
        await store.finish(callback_id, "engine-b", "done")
        assert (await store.get(callback_id)).state == "done"
    finally:
        await state.close()


async def test_bad_requests_are_refused(backend):
    state = await open_state(Settings(**backend))
    try:
        with pytest.raises(ValueError, match="must be 3-20 digits"):
            await state.callbacks.request("call me", "kk", "kk-general")
        with pytest.raises(ValueError, match="'done' or 'failed'"):
            await state.callbacks.finish(1, "engine-a", "maybe")
        with pytest.raises(ValueError, match="not one of"):
            await state.callbacks.list("lost")
    finally:
        await state.close()


CLAIMING_ENGINE = """
import asyncio, json, sys
from ivr.config import Settings
from ivr.journal import open_state

async def main():
    state = await open_state(Settings(state_dir=sys.argv[1], database_url=sys.argv[2]), engine_id=sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # both engines start claiming at the same moment
    claimed = []
    while (callback := await state.callbacks.claim(sys.argv[3], lease_seconds=600)) is not None:
        claimed.append(callback.id)
        await state.callbacks.finish(callback.id, sys.argv[3], "done")
    await state.close()
    print(json.dumps(claimed), flush=True)

asyncio.run(main())
"""


async def test_two_engine_processes_claim_every_callback_exactly_once(backend, tmp_path):
    state = await open_state(Settings(**backend))
    try:
        ids = [await state.callbacks.request(f"+7701{n:07d}", "kk", "kk-general") for n in range(80)]
    finally:
        await state.close()
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMING_ENGINE)
    engines = [
        subprocess.Popen(
            [sys.executable, str(script), backend["state_dir"], backend["database_url"], name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("engine-a", "engine-b")
    ]
    for engine in engines:
        assert engine.stdout.readline().strip() == "ready"
    for engine in engines:
        engine.stdin.write("go\n")
        engine.stdin.flush()
    results = [json.loads(engine.communicate(timeout=120)[0].strip()) for engine in engines]
    a, b = (set(r) for r in results)
    assert a.isdisjoint(b)
    assert a | b == set(ids)
    assert len(results[0]) + len(results[1]) == len(ids)

    state = await open_state(Settings(**backend))
    try:
        final = await state.callbacks.list()
    finally:
        await state.close()
    assert {(c.state, c.attempts) for c in final} == {("done", 1)}
    assert {c.id for c in final if c.engine_id == "engine-a"} == a


def test_callbacks_list_command(backend, tmp_path, capsys):
    config = tmp_path / "ivr.toml"
    config.write_text(f'state_dir = "{backend["state_dir"]}"\ndatabase_url = "{backend["database_url"]}"\n')

    async def seed() -> None:
        state = await open_state(Settings(**backend))
        try:
            await state.callbacks.request("+77011234567", "kk", "kk-general", "booking", "call-1")
            await state.callbacks.request("+77017654321", "ru", "ru-general", None, "call-2")
            await state.callbacks.claim("engine-a", lease_seconds=60)
        finally:
            await state.close()

    asyncio.run(seed())
    assert cli(["-c", str(config), "callbacks", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "dialing" in out[0] and "+77011234567" in out[0] and "engine engine-a" in out[0]
    assert "pending" in out[1] and "ru-general" in out[1] and "attempts: 0" in out[1]
    assert cli(["-c", str(config), "callbacks", "list", "--state", "pending"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_a_callback_left_at_night_is_listed_for_when_the_centre_opens(tmp_path, capsys):
    # the state of an engine on `--clock 2026-11-29T03:00+05:00`, a Sunday night, whatever the real hour
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    sunday_3am = 1_795_903_200.0  # 2026-11-29 03:00 in Almaty
    (state_dir / "test-clock.json").write_text(json.dumps({"offset_seconds": sunday_3am - time.time()}))
    config = tmp_path / "ivr.toml"
    config.write_text(f'state_dir = "{state_dir}"\n')
    assert cli(["-c", str(config), "callbacks", "list"]) == 0  # creates the journal; nothing in it yet
    capsys.readouterr()

    async def request() -> None:
        from ivr.clock import shared_test_clock

        state = await open_state(Settings(state_dir=str(state_dir)), clock=shared_test_clock(state_dir))
        try:
            await state.callbacks.request("77011234567", "ru", "ru-general", "booking", "call-1")
        finally:
            await state.close()

    asyncio.run(request())
    assert cli(["-c", str(config), "callbacks", "list"]) == 0
    out, err = capsys.readouterr()
    assert "next: 2026-11-30 09:00" in out  # Monday morning, when the dialer calls
    assert "AMI is not configured here" in err
