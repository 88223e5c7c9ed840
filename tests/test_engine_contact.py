"""Operators, hours, outages and callbacks through the fake Asterisk (FastAGI caller + AMI server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import attrs
import pytest

from ivr.clock import FixedClock
from ivr.engine.app import Engine
from ivr.engine.background import CallbackDialer
from ivr.engine.services import EngineServices
from ivr.testing.fake_ami import FakeAmi, OriginateOutcome, QueueState
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Silence
from tests.sqlite_lock import short_lock_wait_fixture, write_lock  # noqa: F401  (the `short_lock_wait` fixture)

ALMATY = dt.timezone(dt.timedelta(hours=5))
TUESDAY_10 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=ALMATY)
SATURDAY_10 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=ALMATY)
QUEUES = ("kk-general", "ru-general", "kk-egov", "ru-egov", "kk-booking", "ru-booking")


@pytest.fixture
def clock() -> FixedClock:
    """The engine's clock, settable by a test (opening hours never depend on the wall clock)."""
    return FixedClock(TUESDAY_10)


@pytest.fixture
def engine_services(engine_settings, ami_settings, fake_ami: FakeAmi, clock) -> EngineServices:
    for name in QUEUES:
        fake_ami.set_queue(QueueState(name, holdtime=60, talktime=180))
        fake_ami.add_member(name, f"PJSIP/op-{name}-101")
    settings = attrs.evolve(engine_settings, ami=ami_settings)
    return EngineServices(settings=settings, clock=clock)


@pytest.fixture
async def online(engine: Engine) -> Engine:
    assert await engine.services.ami.wait_connected(5)
    return engine


def in_two_hours() -> dt.datetime:
    return TUESDAY_10 + dt.timedelta(hours=2)


def playback_sounds(call: FakeCall) -> list[str]:
    return [sound for app, args in call.applications if app == "Playback" for sound in args[0].split("&")]


async def test_caller_hears_position_and_expected_wait_before_queueing(online, place_call, fake_ami) -> None:
    queue = fake_ami.queue("ru-general")
    queue.members[0].status = 2  # in use: nobody free
    for n in range(3):
        fake_ami.add_caller("ru-general", f"PJSIP/trunk-0000000{n}", waited=30)
    call = await place_call(Press("2"), Press("0"))
    sounds = playback_sounds(call)
    assert sounds[0] == "ivr/queue-position" and sounds[1] == "digits/4"  # three wait ahead
    # (3 - 0 + 1) callers x 180 s talk time / 1 operator = 12 minutes, with Russian agreement
    assert sounds[sounds.index("ivr/queue-wait") + 1 :] == ["digits/12", "ivr/minute-many"]
    assert call.queue == "ru-general"


async def test_nobody_logged_in_offers_a_callback_and_stores_it(online, place_call, fake_ami) -> None:
    fake_ami.queue("ru-general").members.clear()
    call = await place_call(Press("2"), Press("0"), Press("1"), Press("1"))
    assert call.queue is None  # not queued: called back instead
    assert "ivr/callback-accepted" in call.prompts and call.dead
    stored = await online.services.state.callbacks.list()
    assert [(c.number, c.language, c.queue, c.state) for c in stored] == [
        ("77011234567", "ru", "ru-general", "pending")
    ]
    record = await online.services.state.journal.call(call.uniqueid)
    assert record.outcome == "callback"


async def test_caller_types_another_number_for_the_callback(online, place_call, fake_ami) -> None:
    fake_ami.queue("kk-general").members.clear()
    call = await place_call(Press("1"), Press("0"), Press("1"), Press("2"), Press("87019998877#"), Press("1"))
    assert "ivr/callback-enter-number" in call.prompts
    assert [c.number for c in await online.services.state.callbacks.list()] == ["77019998877"]


async def test_declining_the_callback_keeps_the_caller_in_the_queue(online, place_call, fake_ami) -> None:
    fake_ami.queue("ru-general").members.clear()
    call = await place_call(Press("2"), Press("0"), Press("2"))
    assert call.queue == "ru-general"
    assert await online.services.state.callbacks.list() == []


async def test_hanging_up_during_the_callback_offer_stores_nothing(online, place_call, fake_ami) -> None:
    fake_ami.queue("ru-general").members.clear()
    call = await place_call(Press("2"), Press("0"), HangUp())
    assert call.dead and call.queue is None
    assert await online.services.state.callbacks.list() == []
    record = await online.services.state.journal.call(call.uniqueid)
    assert record.outcome == "abandoned"


async def test_outside_hours_a_caller_who_asks_goes_back_to_self_service(online, place_call, clock) -> None:
    clock.set(SATURDAY_10)
    # operator -> closed; "2" back to the menu; operator again -> closed; silence -> goodbye
    call = await place_call(Press("2"), Press("0"), Press("2"), Press("0"), Silence())
    assert call.queue is None and call.hangup_by == "engine"
    assert call.prompts.count("ivr/closed") == 2
    after_closed = call.prompts[call.prompts.index("ivr/closed") + 1 :]
    assert after_closed[:2] == ["ivr/callback-offer-closed", "1414/main"]  # "2": back to the main menu
    assert call.prompts[-2:] == ["ivr/callback-offer-closed", "ivr/goodbye"]
    record = await online.services.state.journal.call(call.uniqueid)
    assert record.outcome == "after_hours"


async def test_outside_hours_a_callback_is_taken_for_opening_time(online, place_call, clock) -> None:
    clock.set(SATURDAY_10)
    await place_call(Press("1"), Press("0"), Press("1"), Press("1"))
    assert [(c.language, c.queue) for c in await online.services.state.callbacks.list()] == [
        ("kk", "kk-general")
    ]


async def test_a_callback_that_cannot_be_stored_is_said_so_to_the_caller(
    short_lock_wait, online, clock
) -> None:
    # The database does not answer (an admin's sqlite3 shell holding a write lock): the caller, who has
    # just confirmed the number, must not go away believing someone will call.
    clock.set(SATURDAY_10)
    with write_lock(online.settings.state_dir):
        call = FakeCall([Press("2"), Press("0"), Press("1"), Press("1")])
        await call.run("127.0.0.1", online.server.port, timeout=60)
    assert call.prompts[-3:] == ["ivr/callback-number-confirm", "ivr/callback-failed", "ivr/goodbye"]
    state = online.services.state
    await state.journal.flush()  # what the journal held meanwhile is written now
    assert await state.callbacks.list() == []
    record = await state.journal.call(call.uniqueid)
    assert record.outcome == "after_hours" and "callback_failed" in [e.kind for e in record.events]


async def test_with_ami_gone_calls_still_reach_the_queue(online, place_call, fake_ami) -> None:
    await fake_ami.close()
    call = await place_call(Press("2"), Press("0"))
    assert call.queue == "ru-general"
    assert playback_sounds(call) == []  # no figures without AMI, and no failure either
    assert online.server.stats.handler_errors == 0


async def test_ami_restart_mid_call_degrades_then_recovers(online, place_call, fake_ami) -> None:
    await fake_ami.shutdown()
    first = await place_call(Press("2"), Press("0"))
    assert first.queue == "ru-general"
    await fake_ami.restart()
    assert await online.services.ami.wait_connected(5)
    fake_ami.queue("ru-general").members[0].status = 2  # in use: the caller will wait, and hears so
    second = await place_call(Press("2"), Press("0"))
    assert playback_sounds(second)[0] == "ivr/queue-position"


async def test_the_dialer_calls_back_when_an_operator_is_free(online, fake_ami) -> None:
    state = online.services.state
    callback_id = await state.callbacks.request("77011234567", "ru", "ru-general", "general", "call-1")
    fake_ami.script_originate(OriginateOutcome(success=True), channel="Local/77011234567@ivr-callback-out")
    assert await CallbackDialer(online.services).round()
    done = await state.callbacks.get(callback_id)
    assert done.state == "done"
    originate = fake_ami.received("Originate")[-1]
    assert originate.get("Channel") == "Local/77011234567@ivr-callback-out"
    assert (originate.get("Context"), originate.get("Exten")) == ("ivr-callback", "ru-general")


async def test_a_callback_whose_citizen_the_queue_gave_back_is_due_again(online, fake_ami) -> None:
    # the citizen answered, heard the intro, and nobody took them from the queue: not done
    state = online.services.state
    callback_id = await state.callbacks.request("77011234567", "ru", "ru-general", "general", "call-1")
    fake_ami.script_originate(OriginateOutcome(success=True, queue_status="TIMEOUT"), channel="Local/*")
    assert await CallbackDialer(online.services).round()
    assert (await state.callbacks.get(callback_id)).state == "done"  # answered: what the dialer saw
    for _ in range(200):  # the UserEvent comes 0.2 s after the answer (OriginateOutcome.given_back_after)
        again = await state.callbacks.get(callback_id)
        if again.state != "done":
            break
        await asyncio.sleep(0.05)
    assert again.state == "pending" and again.engine_id is None
    assert again.last_error == "answered, but queue ru-general gave the citizen back (TIMEOUT)"
    assert again.next_attempt_at.timestamp() == TUESDAY_10.timestamp() + CallbackDialer.RETRY_DELAY


async def test_the_dialer_waits_while_no_operator_is_free(online, fake_ami) -> None:
    state = online.services.state
    callback_id = await state.callbacks.request("77011234567", "kk", "kk-general")
    fake_ami.queue("kk-general").members[0].paused = True
    assert await CallbackDialer(online.services).round()
    again = await state.callbacks.get(callback_id)
    assert again.state == "pending" and again.last_error == "no free operator"
    assert fake_ami.received("Originate") == []


async def test_a_callback_waits_for_a_free_operator_however_long_it_takes(online, fake_ami, clock) -> None:
    # Offered because nobody was free: the caller was told an operator would call back. The claims put
    # back for want of a free operator are no attempts (12 of them, 30 s apart, gave it up in 5.5 min).
    state = online.services.state
    callback_id = await state.callbacks.request("77011234567", "kk", "kk-general")
    fake_ami.queue("kk-general").members[0].paused = True
    dialer = CallbackDialer(online.services)
    for _ in range(CallbackDialer.MAX_ATTEMPTS + 3):
        assert await dialer.round()
        waiting = await state.callbacks.get(callback_id)
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 0, "no free operator")
        clock.advance(CallbackDialer.BUSY_DELAY + 1)
    assert fake_ami.received("Originate") == []
    fake_ami.queue("kk-general").members[0].paused = False
    fake_ami.script_originate(OriginateOutcome(success=True), channel="Local/77011234567@ivr-callback-out")
    assert await dialer.round()
    done = await state.callbacks.get(callback_id)
    assert (done.state, done.attempts) == ("done", 1)


async def test_an_unanswered_callback_is_retried_later(online, fake_ami) -> None:
    state = online.services.state
    callback_id = await state.callbacks.request("77011234567", "ru", "ru-general")
    fake_ami.script_originate(OriginateOutcome(success=False), channel="Local/*")
    assert await CallbackDialer(online.services).round()
    again = await state.callbacks.get(callback_id)
    assert again.state == "pending" and again.last_error.startswith("not answered")


async def test_the_callback_store_survives_an_engine_restart(
    engine_settings, ami_settings, place_call, fake_ami
) -> None:
    settings = attrs.evolve(engine_settings, ami=ami_settings)
    first = Engine(settings, EngineServices(settings=settings, clock=FixedClock(TUESDAY_10)))
    await first.start()
    fake_ami.queue("ru-general").members.clear()
    call = FakeCall([Press("2"), Press("0"), Press("1"), Press("1")])
    await first.services.ami.wait_connected(5)
    await call.run("127.0.0.1", first.server.port, timeout=30)
    await first.stop(1)
    second = Engine(settings, EngineServices(settings=settings, clock=FixedClock(TUESDAY_10)))
    await second.start()
    try:
        stored = await second.services.state.callbacks.list()
        assert [(c.number, c.state) for c in stored] == [("77011234567", "pending")]
    finally:
        await second.stop(1)


async def test_an_outage_is_announced_right_after_the_language_choice(online, place_call) -> None:
    state = online.services.state
    await state.incidents.add(
        "Брондау қызметі уақытша істемейді.",
        "Сервис записи временно не работает.",
        ["booking"],
        expires_at=in_two_hours(),
    )
    await online.services.incident_audio.refresh()
    call = await place_call(Press("2"), Press("2"), Press("1"))
    assert call.prompts[:4] == ["1414/welcome", "ivr/incident-intro", "incidents/incident-1", "1414/greeting"]
    # ... and again on entering the affected topic
    assert call.prompts.count("incidents/incident-1") == 2
    ru = Path(online.settings.prompts.dir) / "ru" / "incidents" / "incident-1.wav"
    assert ru.is_file() and ru.stat().st_size > 1000


async def test_an_outage_that_starts_later_by_the_engines_clock_is_logged_and_heard_once_it_starts(
    online, place_call, clock, caplog
) -> None:
    # `ivr incident add` reads the machine's clock; an engine on --clock lives at another hour
    state = online.services.state
    starts = TUESDAY_10 + dt.timedelta(hours=3)
    incident = await state.incidents.add("Ақау.", "Сбой.", [], starts, starts + dt.timedelta(hours=2))
    with caplog.at_level("INFO", logger="ivr.engine"):
        await online.services.incident_audio.refresh()
        await online.services.incident_audio.refresh()  # said once, not every second
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"incident {incident} is")]
    assert said == [
        f"incident {incident} is announced from 2026-11-24 13:00; this engine's clock says 2026-11-24 10:00"
    ]
    before = await place_call(Press("2"), Press("0"))
    assert not any(p.startswith("incidents/") for p in before.prompts)
    clock.set(starts)
    after = await place_call(Press("2"), Press("0"))
    assert f"incidents/incident-{incident}" in after.prompts  # its audio was made while it waited


async def test_an_ended_outage_is_no_longer_announced(online, place_call) -> None:
    state = online.services.state
    incident = await state.incidents.add("Ақау.", "Сбой.", [], expires_at=in_two_hours())
    await online.services.incident_audio.refresh()
    await state.incidents.end(incident)
    call = await place_call(Press("2"), Press("0"))
    assert not any(p.startswith("incidents/") for p in call.prompts)


@pytest.fixture
def menus_copy(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(Path(__file__).parents[1] / "menus", root / "menus")
    shutil.copytree(Path(__file__).parents[1] / "asterisk-conf", root / "asterisk-conf")
    return root / "menus"


@pytest.fixture
async def engine_on_the_copy(engine_settings, menus_copy):
    """An engine serving the copied menus, an admin's to edit, on Tuesday at 10:00."""
    settings = attrs.evolve(engine_settings, menus_dir=str(menus_copy))
    engine = Engine(settings, EngineServices(settings=settings, clock=FixedClock(TUESDAY_10)))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop(1)


async def test_a_valid_menu_edit_reaches_new_calls_and_a_bad_one_is_refused(
    engine_on_the_copy, menus_copy
) -> None:
    engine = engine_on_the_copy
    menu_file = menus_copy / "1414.yaml"
    text = menu_file.read_text(encoding="utf-8")
    # the operator of the 0 key now sends Russian callers to the eGov desk
    menu_file.write_text(
        text.replace(
            "queue: {kk: kk-general, ru: ru-general}\n    callback_offer: true\n\n  queue_egov",
            "queue: {kk: kk-general, ru: ru-egov}\n    callback_offer: true\n\n  queue_egov",
            1,
        ),
        encoding="utf-8",
    )
    assert engine.library.poll() == ["1414"]
    call = FakeCall([Press("2"), Press("0")])
    await call.run("127.0.0.1", engine.server.port, timeout=30)
    assert call.queue == "ru-egov"
    menu_file.write_text(text.replace("kind: queue", "kind: queu", 1), encoding="utf-8")
    assert engine.library.poll() == []
    assert any("queu" in str(p) for p in engine.library.problems["1414"])
    call = FakeCall([Press("2"), Press("0")])
    await call.run("127.0.0.1", engine.server.port, timeout=30)
    assert call.queue == "ru-egov"  # the last good version keeps serving


async def test_new_holidays_and_the_menus_own_closed_message_reach_the_next_call(
    engine_on_the_copy, menus_copy
) -> None:
    engine = engine_on_the_copy
    menu_file = menus_copy / "1414.yaml"
    text = menu_file.read_text(encoding="utf-8")
    # Tuesday 24 November becomes a holiday, with the centre's own words for its hours
    edited = text.replace(
        "  holidays:\n",
        '  closed_message: {kk: "Бүгін мереке.", ru: "Сегодня праздник."}\n  holidays:\n    - 2026-11-24\n',
        1,
    )
    assert edited != text
    menu_file.write_text(edited, encoding="utf-8")
    assert engine.library.poll() == ["1414"]
    call = FakeCall([Press("2"), Press("0")])
    await call.run("127.0.0.1", engine.server.port, timeout=30)
    assert "1414/hours-closed" in call.prompts and "ivr/closed" not in call.prompts
    assert call.queue is None
