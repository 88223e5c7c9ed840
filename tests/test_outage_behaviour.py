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
from ivr.http.server import BoardServer
from ivr.journal import open_state
from ivr.journal.engines import EngineLease
from ivr.journal.incidents import IncidentStore
from ivr.testing.board_fixtures import engine_for_the_board
from ivr.testing.engine_fixtures import project_settings
from ivr.testing.fake_ami import FakeAmi
from ivr.testing.fake_caller import FakeCall, Press
from tests.browser import browser_fixture, figure, needs_browser, page_fixture, until_text  # noqa: F401
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
    """The test's PostgreSQL stopped (`begin`) or hung (`freeze`), and started again or let go on (`end`;
    at the latest when the test ends)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.on = ""

    async def begin(self) -> None:
        await asyncio.to_thread(self.cluster.stop)  # the server goes, and its connections with it
        self.on = "stopped"

    async def freeze(self) -> None:
        self.cluster.freeze()  # it neither answers nor refuses: what is sent to it waits
        self.on = "frozen"

    async def end(self) -> None:
        if self.on == "stopped":
            await asyncio.to_thread(self.cluster.start)
        elif self.on == "frozen":
            self.cluster.thaw()
        self.on = ""


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
    (tmp_path / "spool").mkdir(exist_ok=True)
    settings = project_settings(tmp_path, ami=ami_settings, database_url=cluster.fresh_database_url())
    async with engine_for_the_board(settings, fake_ami, board_clock) as engine:
        try:
            yield engine
        finally:
            await outage.end()  # the database back before the engine stops


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
    quick_rounds, pg_engine, pg_board, outage, caplog
) -> None:
    caplog.set_level(logging.INFO, "ivr")
    await announce(pg_engine)
    state = pg_engine.services.state
    await board_json(pg_board)

    await outage.begin()
    quick_rounds.reset()
    boards = []
    for _ in range(3):
        assert (await call(pg_engine)).prompts[1:3] == INCIDENT

    async def many_rounds() -> bool:
        boards.append(await board_json(pg_board))
        counts = quick_rounds.counts
        away = [b for b in boards if b["journal"]["state"] == "away"]
        return len(away) >= 3 and min(counts[part] for part in ("lease", "dialer", "incident audio")) >= 5

    await until(many_rounds)
    during = warnings(caplog)
    await outage.end()

    async def all_back() -> bool:
        board = await board_json(pg_board)
        answered = [line for line in warnings(caplog) if "answers again" in line]
        return board["journal"]["state"] == "ok" and len(answered) >= 5 and state.incidents.unanswered is None

    await until(all_back)
    logged = warnings(caplog)

    def one_line_each(lines: list[str], words: str) -> dict[str, int]:
        parts = ("incidents:", "board:", "engine name lease", "callback dialer:", "state database")
        return {part: sum(line.startswith(part) and words in line for line in lines) for part in parts}

    assert one_line_each(during, "does not answer") == {
        "incidents:": 1,
        "board:": 1,
        "engine name lease": 1,
        "callback dialer:": 1,
        "state database": 0,  # the journal's writer keeps its own words:
    }
    assert len([line for line in during if line.startswith("state database unreachable")]) == 1
    assert one_line_each(logged, "answers again") == {
        "incidents:": 1,
        "board:": 1,
        "engine name lease": 1,
        "callback dialer:": 1,
        "state database": 1,
    }
    assert len(during) == 5 and len(logged) == 10, "\n".join(logged)  # nothing per call, refresh or round
    assert all("\n" not in line and "\t" not in line for line in logged)  # libpq's own line breaks flattened
    assert not [line for line in logged if "does not answer: " in line]  # the reason is not said twice


async def test_the_board_says_its_figures_are_old_and_shows_the_incidents_still_announced(
    pg_engine, pg_board, outage, board_clock
) -> None:
    await announce(pg_engine)
    await call(pg_engine)
    await pg_engine.services.state.journal.flush()
    before = await board_json(pg_board)  # read at 11:00 by the engine's clock
    assert before["journal"] == {"state": "ok"} and before["incidents_stale"] is None
    assert [i["id"] for i in before["incidents"]] == [1] and before["today"]["calls"] == 1

    board_clock.advance(150)
    await outage.begin()  # at 11:02:30
    board: dict[str, Any] = {}

    async def away() -> bool:
        nonlocal board
        board = await board_json(pg_board)
        return board["journal"]["state"] == "away" and board["incidents_stale"] is not None

    await until(away)
    journal, stale = board["journal"], board["incidents_stale"]
    assert (board["at"], journal["as_of"], journal["since"]) == (
        "2026-11-30 11:02:30",  # the live part is current
        "2026-11-30 11:00:00",  # the figures shown were read then
        "2026-11-30 11:02:30",
    )
    assert board["today"] == before["today"]  # the last figures, said to be old, not a blank board
    assert journal["error"] and "\n" not in journal["error"]
    # the incidents the engine goes on announcing, and which list they come from
    assert [(i["id"], i["ru"]) for i in board["incidents"]] == [(1, "Запись в ЦОН временно не работает.")]
    assert stale["as_of"] in ("2026-11-30 11:00:00", "2026-11-30 11:02:30") and stale["error"]
    assert stale["since"] >= stale["as_of"]

    await outage.end()

    async def back() -> bool:
        nonlocal board
        board = await board_json(pg_board)
        return board["journal"] == {"state": "ok"} and board["incidents_stale"] is None

    await until(back)
    assert [i["id"] for i in board["incidents"]] == [1]


async def test_changes_from_the_board_are_refused_with_a_503_that_says_why(
    pg_engine, pg_board, outage, caplog
) -> None:
    incident = await announce(pg_engine)
    form = {"kk": "Ақау.", "ru": "Сбой.", "duration": "1h"}
    bearer = {"Authorization": "Bearer s3cret"}
    server = BoardServer(pg_engine, HttpSettings(bind="127.0.0.1:0", token="s3cret"))  # a script's view
    await server.start()
    try:
        await outage.begin()
        caplog.clear()
        async with aiohttp.ClientSession(headers=bearer) as session:
            async with session.post(url(server, "/incidents"), data=form) as response:
                added = (response.status, await response.json())
            async with session.post(url(server, f"/incidents/{incident}/end")) as response:
                ended = (response.status, await response.json())
    finally:
        await server.stop()
    assert added[0] == 503 and added[1]["code"] == "database_away"
    assert added[1]["error"] == (
        "the state database does not answer: the incident is not announced; do it again when the database "
        "is back, or later with `ivr incident add`"
    )
    assert ended[0] == 503 and ended[1]["code"] == "database_away"
    assert (
        f"incident {incident} is not ended" in ended[1]["error"]
        and f"ivr incident end {incident}" in ended[1]["error"]
    )
    assert added[1]["detail"] and "\n" not in added[1]["detail"]
    refusals = [r for r in caplog.records if r.name == "ivr.http"]
    assert [r.getMessage().split(":")[0] for r in refusals] == [
        "503 POST /incidents from 127.0.0.1",
        f"503 POST /incidents/{incident}/end from 127.0.0.1",
    ]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback

    await outage.end()
    await until(lambda: _incidents_back(pg_engine))
    assert [i.id for i in await pg_engine.services.state.incidents.list()] == [incident]  # nothing changed


async def _incidents_back(engine: Engine) -> bool:
    return engine.services.state.incidents.unanswered is None and bool(
        await engine.services.state.incidents.active()
    )


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


@needs_browser
async def test_the_page_says_the_figures_are_old_shows_the_incidents_and_why_a_change_failed(
    pg_engine, pg_board, outage, board_clock, page, tmp_path
) -> None:
    await announce(pg_engine)
    await call(pg_engine)
    await pg_engine.services.state.journal.flush()
    await page.goto(url(pg_board, "/"))
    await page.wait_for_selector("#link.up")
    await page.click("#lang-ru")
    await until_text(page, "#calls", lambda text: text == "1")
    assert (
        await page.locator("#journalBanner").is_hidden() and await page.locator("#incidentsNote").is_hidden()
    )

    board_clock.advance(150)
    await outage.begin()
    banner = await until_text(page, "#journalBannerText", lambda text: text != "")
    assert banner.startswith("Данные журнала — на 11:00: база данных не отвечает с 11:02.")
    assert await page.locator("#link.stale").text_content() == "в эфире · журнал на 11:00"
    assert await figure(page, "calls") == "1"  # the last figures, dimmed, each heading saying as of when
    assert await page.locator("main.stale").count() == 1
    error = await figure(page, "journalBannerError")  # the database's words: small print and tooltip
    assert error and await page.locator("#journalBanner").get_attribute("title") == error
    # the incidents the engine still announces, marked as the last known list; the error in small print
    note = await until_text(page, "#incidentsNoteText", lambda text: text != "")
    assert note.startswith("База данных не отвечает: последние известные объявления, на 11:0")
    assert "Звонящие слышат их" in note and error not in note
    incident = await page.text_content("[data-incident='1']") or ""
    assert "Запись в ЦОН временно не работает." in incident and "последнее известное" in incident
    await page.screenshot(path=str(tmp_path / "board-database-away.png"), full_page=True)

    await page.fill("textarea[name=kk]", "Ақау.")
    await page.fill("textarea[name=ru]", "Сбой.")
    await page.click("#incidentForm button[type=submit]")
    said = await until_text(page, "#formStatus", lambda text: text != "")
    assert said.startswith("База данных не отвечает: объявление не сохранено.")
    assert "ivr incident add" in said
    assert "the state database does not answer" in (await page.get_attribute("#formStatus", "title") or "")
    await page.click("[data-end='1']")  # the page asks "end it?", and the test's page says yes
    await until_text(page, "#formStatus", lambda text: "не завершено" in text)
    await page.click("#lang-kk")
    assert (await figure(page, "formStatus")).startswith("Дерекқор жауап бермейді")  # said in both languages
    assert (await figure(page, "journalBannerText")).startswith("Журнал деректері 11:00 жағдайы бойынша")

    await outage.end()
    await until_text(page, "#journalBannerText", lambda text: text == "")
    await until_text(page, "#incidentsNoteText", lambda text: text == "")
    await page.wait_for_selector("#link.up")
    assert (
        await page.locator("#journalBanner").is_hidden() and await page.locator("#incidentsNote").is_hidden()
    )
    assert "соңғы белгілі" not in (await page.text_content("[data-incident='1']") or "")
    # the two refusals, as the browser reports any 503; nothing else went wrong on the page
    assert [p for p in page.problems if "status of 503" not in p] == []


async def test_a_database_that_neither_answers_nor_refuses_keeps_no_caller_or_board_waiting(
    pg_engine, pg_board, outage, caplog
) -> None:
    # A hung server (or one whose packets are dropped): a read sent to it waits for good, here until
    # the test lets it go on. Calls and the board do not wait for it.
    caplog.set_level(logging.INFO, "ivr")
    await announce(pg_engine)
    assert (await board_json(pg_board))["journal"] == {"state": "ok"}
    store = pg_engine.services.state.incidents
    await outage.freeze()
    heard: list[FakeCall] = []
    board: dict[str, Any] = {}

    async def not_waiting() -> bool:  # without the patience, the first call after the cache's second hangs
        heard.append(await call(pg_engine))
        nonlocal board
        board = await board_json(pg_board)
        return store.unanswered is not None and board["journal"]["state"] == "away"

    await until(not_waiting)
    assert all(c.prompts[1:3] == INCIDENT for c in heard)
    assert store.unanswered.error == "NoAnswer: no answer within 1 s"
    assert board["journal"]["error"] == "NoAnswer: no answer within 2 s" and board["today"] is not None
    assert [i["id"] for i in board["incidents"]] == [1] and board["incidents_stale"] is not None

    await outage.end()

    async def back() -> bool:
        return (await board_json(pg_board))["journal"] == {"state": "ok"} and await _incidents_back(pg_engine)

    await until(back)
    answered = [line for line in warnings(caplog) if "answers again" in line]
    assert sorted(line.split(":")[0] for line in answered if not line.startswith("state database")) == [
        "board",
        "incidents",
    ]
