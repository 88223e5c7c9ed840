"""The HTTP side of a running engine, over real HTTP, while fake Asterisk calls run through it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from ivr.config import HttpSettings
from ivr.http.server import BoardServer
from ivr.testing.fake_caller import FakeCall, Press
from tests.sqlite_lock import short_lock_wait_fixture, write_lock  # noqa: F401  (the `short_lock_wait` fixture)

CALLER = "77019876543"


def url(server: BoardServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def get_json(session: aiohttp.ClientSession, address: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(address, **kwargs) as response:
        return response.status, await response.json()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def slow_call(*script: Any) -> FakeCall:
    """A caller who listens to each prompt for 0.2 s, so the call stays in the IVR a while."""
    return FakeCall(list(script), callerid=CALLER, reply_delay=0.2)


async def test_board_and_metrics_follow_live_calls_and_queues(board, board_engine, fake_ami) -> None:
    port = board_engine.server.port
    async with aiohttp.ClientSession() as session:
        status, first = await get_json(session, url(board, "/api/board"))
        assert status == 200 and first["in_ivr"]["total"] == 0 and first["engine"] == "engine-a"
        calls = [slow_call(Press("2"), Press("2")), slow_call(Press("1"), Press("2")), slow_call(Press("2"))]
        running = [asyncio.create_task(c.run("127.0.0.1", port, timeout=60)) for c in calls]

        async def three_in_ivr() -> bool:
            board_now = (await get_json(session, url(board, "/api/board")))[1]
            return board_now["in_ivr"]["total"] == 3 and board_now["in_ivr"]["by_language"]["choosing"] == 0

        await until(three_in_ivr)
        _, during = await get_json(session, url(board, "/api/board"))
        assert during["in_ivr"]["by_language"] == {"kk": 1, "ru": 2, "choosing": 0}
        assert sum(n for _, n in during["in_ivr"]["by_node"]) == 3
        queues = {q["name"]: q for q in during["queues"]}
        assert during["ami"] == "connected" and queues["ru-general"]["available"] == 1
        assert queues["ru-general"]["waiting"] == 0

        fake_ami.add_caller("ru-general", "PJSIP/trunk-00000001", waited=75)

        async def one_waiting() -> bool:
            queue = {q["name"]: q for q in (await get_json(session, url(board, "/api/board")))[1]["queues"]}
            return queue["ru-general"]["waiting"] == 1

        await until(one_waiting)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

        async def none_in_ivr() -> bool:
            return (await get_json(session, url(board, "/api/board")))[1]["in_ivr"]["total"] == 0

        await until(none_in_ivr)
        async with session.get(url(board, "/metrics")) as response:
            assert response.status == 200 and response.content_type == "text/plain"
            metrics = await response.text()
        _, after = await get_json(session, url(board, "/api/board"))
    # Hung up in the booking menu: abandoned, or self-served if its prompt had played to its end.
    assert re.search(
        r'ivr_calls_total\{language="kk",outcome="(abandoned|self_served)",topic="booking"\} 1.0', metrics
    )
    assert 'ivr_calls_total{language="ru",outcome="abandoned",topic="general"} 1.0' in metrics
    assert 'ivr_queue_callers_waiting{queue="ru-general"} 1.0' in metrics
    assert 'ivr_agi_command_duration_seconds_count{command="ANSWER"} 3.0' in metrics
    assert "ivr_ami_connected 1.0" in metrics
    own = "\n".join(
        line for line in metrics.splitlines() if "process_" not in line
    )  # not the machine's numbers
    assert CALLER not in metrics and CALLER not in str(after) and "9876543" not in own


async def test_the_board_counts_calls_answered_by_an_operator_and_those_no_queue_took(
    board, board_engine
) -> None:
    port = board_engine.server.port
    await FakeCall([Press("2"), Press("0")]).run("127.0.0.1", port, timeout=30)  # an operator answers
    await FakeCall([Press("2"), Press("0")], queue_outcome="timeout").run("127.0.0.1", port, timeout=30)
    await board_engine.services.state.journal.flush()

    async def both_counted() -> bool:
        today = (await get_json(session, url(board, "/api/board")))[1]["today"]
        return (today["queued"], today["no_operator"]) == (1, 1)

    async with aiohttp.ClientSession() as session:
        await until(both_counted)


async def test_health_and_readiness_report_ami_without_requiring_it(board, fake_ami) -> None:
    async with aiohttp.ClientSession() as session:
        assert await get_json(session, url(board, "/healthz")) == (200, {"alive": True, "engine": "engine-a"})
        status, ready = await get_json(session, url(board, "/readyz"))
        assert status == 200 and ready["ready"] is True
        assert ready["checks"] == {"menus": "ok: 1414", "prompts": "ok", "journal": "ok", "ami": "connected"}
        await fake_ami.close()

        async def ami_down() -> bool:
            return (await get_json(session, url(board, "/api/board")))[1]["ami"].startswith("down")

        await until(ami_down)
        status, ready = await get_json(session, url(board, "/readyz"))
        assert status == 200 and ready["checks"]["ami"].startswith("down")


async def test_ready_while_the_database_is_away_the_journal_holding_the_rows(
    short_lock_wait, board, board_engine
) -> None:
    # Calls go on and lose nothing (the journal holds their rows): every engine sharing the database
    # leaving the balancer at once would leave callers with no IVR at all.
    with write_lock(board_engine.settings.state_dir):  # an admin's sqlite3 shell left in a transaction
        call = FakeCall([Press("2"), Press("1")], callerid=CALLER)
        await call.run("127.0.0.1", board_engine.server.port, timeout=30)
        state = board_engine.services.state

        async def rows_held() -> bool:
            state.journal.submit_held()
            return state.held_rows > 0

        await until(rows_held)
        async with aiohttp.ClientSession() as session:
            status, ready = await get_json(session, url(board, "/readyz"))
        assert status == 200 and ready["ready"] is True
        assert ready["checks"]["journal"].startswith("degraded: the state database does not answer")
        assert ready["checks"]["journal"].endswith("journal rows held in memory until it answers")

    async def journal_ok() -> bool:
        async with aiohttp.ClientSession() as session:
            return (await get_json(session, url(board, "/readyz")))[1]["checks"]["journal"] == "ok"

    await until(journal_ok)
    assert (await board_engine.services.state.journal.call(call.uniqueid)).outcome is not None


async def test_not_ready_from_the_moment_the_engine_is_told_to_stop(board, board_engine) -> None:
    # a balancer must stop sending calls while the running ones finish their grace period
    call = slow_call(Press("2"))
    running = asyncio.create_task(call.run("127.0.0.1", board_engine.server.port, timeout=30))

    async def call_started() -> bool:
        return bool(call.exchanges)

    async def told_to_stop() -> bool:
        return board_engine.stopping

    await until(call_started)
    stopping = asyncio.create_task(board_engine.stop(10))
    await until(told_to_stop)
    async with aiohttp.ClientSession() as session:
        status, ready = await get_json(session, url(board, "/readyz"))
    assert status == 503 and ready["ready"] is False
    assert ready["checks"]["engine"] == "stopping: no new calls"
    assert not running.done()  # the call in progress goes on
    await asyncio.gather(running, stopping)


async def test_a_prompt_deleted_under_a_running_engine_is_made_again_and_readiness_comes_back(
    board, board_engine, caplog
) -> None:
    # A recording deleted to hear its text synthesised, as the build's messages suggest: the engine
    # notices within 10 s and synthesises it, so it leaves the balancer only until the audio is back.
    caplog.set_level(logging.INFO, logger="ivr")
    # The test's prompts link the repository's files: remove one link, never the file.
    greeting = Path(board_engine.settings.prompts.dir) / "ru" / "1414" / "greeting.wav"
    shared = greeting.resolve()
    recorded = shared.read_bytes()
    greeting.unlink()
    seen: list[tuple[int, str]] = []

    async def ready_again() -> bool:
        async with aiohttp.ClientSession() as session:
            status, ready = await get_json(session, url(board, "/readyz"))
        seen.append((status, ready["checks"]["prompts"]))
        return status == 200 and greeting.is_file()

    await until(ready_again, timeout=40.0)
    assert (503, "1 missing, e.g. ru/1414/greeting") in seen  # out of the balancer while it was missing
    assert seen[-1] == (200, "ok")
    assert (
        not greeting.is_symlink() and greeting.stat().st_size > 8000
    )  # the text, made in this engine's folder
    assert shared.read_bytes() == recorded  # the repository's file untouched
    messages = [
        (r.levelname, re.sub(r"\d+ unchanged", "N unchanged", r.getMessage()))  # N: as many as the menus need
        for r in caplog.records
        if "missing" in r.getMessage()
    ]
    assert messages == [
        (
            "WARNING",
            f"1 prompt is missing from {board_engine.settings.prompts.dir} (deleted?), e.g. ru/1414/greeting: "
            "synthesising it; until then callers get its .wav16 where there is one, else nothing in its place "
            "(the call goes on, and logs the sound as missing)",
        ),
        (
            "INFO",
            "1 prompt missing; prompts: 1 synthesised, 0 recordings converted, N unchanged, 0 human, "
            "0 removed, 0 failed",
        ),
    ]


async def test_a_token_is_needed_remotely_refusals_log_one_line(board_engine, caplog) -> None:
    server = BoardServer(board_engine, HttpSettings(bind="127.0.0.1:0", token="s3cret-token"))
    await server.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # an IP host
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="ivr.http"):
                async with session.get(url(server, "/api/board")) as response:
                    assert response.status == 401 and "Traceback" not in await response.text()
            refusals = [r for r in caplog.records if r.name == "ivr.http"]
            assert len(refusals) == 1 and "401 GET /api/board" in refusals[0].getMessage()
            bad = {"Authorization": "Bearer guessed"}
            async with session.get(url(server, "/metrics"), headers=bad) as response:
                assert response.status == 401
            good = {"Authorization": "Bearer s3cret-token"}
            async with session.get(url(server, "/metrics"), headers=good) as response:
                assert response.status == 200
            async with session.get(url(server, "/healthz")) as response:
                assert response.status == 200  # the load balancer's probe needs no token
            async with session.post(url(server, "/login"), data={"token": "guessed"}) as response:
                assert response.status == 401
                assert "Неверный токен" in await response.text()  # the form says why it is back
            assert not session.cookie_jar.filter_cookies(URL(url(server, "/")))
            async with session.post(url(server, "/login"), data={"token": "s3cret-token"}) as response:
                assert response.status == 200 and str(response.url).endswith("/")  # redirected to the board
                page = await response.text()
            cookie = session.cookie_jar.filter_cookies(URL(url(server, "/")))["ivr_board"].value
            assert "s3cret-token" not in cookie and "s3cret-token" not in page
            csrf = page.split('"csrf": "')[1].split('"')[0]
            form = {"kk": "Ақау.", "ru": "Сбой.", "duration": "1h"}
            async with session.post(url(server, "/incidents"), data=form) as response:
                assert response.status == 403  # no CSRF token: a cross-site form could do this
            evil = {"Origin": "https://evil.example"}
            async with session.post(
                url(server, "/incidents"), data={**form, "csrf": csrf}, headers=evil
            ) as response:
                assert response.status == 403
            async with session.post(
                url(server, "/incidents"), data={**form, "csrf": csrf, "topics": "nope"}
            ) as response:
                assert response.status == 400 and "unknown topics" in (await response.json())["error"]
            async with session.post(url(server, "/incidents"), data={**form, "csrf": csrf}) as response:
                assert response.status == 201
                incident = (await response.json())["id"]
            async with session.post(
                url(server, f"/incidents/{incident}/end"), data={"csrf": csrf}
            ) as response:
                assert response.status == 200
            async with session.post(
                url(server, f"/incidents/{incident}/end"), data={"csrf": csrf}
            ) as response:
                assert response.status == 404
    finally:
        await server.stop()
    incidents = await board_engine.services.state.incidents.list(include_expired=True)
    assert [(i.id, i.text_ru, i.ended_at is not None) for i in incidents] == [(incident, "Сбой.", True)]


async def test_the_page_is_self_contained_and_locked_down(board) -> None:
    async with aiohttp.ClientSession() as session, session.get(url(board, "/")) as response:
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page
    # nothing fetched from elsewhere: no CDN script, stylesheet or font (only XML namespace names)
    assert "https://" not in page and "@import" not in page and "url(" not in page
    # the incident form's topics, from the menus, with the names they give them
    assert (
        '"topics": [{"id": "general", "kk": "Жалпы сұрақтар", "ru": "Общие вопросы"}, {"id": "egov"' in page
    )


async def test_a_script_without_a_token_on_the_engine_is_told_it_needs_one(board, caplog) -> None:
    # No IVR_HTTP_TOKEN: this machine's browser may use the board's form; a script's Bearer header
    # cannot be checked against anything, and the refusal says what to set, not "CSRF token".
    form = {"kk": "Ақау.", "ru": "Сбой.", "duration": "1h"}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer foo"}) as session:
        async with session.post(url(board, "/incidents"), data=form) as response:
            status, answer = response.status, await response.json()
        async with session.get(url(board, "/api/board")) as response:
            assert response.status == 200  # reading from this machine needs no token
    assert status == 403 and "CSRF" not in answer["error"]
    assert answer["error"] == (
        "a Bearer token was sent, but this engine has no token configured: scripts need one, set on the "
        "engine (IVR_HTTP_TOKEN in its environment, or [http] token in ivr.toml)"
    )
    assert [r.getMessage() for r in caplog.records if r.name == "ivr.http" and "403" in r.getMessage()] == [
        f"403 POST /incidents from 127.0.0.1: {answer['error']}"
    ]


async def test_json_answers_keep_cyrillic_and_a_topic_given_by_its_name_is_named_by_its_id(
    board, board_engine
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url(board, "/")) as response:
            csrf = (await response.text()).split('"csrf": "')[1].split('"')[0]
        form = {"kk": "Ақау.", "ru": "Сбой.", "duration": "1h", "csrf": csrf, "topics": "Запись в ЦОН"}
        async with session.post(url(board, "/incidents"), data=form) as response:
            status, body = response.status, await response.text()
            assert response.charset == "utf-8"
        await board_engine.services.state.incidents.add(
            "Ақау.",
            "Сбой.",
            [],
            board_engine.services.clock.now(),
            board_engine.services.clock.now().timestamp() + 60,
        )
        async with session.get(url(board, "/api/board")) as response:
            board_body = await response.text()
    assert status == 400 and "\\u" not in body and "\\u" not in board_body
    assert json.loads(body)["error"].startswith(
        "unknown topics: Запись в ЦОН (the name of topic booking: give its id) (known: general, egov, booking,"
    )
    assert '"ru":"Сбой."' in board_body.replace(" ", "")
