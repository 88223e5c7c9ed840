"""pytest fixtures for the wallboard: an engine with the fake AMI, open hours and a fixed clock, and its
HTTP side on a free port. Loaded for every test module from pyproject (-p ivr.testing.board_fixtures).

`board_token` is "" (this machine only) and `board_clock` a Monday morning; override either in a module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.clock import FixedClock
from ivr.config import AmiSettings, HttpSettings, Settings
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.engine.simulate import FixedHours
from ivr.http.server import BoardServer
from ivr.testing.engine_fixtures import project_settings
from ivr.testing.fake_ami import FakeAmi, QueueState

ALMATY = dt.timezone(dt.timedelta(hours=5))
# A Monday morning: the centre is open. Tests that need "today" to be a day of their choosing use it.
MONDAY_11 = dt.datetime(2026, 11, 30, 11, 0, tzinfo=ALMATY)
BOARD_QUEUES = ("kk-general", "ru-general", "kk-booking", "ru-booking")
BROWSER = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def stock_queues(fake_ami: FakeAmi) -> None:
    """The board's queues, each with one free operator."""
    for name in BOARD_QUEUES:
        fake_ami.set_queue(QueueState(name, holdtime=60, talktime=180))
        fake_ami.add_member(name, f"PJSIP/op-{name}-101")


@pytest.fixture
def board_clock() -> FixedClock:
    """The engine's clock, settable by a test: `board_clock.set(moment)`."""
    return FixedClock(MONDAY_11)


@pytest.fixture
def board_token() -> str:
    return ""


@pytest.fixture
async def board_engine(
    tmp_path: Path,
    project_prompts: Path,
    fake_ami: FakeAmi,
    ami_settings: AmiSettings,
    board_clock: FixedClock,
) -> AsyncIterator[Engine]:
    (tmp_path / "spool").mkdir(exist_ok=True)
    async with engine_for_the_board(
        project_settings(tmp_path, ami=ami_settings), fake_ami, board_clock
    ) as engine:
        yield engine


@contextlib.asynccontextmanager
async def engine_for_the_board(
    settings: Settings, fake_ami: FakeAmi, clock: FixedClock
) -> AsyncIterator[Engine]:
    """An engine with the board's queues stocked in the fake AMI, open hours and `clock`, started until the
    block ends (`board_engine`; a test module may give it other settings, e.g. a PostgreSQL)."""
    stock_queues(fake_ami)
    services = EngineServices(settings=settings, hours=FixedHours(True), clock=clock)
    engine = Engine(settings, services)
    await engine.start()
    try:
        assert await services.ami.wait_connected(5), "the fake AMI did not accept the engine"
        yield engine
    finally:
        await engine.stop(2.0)


@pytest.fixture
async def board(board_engine: Engine, board_token: str) -> AsyncIterator[BoardServer]:
    server = BoardServer(
        board_engine, HttpSettings(bind="127.0.0.1:0", token=board_token, name="engine-a"), interval=0.2
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def seed_journal(state: Any, now: dt.datetime, calls: int = 240, hours: int = 8) -> None:
    """A day's worth of ended calls before `now`, spread over the last `hours` in a fixed pattern (more
    in the morning peak), three callbacks waiting and four calls in a second engine's IVR: figures for the
    board to show. `now` is taken to be in the centre's time zone (its day and hour label the calls)."""
    at = now.timestamp()
    outcomes = ("self_served", "self_served", "queued", "abandoned", "self_served", "callback", "queued")
    topics = ("booking", "egov", "general", "vehicles")
    for n in range(calls):
        start = at - ((n * 7919) % (hours * 3600)) * ((n % 3 + 1) / 3)
        call_id = f"seed-{n:05d}"
        state.journal.call_started(call_id, start, f"7701{n:07d}", "kk" if n % 5 < 2 else "ru", "1414")
        state.journal.call_ended(call_id, outcomes[n % len(outcomes)], topics[n % len(topics)], at=start + 90)
    for n in range(3):
        await state.callbacks.request(
            f"7705{n:07d}", "ru" if n else "kk", "ru-booking" if n else "kk-general"
        )
    await state.journal.flush()

    def another_engines_calls(tx: Any) -> None:
        # Calls in the IVR of a second engine sharing the database (not ended yet).
        for n in range(4):
            tx.execute(
                "INSERT INTO calls (call_id, started_at, caller, language, menu, engine_id, day, hour) "
                "VALUES (?, ?, '', 'ru', '1414', 'engine-b', ?, ?)",
                (f"seed-b-{n}", at - 30 * (n + 1), now.strftime("%Y-%m-%d"), now.hour),
            )

    await state.db.write(another_engines_calls)
