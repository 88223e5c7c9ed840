"""The wallboard in a real browser: Debian's chromium driven by playwright, against an engine taking fake
Asterisk calls. Screenshots land in the test's temporary directory."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.config import HttpSettings
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.http.server import BoardServer
from ivr.testing.board_fixtures import seed_journal
from ivr.testing.engine_fixtures import project_settings
from ivr.testing.fake_caller import FakeCall, Press
from tests.browser import browser_fixture, figure, needs_browser, page_fixture, until_text  # noqa: F401

pytestmark = needs_browser


def caller(*script: Any, delay: float = 0.3) -> FakeCall:
    return FakeCall(list(script), reply_delay=delay)


async def keep_calling(port: int, scripts: list[tuple[Any, ...]], stop: asyncio.Event) -> None:
    """Callers one after another on each line until told to stop: a steady load on the engine."""

    async def line(script: tuple[Any, ...]) -> None:
        while not stop.is_set():
            await caller(*script).run("127.0.0.1", port, timeout=60)

    lines = [asyncio.create_task(line(script)) for script in scripts]
    await stop.wait()
    for task in lines:
        task.cancel()
    await asyncio.gather(*lines, return_exceptions=True)


async def test_board_loads_clean_and_its_figures_move_with_the_calls(
    board, board_engine, board_clock, fake_ami, page, tmp_path
) -> None:
    await seed_journal(board_engine.services.state, board_clock.now())
    response = await page.goto(f"http://127.0.0.1:{board.port}/")
    assert response.status == 200
    await page.wait_for_selector("#link.up")
    assert await figure(page, "engine") == "engine-a"
    assert await page.text_content("[data-t=inIvr]") == "Қазір IVR-да"
    assert await figure(page, "calls") == "240"  # today's, from the seeded journal
    assert await figure(page, "inIvr") == "0"
    assert await page.text_content("#engines") == "engine-b4"  # the centre: another engine's calls
    await page.click("#lang-ru")
    assert await page.text_content("[data-t=inIvr]") == "Сейчас в IVR"
    assert await page.locator("#chart rect").count() == 32

    stop = asyncio.Event()
    scripts = [
        (Press("2"), Press("2")),
        (Press("1"), Press("1")),
        (Press("2"), Press("3")),
        (Press("2"),),
    ] * 3
    load = asyncio.create_task(keep_calling(board_engine.server.port, scripts, stop))
    try:
        await until_text(page, "#inIvr", lambda text: text.isdigit() and int(text) >= 8)
        await until_text(page, "#nodes", lambda text: any(ch.isdigit() for ch in text))  # calls by node
        fake_ami.add_caller("ru-booking", "PJSIP/trunk-00000011", waited=130)
        fake_ami.add_caller("ru-booking", "PJSIP/trunk-00000012", waited=20)
        row = page.locator("tr[data-queue=ru-booking] td")
        await until_text(page, "tr[data-queue=ru-booking] td:nth-child(2)", lambda text: text == "2", 5)
        assert await row.nth(2).text_content() == "2:10"  # the longest wait, m:ss
        await page.screenshot(path=str(tmp_path / "board-under-load.png"), full_page=True)
    finally:
        stop.set()
        await load
    await until_text(page, "#inIvr", lambda text: text == "0")
    assert await page.locator("#amiBanner").is_hidden()
    await fake_ami.close()
    banner = await until_text(page, "#amiBanner", lambda text: text.startswith("AMI"))
    assert "AMI недоступен" in banner and await page.locator("#amiBanner").is_visible()
    assert (tmp_path / "board-under-load.png").stat().st_size > 20_000
    assert page.problems == []


async def test_an_incident_added_on_the_page_is_heard_by_the_next_caller(
    board, board_engine, board_clock, page, tmp_path
) -> None:
    port = board_engine.server.port
    await page.goto(f"http://127.0.0.1:{board.port}/")
    await page.wait_for_selector("#link.up")
    await page.fill("textarea[name=kk]", "Брондау қызметі уақытша істемейді.")
    await page.fill("textarea[name=ru]", "Сервис записи временно не работает.")
    await page.select_option("select[name=duration]", "2h")
    await page.click("label:has-text('ХҚКО-ға жазылу')")  # the topic by the name the menu gives it
    await page.click("#incidentForm button[type=submit]")
    await page.wait_for_selector("[data-incident='1']", timeout=5000)
    shown = await page.text_content("[data-incident='1']") or ""
    assert "Брондау қызметі" in shown and "ХҚКО-ға жазылу" in shown and "booking" not in shown
    await page.click("#lang-ru")
    assert "Запись в ЦОН" in (await page.text_content("[data-incident='1'] .meta") or "")
    assert await page.locator("label[title=booking]").text_content() == "Запись в ЦОН"

    audio = board_engine.services.incident_audio
    for _ in range(100):  # the engine synthesises the announcement within its 1-second round
        if audio.is_ready(1):
            break
        await asyncio.sleep(0.1)
    call = caller(Press("2"), Press("0"), delay=0)
    await call.run("127.0.0.1", port, timeout=30)
    assert call.prompts[1:3] == ["ivr/incident-intro", "incidents/incident-1"]
    await page.screenshot(path=str(tmp_path / "board-with-incident.png"), full_page=True)

    await page.click("[data-end='1']")
    await page.wait_for_selector("[data-incident='1']", state="detached", timeout=5000)
    after = caller(Press("2"), Press("0"), delay=0)
    await after.run("127.0.0.1", port, timeout=30)
    assert not any(p.startswith("incidents/") for p in after.prompts)
    incidents = await board_engine.services.state.incidents.list(include_expired=True)
    assert [(i.text_ru, i.topics, i.ended_at is not None) for i in incidents] == [
        ("Сервис записи временно не работает.", ("booking",), True)
    ]
    assert page.problems == []


async def test_a_wrong_token_is_refused_and_the_right_one_opens_the_board(board_engine, page) -> None:
    server = BoardServer(
        board_engine, HttpSettings(bind="127.0.0.1:0", token="wallboard-token", name="engine-b")
    )
    await server.start()
    try:
        response = await page.goto(f"http://127.0.0.1:{server.port}/")
        assert response.status == 401 and await page.locator("#inIvr").count() == 0
        await page.fill("#token", "guess")
        async with page.expect_navigation() as refused:
            await page.click("button[type=submit]")
        assert (await refused.value).status == 401 and await page.locator("#inIvr").count() == 0
        await page.fill("#token", "wallboard-token")
        async with page.expect_navigation() as opened:
            await page.click("button[type=submit]")
        assert (await opened.value).status == 200
        await page.wait_for_selector("#link.up")
        assert await figure(page, "engine") == "engine-b"
        cookies = await page.context.cookies()
        assert [c["name"] for c in cookies] == ["ivr_board"] and "wallboard-token" not in cookies[0]["value"]
        assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    finally:
        await server.stop()


async def test_ami_not_configured_is_said_quietly_and_ami_down_as_an_alarm(
    board, board_engine, board_clock, fake_ami, page, tmp_path
) -> None:
    # An engine set up without AMI (a choice: no queue figures, callbacks stored and not dialled)
    settings = project_settings(tmp_path / "no-ami")
    (tmp_path / "no-ami" / "spool").mkdir(parents=True)
    quiet = Engine(settings, EngineServices(settings=settings, clock=board_clock))
    await quiet.start()
    server = BoardServer(quiet, HttpSettings(bind="127.0.0.1:0", name="engine-b"))
    await server.start()
    try:
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await page.wait_for_selector("#link.up")
        await page.click("#lang-ru")
        banner = page.locator("#amiBanner")
        assert await until_text(page, "#amiBanner", bool) == "AMI не настроен — нет данных очередей"
        assert await banner.get_attribute("class") == "quiet" and await banner.is_visible()
        assert await banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
    finally:
        await server.stop()
        await quiet.stop(2.0)
    # the other engine's AMI goes down: red, as before
    await page.goto(f"http://127.0.0.1:{board.port}/")
    await page.wait_for_selector("#link.up")
    await fake_ami.close()
    await until_text(page, "#amiBanner", lambda text: text.startswith("AMI"))
    assert await page.locator("#amiBanner").get_attribute("class") == "banner"
    assert (
        await page.locator("#amiBanner").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(255, 90, 90)"
    )
    assert page.problems == []
