"""Outage announcements: which calls hear them, expiry, ending, and the admin commands."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from ivr.config import Settings
from ivr.journal import Incident, IncidentStore, open_state
from ivr.journal.cli import main as cli
from ivr.journal.timeutil import from_epoch
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)


class FakeClock:
    """The incident cache's monotonic clock, moved by hand so no test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_active_incidents_by_topic_and_time(backend):
    state = await open_state(Settings(**backend))
    try:
        now = time.time()
        everywhere = await state.incidents.add(
            "Жүйе істемейді", "Система не работает", [], now - 60, now + 3600
        )
        booking = await state.incidents.add(
            "Жазылу істемейді", "Запись не работает", ["booking"], now - 60, now + 60
        )
        later = await state.incidents.add("Ертең", "Завтра", ["booking"], now + 86400, now + 90000)
        incidents = state.incidents
        assert [i.id for i in await incidents.active(now)] == [everywhere, booking]
        assert [i.id for i in await incidents.active(now, topic="booking")] == [everywhere, booking]
        assert [i.id for i in await incidents.active(now, topic="home_visit")] == [everywhere]
        # Expiry needs no one: two minutes on, the booking incident is over by itself.
        assert [i.id for i in await incidents.active(now + 120, topic="booking")] == [everywhere]
        assert [i.id for i in await incidents.active(now + 86400 + 1, topic="booking")] == [later]
        first = (await incidents.active(now))[0]
        assert first.text("kk") == "Жүйе істемейді" and first.text("ru") == "Система не работает"
        assert first.topics == () and first.affects("anything")
    finally:
        await state.close()


async def test_end_stops_an_incident_and_list_shows_history(backend):
    state = await open_state(Settings(**backend))
    try:
        now = time.time()
        first = await state.incidents.add("бір", "один", ["booking"], now - 10, now + 3600)
        second = await state.incidents.add("екі", "два", [], now - 7200, now - 3600)  # already expired
        assert await state.incidents.end(first) is True
        assert await state.incidents.end(first) is False  # ended once
        assert await state.incidents.end(999) is False
        assert await state.incidents.active(now) == []
        assert await state.incidents.list() == []
        history = await state.incidents.list(include_expired=True)
        assert [i.id for i in history] == [second, first]
        assert history[1].ended_at is not None and history[1].until == history[1].ended_at
    finally:
        await state.close()


async def test_a_new_incident_reaches_another_engine_when_its_cache_expires(backend):
    engine = await open_state(Settings(**backend))
    admin = await open_state(Settings(**backend))
    try:
        clock = FakeClock()
        cached = IncidentStore(engine.db, cache_ttl=1.0, clock=clock)
        assert await cached.active() == []
        now = time.time()
        added = await admin.incidents.add("Ақау", "Сбой", [], now - 1, now + 600)
        assert await cached.active() == []  # served from the cache within its second
        clock.now += 1.0
        assert [i.id for i in await cached.active()] == [added]
        await admin.incidents.end(added)
        clock.now += 1.0
        assert await cached.active() == []
    finally:
        await engine.close()
        await admin.close()


async def test_incident_input_is_checked(backend):
    state = await open_state(Settings(**backend))
    try:
        now = datetime.now(UTC)
        with pytest.raises(ValueError, match="both Kazakh"):
            await state.incidents.add("", "только русский", [], now, now + timedelta(hours=1))
        with pytest.raises(ValueError, match="expire after it starts"):
            await state.incidents.add("kk", "ru", [], now, now - timedelta(hours=1))
        with pytest.raises(ValueError, match="needs an expiry"):
            await state.incidents.add("kk", "ru", [], now)
        with pytest.raises(ValueError, match="between 0 and 2 seconds"):
            IncidentStore(state.db, cache_ttl=10)
    finally:
        await state.close()


def _config(tmp_path, backend) -> str:
    path = tmp_path / "ivr.toml"
    path.write_text(f'state_dir = "{backend["state_dir"]}"\ndatabase_url = "{backend["database_url"]}"\n')
    return str(path)


def test_incident_commands(backend, tmp_path, capsys):
    config = _config(tmp_path, backend)
    assert cli(["-c", config, "incident", "add", "--kk", "eGov істемейді", "--ru", "eGov не работает",
                "--topic", "egov", "--topic", "booking", "--for", "2h"]) == 0  # fmt: skip
    assert "incident 1 announced" in capsys.readouterr().out
    assert cli(["-c", config, "incident", "add", "--kk", "a", "--ru", "b",
                "--starts", "2030-01-01T09:00", "--expires", "2030-01-01T18:00"]) == 0  # fmt: skip
    capsys.readouterr()
    assert cli(["-c", config, "incident", "list"]) == 0
    listing = capsys.readouterr().out
    assert "active" in listing and "topics: booking, egov" in listing and "ru: eGov не работает" in listing
    assert "upcoming  2030-01-01 09:00 .. 2030-01-01 18:00" in listing
    assert cli(["-c", config, "incident", "end", "1"]) == 0
    assert cli(["-c", config, "incident", "end", "1"]) == 1
    assert "no incident 1 in progress" in capsys.readouterr().err
    assert cli(["-c", config, "incident", "list", "--all"]) == 0
    assert "    1  ended" in capsys.readouterr().out
    assert cli(["-c", config, "incident", "add", "--kk", "a", "--ru", "b", "--for", "soon"]) == 1
    assert "not a duration" in capsys.readouterr().err


class HangingDatabase:
    """A database whose reads hang until released: a server that neither answers nor refuses."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.incidents = incidents
        self.answering = asyncio.Event()
        self.answering.set()
        self.reads = 0

    async def read(self, fn) -> list[Incident]:  # type: ignore[no-untyped-def]
        self.reads += 1
        await self.answering.wait()
        return list(self.incidents)


async def test_calls_are_not_kept_waiting_by_a_database_that_does_not_answer(caplog):
    now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC).timestamp()  # the engine's clock, pinned
    outage = Incident(
        1, "Ақау", "Сбой", (), from_epoch(now - 60), from_epoch(now + 3600), None, from_epoch(now)
    )
    db = HangingDatabase([outage])
    clock = FakeClock()
    store = IncidentStore(db, cache_ttl=1.0, clock=clock, now=lambda: now, patience=0.05)  # type: ignore[arg-type]
    assert await store.active() == [outage] and store.unanswered is None

    db.answering.clear()  # hung from now on
    clock.now += 1.0
    # each call hears the list read last, after `patience` the first time, at once after that
    assert await asyncio.wait_for(store.active(), 30) == [outage]
    assert store.unanswered is not None and store.unanswered.error == "NoAnswer: no answer within 0.05 s"
    clock.now += 1.0
    assert await asyncio.wait_for(store.active(), 30) == [outage]
    assert db.reads == 2  # one read in flight, not one more a second behind it
    [began] = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert "the list last read at" in began

    db.incidents = []  # ended meanwhile by another engine
    db.answering.set()  # the read in flight is answered: kept, though no call waits for it any more
    for _ in range(100):
        if store.unanswered is None:
            break
        await asyncio.sleep(0.01)
    assert await store.active() == [] and db.reads == 2
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
