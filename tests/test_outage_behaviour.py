"""What an engine on PostgreSQL does while the database is stopped (pg_ctl stop -m fast) and started
again: callers still hear the outage announcements it last read, each part of the engine logs one line
when the database stops answering it and one when it answers again, the board says its figures are old
and shows the incidents being announced, and changes from the board are refused with a clear 503.
Real outages: a PostgreSQL server of this module's own (tests/pg.py `cluster`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr.clock import FixedClock
from ivr.config import AmiSettings, HttpSettings, Settings
from ivr.engine.app import Engine
from ivr.engine.background import CallbackDialer, IncidentAudio
from ivr.engine.services import EngineServices
from ivr.engine.simulate import FixedHours
from ivr.http.server import BoardServer
from ivr.journal import open_state
from ivr.journal.engines import EngineLease
from ivr.journal.incidents import IncidentStore
from ivr.testing.board_fixtures import stock_queues
from ivr.testing.engine_fixtures import project_settings
from ivr.testing.fake_ami import FakeAmi
from ivr.testing.fake_caller import FakeCall, Press
from tests.pg import Cluster, cluster_fixture  # noqa: F401  (the `cluster` fixture)

INCIDENT = ["ivr/incident-intro", "incidents/incident-1"]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Poll for a condition; the timeout only turns a hang into a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition was not met in time")
        await asyncio.sleep(0.05)


class Outage:
    """The test's PostgreSQL stopped (`begin`) and started again (`end`; at the latest when the test ends)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.on = False

    async def begin(self) -> None:
        await asyncio.to_thread(self.cluster.stop)  # the server goes, and its connections with it
        self.on = True

    async def end(self) -> None:
        if self.on:
            await asyncio.to_thread(self.cluster.start)
            self.on = False


class Rounds:
    """How many times each part of the engine has tried something, counted from `reset()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        for name, cls, method in (
            ("lease", EngineLease, "renew"),
            ("dialer", CallbackDialer, "round"),
            ("incident audio", IncidentAudio, "refresh"),
        ):
            monkeypatch.setattr(cls, method, self._counting(name, getattr(cls, method)))

    def _counting(self, name: str, method: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return await method(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.counts.clear()


@pytest.fixture
def quick_rounds(monkeypatch: pytest.MonkeyPatch) -> Rounds:
    """The engine's background rounds every 50 ms (the lease every 15 s, the dialer every 2 s, the
    incident audio and the incidents' cache every second otherwise), so an outage of a few seconds
    meets each of them many times."""
    monkeypatch.setattr("ivr.journal.engines.RENEW_EVERY", 0.05)
    for cls, argument in (
        (CallbackDialer, "interval"),
        (IncidentAudio, "interval"),
        (IncidentStore, "cache_ttl"),
    ):
        init = cls.__init__

        def quick(self: Any, *args: Any, _init: Any = init, _argument: str = argument, **kwargs: Any) -> None:
            _init(self, *args, **{**kwargs, _argument: 0.05})

        monkeypatch.setattr(cls, "__init__", quick)
    return Rounds(monkeypatch)


@pytest.fixture
def outage(cluster: Cluster) -> Outage:
    return Outage(cluster)


@pytest.fixture
async def pg_engine(
    cluster: Cluster,
    outage: Outage,
    tmp_path: Path,
    project_prompts: Path,
    fake_ami: FakeAmi,
    ami_settings: AmiSettings,
    board_clock: FixedClock,
) -> AsyncIterator[Engine]:
    """An engine on the test's PostgreSQL with the fake AMI (so its callback dialer runs), open hours and
    the board's pinned clock (a Monday, 11:00)."""
    stock_queues(fake_ami)
    (tmp_path / "spool").mkdir(exist_ok=True)
    settings = project_settings(tmp_path, ami=ami_settings, database_url=cluster.fresh_database_url())
    services = EngineServices(settings=settings, hours=FixedHours(True), clock=board_clock)
    engine = Engine(settings, services)
    await engine.start()
    try:
        assert await services.ami.wait_connected(5), "the fake AMI did not accept the engine"
        yield engine
    finally:
        await outage.end()
        await engine.stop(2.0)


@pytest.fixture
async def pg_board(pg_engine: Engine) -> AsyncIterator[BoardServer]:
    server = BoardServer(pg_engine, HttpSettings(bind="127.0.0.1:0", name="engine-a"), interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def announce(engine: Engine, hours: float = 2.0) -> int:
    """An outage announced as the board or `ivr incident add` does, its audio made."""
    services = engine.services
    now = services.clock.now()
    incident = await services.state.incidents.add(
        "Кезекке жазылу уақытша жұмыс істемейді.",
        "Запись в ЦОН временно не работает.",
        starts_at=now,
        expires_at=now + dt.timedelta(hours=hours),
    )
    await services.incident_audio.refresh()
    assert services.incident_audio.is_ready(incident)
    return incident


async def call(engine: Engine) -> FakeCall:
    """A Russian caller who asks for an operator."""
    assert engine.server is not None
    return await FakeCall([Press("2"), Press("0")]).run("127.0.0.1", engine.server.port, timeout=60)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ivr")
    ]


def url(server: BoardServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def board_json(server: BoardServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url(server, "/api/board")) as response:
        assert response.status == 200
        return await response.json()


async def test_callers_hear_the_incidents_last_read_while_postgresql_is_down(
    pg_engine, outage, board_clock, caplog
) -> None:
    caplog.set_level(logging.INFO, "ivr")
    incident = await announce(pg_engine)
    assert incident == 1 and (await call(pg_engine)).prompts[1:3] == INCIDENT
    store = pg_engine.services.state.incidents

    await outage.begin()
    heard: list[FakeCall] = []

    async def read_failed() -> bool:  # calls go on until the incidents' cache has tried the database
        heard.append(await call(pg_engine))
        return store.unanswered is not None

    await until(read_failed)
    heard += [await call(pg_engine) for _ in range(3)]  # answered from the list last read
    assert all(c.prompts[1:3] == INCIDENT for c in heard), heard[-1].summary()
    board_clock.advance(3 * 3600)  # past its expiry, by the engine's clock: no longer announced
    expired = await call(pg_engine)
    assert not any(p.startswith("incidents/") for p in expired.prompts)

    logged = warnings(caplog)
    [said] = [line for line in logged if line.startswith("incidents: the state database does not answer")]
    assert "the list last read at 11:00 (incidents: #1; each still ends at its expiry)" in said
    assert not [line for line in logged if "incidents unavailable" in line]

    await outage.end()
    board_clock.advance(-3 * 3600)

    async def back() -> bool:
        return bool(await store.active()) and store.unanswered is None

    await until(back)
    assert (await call(pg_engine)).prompts[1:3] == INCIDENT
    [again] = [
        line for line in warnings(caplog) if line.startswith("incidents: the state database answers again")
    ]
    assert again.endswith("announcements come from it again")


async def test_each_part_of_the_engine_logs_one_line_when_postgresql_stops_answering_and_one_when_it_is_back(
    quick_rounds, pg_engine, outage, caplog
) -> None:
    caplog.set_level(logging.INFO, "ivr")
    await announce(pg_engine)
    state = pg_engine.services.state

    await outage.begin()
    quick_rounds.reset()
    for _ in range(3):
        assert (await call(pg_engine)).prompts[1:3] == INCIDENT

    async def many_rounds() -> bool:
        counts = quick_rounds.counts
        return min(counts[part] for part in ("lease", "dialer", "incident audio")) >= 5

    await until(many_rounds)
    during = warnings(caplog)
    await outage.end()

    async def all_back() -> bool:
        await state.incidents.active()
        answered = [line for line in warnings(caplog) if "answers again" in line]
        return len(answered) >= 4 and state.incidents.unanswered is None

    await until(all_back)
    logged = warnings(caplog)

    def one_line_each(lines: list[str], words: str) -> dict[str, int]:
        parts = ("incidents:", "engine name lease", "callback dialer:", "state database")
        return {part: sum(line.startswith(part) and words in line for line in lines) for part in parts}

    assert one_line_each(during, "does not answer") == {
        "incidents:": 1,
        "engine name lease": 1,
        "callback dialer:": 1,
        "state database": 0,  # the journal's writer keeps its own words:
    }
    assert len([line for line in during if line.startswith("state database unreachable")]) == 1
    assert one_line_each(logged, "answers again") == {
        "incidents:": 1,
        "engine name lease": 1,
        "callback dialer:": 1,
        "state database": 1,
    }
    assert len(during) == 4 and len(logged) == 8, "\n".join(logged)  # nothing per call, refresh or round
    assert all("\n" not in line and "\t" not in line for line in logged)  # libpq's own line breaks flattened
    assert not [line for line in logged if "does not answer: " in line]  # the reason is not said twice


async def test_the_first_read_after_postgresql_restarted_is_answered(cluster, outage, tmp_path) -> None:
    # The reader's connection died with the server while idle: its next read takes a new one rather
    # than failing once, which every reader (the board, the incidents' cache) would take for an outage.
    state = await open_state(Settings(state_dir=str(tmp_path), database_url=cluster.fresh_database_url()))
    try:
        assert await state.incidents.list() == []
        await outage.begin()
        await outage.end()
        assert await state.incidents.list() == []
    finally:
        await state.close()
