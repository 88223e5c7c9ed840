"""The wallboard's parts on their own: masking, settings, live calls, today's figures, the feed, metrics,
and the access policy. No browser, no HTTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.cli import build_parser
from ivr.config import ConfigError, Settings, load_settings
from ivr.engine.gc_pacing import GcPauses
from ivr.http.auth import BEARER, COOKIE, LOOPBACK, NO_TOKEN_FOR_SCRIPTS, Access, is_loopback
from ivr.http.board import BoardSources, snapshot
from ivr.http.cache import Cached
from ivr.http.feed import Feed
from ivr.http.live import LiveCalls, ObservedJournal, observe, unobserve
from ivr.http.metrics import EngineMetrics
from ivr.http.privacy import mask_number
from ivr.http.queues import QueueFigures, QueuesView, QueueWatch
from ivr.http.server import parse_bind
from ivr.http.today import read_today
from ivr.journal import open_state
from ivr.testing.board_fixtures import MONDAY_11
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)

CALLER = "77011234567"


def test_caller_numbers_show_four_digits_at_most() -> None:
    assert mask_number(CALLER) == "•••4567"
    assert mask_number("+7 (701) 123-45-67") == "•••4567"
    assert mask_number("1234") == "•••34"  # a short number is never shown whole
    assert mask_number("7") == "•••"
    assert mask_number("") == "•••"


def test_http_settings_come_from_the_file_and_the_token_from_the_environment(tmp_path) -> None:
    config = tmp_path / "ivr.toml"
    config.write_text('[http]\nbind = "0.0.0.0:8080"\nname = "engine-b"\n', encoding="utf-8")
    settings = load_settings(config, env={"IVR_HTTP_TOKEN": "from-env"})
    assert (settings.http.bind, settings.http.name, settings.http.token) == (
        "0.0.0.0:8080",
        "engine-b",
        "from-env",
    )
    assert "from-env" not in repr(settings)
    assert not Settings().http.enabled  # off unless set
    example = load_settings(Path(__file__).resolve().parents[1] / "ivr.example.toml", env={})
    assert example.http == Settings().http  # the example file documents the defaults
    # the token has no command-line flag: it would show in `ps`
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    assert not any("token" in option for action in serve._actions for option in action.option_strings)


def test_a_bare_port_binds_to_this_machine_only() -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind(":8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError):
        parse_bind("localhost:http")


async def test_live_calls_follow_what_the_journal_records(tmp_path) -> None:
    state = await open_state(Settings(state_dir=str(tmp_path)), engine_id="engine-a")
    live = LiveCalls()
    ended: list[tuple[str, str, str]] = []
    live.on_end.append(lambda *args: ended.append(args))
    observe(state, live)
    observe(state, live)  # twice is once
    other = LiveCalls()  # a second board server on the same engine
    observe(state, other)
    assert isinstance(state.journal, ObservedJournal) and not isinstance(
        state.journal.wrapped, ObservedJournal
    )
    assert state.journal.watchers == [live, other]
    try:
        journal = state.journal
        journal.call_started("c1", 1000.0, CALLER, None, "1414")
        journal.call_started("c2", 1001.0, CALLER, "kk", "1414")
        assert len(other) == 2
        unobserve(state, other)
        journal.event("c1", "node", "welcome")
        assert live.by_language() == {"": 1, "kk": 1} and live.by_node() == {"welcome": 1}
        journal.event("c1", "language", "welcome", {"language": "ru"})
        journal.event("c1", "node", "booking")
        journal.event("c2", "node", "booking")
        live.event("ghost", "node", "main")  # not a call this engine started: ignored
        assert len(live) == 2
        assert live.by_language() == {"ru": 1, "kk": 1} and live.by_node() == {"booking": 2}
        journal.event("c2", "queue", "queue_booking", {"queue": "kk-booking"})  # waiting for an operator
        assert (live.in_ivr(), live.in_queues(), live.by_node()) == (1, 1, {"booking": 1})
        assert live.by_language(in_ivr=True) == {"ru": 1} and live.by_language() == {"ru": 1, "kk": 1}
        journal.event("c2", "queue_result", "queue_booking", {"status": "TIMEOUT"})  # given back
        assert (live.in_ivr(), live.in_queues()) == (2, 0)
        journal.call_ended("c1", "self_served", "booking")
        journal.call_ended("c1", "abandoned", None)  # a second end: the first outcome stands
        journal.event("c1", "hangup")  # after the end: ignored
        assert len(live) == 1 and ended == [("self_served", "ru", "booking")]
        await journal.flush()  # everything else is the journal's own
        record = await journal.call("c1")
        assert record.outcome == "self_served" and [e.node for e in record.events][:2] == [
            "welcome",
            "welcome",
        ]
    finally:
        await state.close()


async def test_todays_figures_are_read_for_the_clocks_day(backend) -> None:
    state = await open_state(Settings(**backend, timezone="Asia/Almaty"), engine_id="engine-a")
    journal = state.journal
    now = MONDAY_11  # 11:00 in Almaty
    at = now.timestamp()
    calls = [  # (id, minutes before now, outcome)
        ("yesterday", 24 * 60, "self_served"),  # neither today's nor on the 8-hour chart
        ("t1", 130, "self_served"),
        ("t2", 125, "abandoned"),
        ("t3", 10, "self_served"),
        ("t4", 5, "queued"),
        ("t5", 4, "after_hours"),
        ("t6", 3, "callback"),
        ("t7", 2, "handed_back"),
        ("t8", 1, "no_operator"),
    ]
    for call_id, minutes, outcome in calls:
        start = at - minutes * 60
        journal.call_started(call_id, start, CALLER, "kk", "1414")
        journal.call_ended(call_id, outcome, "booking", at=start + 60)
    journal.call_started("live-a", at - 30, CALLER, "ru", "1414")  # still in the IVR on engine-a
    journal.call_started("stale", at - 2 * 3600, CALLER, "ru", "1414")  # a crashed engine's: not counted
    await journal.flush()

    def callbacks(tx) -> None:
        rows = [
            ("77011110001", "pending", at - 600, at - 600),
            ("77011110002", "dialing", at - 300, at - 300),
            ("77011110003", "done", at - 3600, at - 3600),
            ("77011110004", "done", at - 86400, at - 86400),  # yesterday
        ]
        for number, cb_state, next_at, updated in rows:
            tx.execute(
                "INSERT INTO callbacks (number, language, queue, state, next_attempt_at, created_at, updated_at) "
                "VALUES (?, 'ru', 'ru-general', ?, ?, ?, ?)",
                (number, cb_state, next_at, updated, updated),
            )

    await state.db.write(callbacks)
    try:
        today = await state.db.read(lambda tx: read_today(tx, now, "Asia/Almaty", hours=8))
    finally:
        await state.close()
    assert today.day == "2026-11-30"
    assert (today.calls, today.self_served, today.abandoned) == (8, 2, 1)
    assert (today.queued, today.no_operator, today.after_hours, today.callback, today.other) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert today.self_service_share == 0.25
    assert (today.callbacks_waiting, today.callbacks_done) == (2, 1)
    assert [c.number for c in today.callbacks_next] == ["•••0001", "•••0002"]
    assert today.in_ivr_by_engine == (("engine-a", 1),)
    assert len(today.bars) == 32  # 8 hours of 15 minutes, the last one the current quarter
    by_time = {dt.datetime.fromtimestamp(b.start, MONDAY_11.tzinfo).strftime("%H:%M"): b for b in today.bars}
    assert by_time["03:15"].start == today.bars[0].start and "11:00" in by_time
    assert (by_time["08:45"].calls, by_time["08:45"].self_served) == (2, 1)  # t1 08:50, t2 08:55
    assert (by_time["10:45"].calls, by_time["10:45"].self_served) == (7, 1)  # t3-t8 and live-a
    assert by_time["09:00"].calls == 1  # the stale call did start then
    assert sum(b.calls for b in today.bars) == 10  # all but yesterday's


class StubAmi:
    """What QueueWatch reads of an AmiClient, down."""

    connected = False
    state = "lost"

    async def queue_summary(self, queue: str) -> None:
        raise AssertionError("AMI is down: nobody should ask it")


async def test_the_board_says_plainly_when_ami_or_the_journal_is_missing() -> None:
    live = LiveCalls()
    live.started("c1", 1.0)
    down = BoardSources(
        "engine-a",
        live,
        QueueWatch(StubAmi(), lambda: ["ru-general"]),
        None,
        lambda: MONDAY_11,
        "Asia/Almaty",
    )
    board = await snapshot(down)
    assert (board["ami"], board["queues"], board["journal"], board["today"]) == (
        "down: lost",
        [],
        {"state": "off"},
        None,
    )
    assert (board["incidents"], board["incidents_stale"]) == ([], None)
    assert board["engine"] == "engine-a" and board["at"] == "2026-11-30 11:00:00"
    assert board["in_ivr"] == {
        "total": 1,
        "by_language": {"kk": 0, "ru": 0, "choosing": 1},
        "by_node": [],
        "in_queues": 0,
    }
    assert board["test_clock"] is False
    off = BoardSources(
        "engine-a", live, QueueWatch(None, lambda: []), None, lambda: MONDAY_11, "Asia/Almaty", lambda: True
    )
    pinned = await snapshot(off)
    assert pinned["ami"] == "off" and pinned["test_clock"] is True  # the board says it runs on --clock


async def test_twenty_boards_share_one_snapshot_per_tick() -> None:
    built = 0

    async def build() -> dict:
        nonlocal built
        built += 1
        return {"n": built}

    feed = Feed(build, interval=0.05)
    received = [0] * 20

    async def board(index: int) -> None:
        async for message in feed.listen():
            assert message.startswith(b"data: {")
            received[index] += 1

    boards = [asyncio.create_task(board(i)) for i in range(20)]
    while built < 5:
        await asyncio.sleep(0.01)
    await feed.close()
    await asyncio.gather(*boards)
    assert built < 8  # one build per tick, not one per board
    assert all(count >= 3 for count in received)
    assert feed.listeners == 0


def test_metrics_have_conventional_names_and_no_caller_numbers() -> None:
    live = LiveCalls()
    view = QueuesView("connected", (QueueFigures("ru-general", 3, 95, 2, 0),))
    services = SimpleNamespace(state=None, speech=None)
    metrics = EngineMetrics(live, lambda: view, services, lambda: None)
    live.started(CALLER + "-call", 1.0, "ru")
    live.started("c2", 1.0, "kk")
    live.finished(CALLER + "-call", "self_served", "booking")
    metrics.observe_agi("STREAM FILE", 1.2)
    metrics.observe_agi("ANSWER", 0.002)
    text = metrics.render().decode()
    # The process_* figures (start time, memory) are the machine's numbers: one may hold "4567" by
    # chance (a start time of 1764...4567e+09 did), so the digits are looked for in the engine's own.
    own = "\n".join(line for line in text.splitlines() if "process_" not in line)
    assert CALLER not in text and "4567" not in own
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert (
        samples[("ivr_calls_total", (("language", "ru"), ("outcome", "self_served"), ("topic", "booking")))]
        == 1
    )
    assert samples[("ivr_calls_in_progress", (("language", "kk"),))] == 1
    assert samples[("ivr_calls_in_progress", (("language", "ru"),))] == 0
    assert samples[("ivr_queue_callers_waiting", (("queue", "ru-general"),))] == 3
    assert samples[("ivr_queue_longest_wait_seconds", (("queue", "ru-general"),))] == 95
    assert samples[("ivr_queue_members_available", (("queue", "ru-general"),))] == 0
    assert samples[("ivr_ami_connected", ())] == 1
    assert samples[("ivr_agi_command_duration_seconds_count", (("command", "STREAM FILE"),))] == 1
    assert (
        samples[("ivr_agi_command_duration_seconds_bucket", (("command", "ANSWER"), ("le", "0.0025")))] == 1
    )
    assert families["ivr_agi_command_duration_seconds"].type == "histogram"
    assert families["ivr_calls"].type == "counter"


def test_metrics_show_how_long_the_paced_collector_stopped_the_engine() -> None:
    pacer = SimpleNamespace(pauses=GcPauses(full_count=2, full_seconds=0.05, full_longest=0.03))
    services = SimpleNamespace(state=None, speech=None)
    view = QueuesView("connected", ())
    metrics = EngineMetrics(LiveCalls(), lambda: view, services, lambda: None, lambda: pacer)
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
    }
    assert samples[("ivr_gc_collections_total", (("kind", "full"),))] == 2
    assert samples[("ivr_gc_pause_seconds_total", (("kind", "full"),))] == 0.05
    assert samples[("ivr_gc_pause_longest_seconds", (("kind", "full"),))] == 0.03
    # An engine that does not pace its collector (inside a test run) shows none of them.
    bare = EngineMetrics(LiveCalls(), lambda: view, services, lambda: None).render().decode()
    assert "ivr_gc_" not in bare


def request(remote: str, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None):
    return SimpleNamespace(
        remote=remote, headers=headers or {}, cookies=cookies or {}, scheme="http", host="board.example:8080"
    )


def test_without_a_token_only_this_machine_is_served() -> None:
    access = Access("")
    assert access.who(request("127.0.0.1")) == (LOOPBACK, "")
    assert access.who(request("::1")) == (LOOPBACK, "")
    who, why = access.who(request("10.1.2.3"))
    assert who is None and "only this machine" in why
    # a script's Bearer header, with no token to check it against: the refusal says what to set
    who, why = access.who(request("10.1.2.3", {"Authorization": "Bearer guess"}))
    assert who is None and why.startswith(NO_TOKEN_FOR_SCRIPTS) and "IVR_HTTP_TOKEN" in why
    script = request("127.0.0.1", {"Authorization": "Bearer guess"})
    assert access.csrf_ok(script, LOOPBACK, "") == (False, NO_TOKEN_FOR_SCRIPTS)
    assert not is_loopback("") and not is_loopback("board.example")
    # a browser from afar gets a login form it could never pass: the form says so, in both languages
    from ivr.http.page import login_page

    assert "откройте табло с этого компьютера" in login_page("no token") and "IVR_HTTP_TOKEN" in login_page(
        "no token"
    )
    assert 'id="note"' not in login_page()


def test_with_a_token_every_client_needs_it_and_forms_need_the_csrf_token() -> None:
    access = Access("s3cret")
    assert access.who(request("127.0.0.1"))[0] is None  # a local reverse proxy must not open the board
    assert access.who(request("10.1.2.3", {"Authorization": "Bearer s3cret"}))[0] == BEARER
    assert access.who(request("10.1.2.3", {"Authorization": "Bearer guess"})) == (None, "wrong bearer token")
    assert access.session_cookie != "s3cret" and "s3cret" not in access.session_cookie
    who, _ = access.who(request("10.1.2.3", cookies={COOKIE: access.session_cookie}))
    assert who == f"cookie:{access.session_cookie}"
    assert access.who(request("10.1.2.3", cookies={COOKIE: "forged"}))[0] is None
    good = access.csrf_token(who)
    assert access.csrf_ok(request("10.1.2.3"), who, good) == (True, "")
    assert access.csrf_ok(request("10.1.2.3", {"Origin": "http://board.example:8080"}), who, good)[0]
    assert not access.csrf_ok(request("10.1.2.3", {"Origin": "https://evil.example"}), who, good)[0]
    assert not access.csrf_ok(request("10.1.2.3"), who, "")[0]
    assert not access.csrf_ok(request("10.1.2.3"), who, Access("s3cret").csrf_token(who))[
        0
    ]  # another process's
    assert access.csrf_ok(request("10.1.2.3"), BEARER, "")[0]  # scripts with the bearer header


async def test_one_fetch_serves_everyone_who_asks_meanwhile_and_a_failure_is_retried() -> None:
    now = [0.0]
    fetches = 0
    fail = False
    release = asyncio.Event()

    async def fetch() -> int:
        nonlocal fetches
        fetches += 1
        await release.wait()
        if fail:
            raise OSError("journal unreachable")
        return fetches

    cached = Cached(fetch, 0, max_age=1.0, clock=lambda: now[0])
    askers = [asyncio.create_task(cached.get()) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*askers) == [1] * 20 and fetches == 1
    now[0] = 0.9
    assert await cached.get() == 1 and fetches == 1  # still fresh
    now[0], fail = 2.0, True
    with pytest.raises(OSError):
        await cached.get()
    assert cached.last == 1  # the board keeps showing the last figures
    fail = False
    assert await cached.get() == 3 and fetches == 3
