"""Every call ends, at any hour: a caller who does nothing, or everything wrong, in every state of the
centre, is queued, called back, or hears a goodbye and is hung up on, within the menu's bound.

Through the fake Asterisk (FastAGI caller, AMI server) with the 1414 menu. The engine's clock is
pinned by the `clock` fixture; each test moves it where it needs it.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path

import attrs
import pytest

from ivr.clock import FixedClock
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.journal.state import open_state
from ivr.testing.engine_fixtures import EVENING, HOLIDAY, LAST_MINUTE, NIGHT, OPEN_HOURS, REPO
from ivr.testing.fake_caller import FakeCall, HangUp, Press

# A call that ends takes a few dozen AGI commands; one that loops takes thousands in no time.
MOST_COMMANDS = 150
QUEUES = ("kk-general", "ru-general", "kk-egov", "ru-egov", "kk-booking", "ru-booking")


def ended(call: FakeCall) -> bool:
    """The call is over for the caller: hung up (by the engine or an operator), or in a queue."""
    return call.hangup_by is not None or call.queue is not None


async def outcome(engine: Engine, call: FakeCall) -> str | None:
    record = await engine.services.state.journal.call(call.uniqueid)
    return record.outcome if record else None


# --- a silent caller, whatever the hour ------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (OPEN_HOURS, "queued"),
        (LAST_MINUTE, "queued"),
        (EVENING, "after_hours"),
        (NIGHT, "after_hours"),
        (HOLIDAY, "after_hours"),
    ],
    ids=["open", "last-minute", "evening", "sunday-3am", "holiday"],
)
async def test_a_silent_caller_ends_at_any_hour(engine, place_call, clock, moment, expected) -> None:
    clock.set(moment)
    call = await place_call()  # nothing pressed, nothing said
    assert ended(call) and len(call.exchanges) < MOST_COMMANDS, call.ending()
    assert await outcome(engine, call) == expected
    if expected == "after_hours":
        # the closed message and the callback offer once, then a goodbye and the engine hangs up
        assert call.prompts.count("ivr/closed") == 1
        assert call.prompts.count("ivr/callback-offer-closed") == 1
        assert call.prompts[-1] == "ivr/goodbye" and call.hangup_by == "engine"
        assert call.queue is None


@pytest.mark.parametrize("moment", [OPEN_HOURS, NIGHT], ids=["open", "night"])
async def test_a_caller_pressing_only_wrong_keys_ends_too(engine, place_call, clock, moment) -> None:
    clock.set(moment)
    call = await place_call(*[Press("8")] * 40)
    assert ended(call) and len(call.exchanges) < MOST_COMMANDS, call.ending()
    invalid = [
        e for e in (await engine.services.state.journal.call(call.uniqueid)).events if e.kind == "invalid"
    ]
    assert invalid, "a wrong key is an invalid answer, never silence"


async def test_a_caller_hanging_up_at_the_callback_offer_is_journalled_as_gone(
    engine, place_call, clock
) -> None:
    clock.set(NIGHT)
    call = await place_call(Press("2"), Press("0"), HangUp())
    assert call.hangup_by == "caller"
    assert await outcome(engine, call) == "abandoned"


async def test_a_callback_taken_at_night_ends_the_call(engine, place_call, clock) -> None:
    clock.set(NIGHT)
    call = await place_call(Press("2"), Press("0"), Press("1"), Press("1"))
    assert call.prompts[-1] == "ivr/callback-accepted" and call.hangup_by == "engine"
    assert await outcome(engine, call) == "callback"


async def test_the_clock_crossing_closing_time_during_a_call(
    engine_settings, place_call, project_prompts
) -> None:
    """At 17:59 the caller starts; by the time they ask for the operator it is past 18:00."""

    class Ticking(FixedClock):
        def time(self) -> float:
            self.advance(10)  # every journal entry is 10 s later: the call takes minutes
            return super().time()

    services = EngineServices(settings=engine_settings, clock=Ticking(LAST_MINUTE))
    engine = Engine(engine_settings, services)
    await engine.start()
    try:
        call = FakeCall([Press("2"), Press("1"), Press("1"), Press("#"), Press("#"), Press("0")])
        await call.run("127.0.0.1", engine.server.port, timeout=60)
        await engine.services.state.journal.flush()
        assert "ivr/closed" in call.prompts and call.queue is None
        assert await outcome(engine, call) == "after_hours"
    finally:
        await engine.stop(1)


# --- the queue, every way app_queue ends it --------------------------------------------------------
@pytest.mark.parametrize("refusal", ["joinempty", "joinunavail", "full", "timeout", "leaveempty", "noqueue"])
async def test_a_queue_that_gives_the_caller_back_never_loops(engine, place_call, refusal) -> None:
    # Russian, then 0: the general operator queue, which has no `next:`.
    call = await place_call(Press("2"), Press("0"), queue_outcome=refusal)
    assert call.queued == ["ru-general"]  # tried once, never again
    assert call.prompts[-2:] == ["ivr/callback-offer-busy", "ivr/operators-busy"]
    assert call.hangup_by == "engine"
    assert await outcome(engine, call) == "no_operator"


async def test_a_topic_queue_that_refuses_leads_to_the_general_line_once(engine, place_call) -> None:
    # eGov portal, "2": the eGov desk refuses; its next: is the general line, which refuses too.
    call = await place_call(
        Press("2"), Press("1"), Press("1"), Press("2"), Press("2"), queue_outcome={"*": "joinunavail"}
    )
    assert call.queued == ["ru-egov", "ru-general"]
    assert call.hangup_by == "engine" and call.prompts[-1] == "ivr/operators-busy"
    # "2" at the first offer is no "let it pass": the offer may come again after the next refusal
    assert call.prompts.count("ivr/callback-offer-busy") == 2
    assert await outcome(engine, call) == "no_operator"


async def test_a_caller_who_hangs_up_in_the_queue_is_journalled_as_gone(engine, place_call) -> None:
    call = await place_call(Press("2"), Press("0"), queue_outcome="hangup")
    assert call.variables["ABANDONED"] == "TRUE" and call.hangup_by == "caller"
    assert await outcome(engine, call) == "abandoned"


async def test_an_answered_call_is_hung_up_after_the_operator(engine, place_call) -> None:
    call = await place_call(Press("2"), Press("0"))
    assert call.queue == "ru-general" and call.queue_result == "answered"
    assert call.commands[-1] == "HANGUP" and call.hangup_by == "engine"
    assert await outcome(engine, call) == "queued"


# --- the bound itself: limits in the menu ------------------------------------------------------------
@pytest.fixture
def loop_site(tmp_path: Path) -> Path:
    """The test menu with a silent loop planted in it, beside the project's prompts and queues."""
    site = tmp_path / "site"
    (site / "menus").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "menus" / "loops" / "silent_loop.yaml", site / "menus" / "1414.yaml")
    shutil.copytree(REPO / "asterisk-conf", site / "asterisk-conf")
    shutil.copytree(REPO / "prompts", site / "prompts", ignore=shutil.ignore_patterns("*.wav16"))
    return site


async def test_the_menus_without_answer_limit_ends_a_loop_a_menu_planted(
    engine_settings, loop_site, clock
) -> None:
    settings = attrs.evolve(
        engine_settings,
        menus_dir=str(loop_site / "menus"),
        prompts=attrs.evolve(
            engine_settings.prompts, dir=str(loop_site / "prompts"), synthesize_missing=True
        ),
    )
    engine = Engine(settings, EngineServices(settings=settings, clock=clock))
    await engine.start()
    try:
        call = FakeCall()  # silent: main -> sub -> main -> ... until the limit
        await call.run("127.0.0.1", engine.server.port, timeout=60)
        await engine.services.state.journal.flush()
        record = await engine.services.state.journal.call(call.uniqueid)
        visited = [e.node for e in record.events if e.kind == "node"]
        assert visited == ["main", "sub", "main", "operator"]  # 3 menus without an answer, then out
        (limit,) = [e for e in record.events if e.kind == "limit"]
        assert limit.data == {"reason": "3 menus in a row without an answer", "to": "operator"}
        assert call.queue == "kk-general"
    finally:
        await engine.stop(1)


async def test_the_time_limit_takes_a_caller_browsing_forever_to_an_operator(
    engine_settings, place_call, clock
) -> None:
    # Each look at the call's monotonic clock is a minute later: 15 minutes pass in 15 looks.
    minutes = itertools.count(0, 60.0)
    services = EngineServices(settings=engine_settings, clock=clock, elapsed=lambda: next(minutes))
    engine = Engine(engine_settings, services)
    await engine.start()
    try:
        call = FakeCall([Press("2"), *[Press("*")] * 60])  # "repeat" at the main menu, again and again
        await call.run("127.0.0.1", engine.server.port, timeout=60)
        await engine.services.state.journal.flush()
        record = await engine.services.state.journal.call(call.uniqueid)
        (limit,) = [e for e in record.events if e.kind == "limit"]
        assert limit.data == {"reason": "15 minutes in the IVR", "to": "operator"}
        assert call.queue == "ru-general" and len(call.exchanges) < MOST_COMMANDS
    finally:
        await engine.stop(1)


# --- shutdown --------------------------------------------------------------------------------------
async def test_a_call_running_at_shutdown_is_journalled_as_handed_back(engine_settings, clock) -> None:
    state = await open_state(engine_settings, clock=clock)  # the test's: it outlives the engine
    engine = Engine(engine_settings, EngineServices(settings=engine_settings, clock=clock, state=state))
    await engine.start()
    call = FakeCall([Press("2")], reply_delay=0.2)  # a caller listening to the prompts
    running = asyncio.create_task(call.run("127.0.0.1", engine.server.port, timeout=30))
    await asyncio.sleep(0.5)
    await engine.stop(0.1)
    await running
    await state.journal.flush()
    record = await state.journal.call(call.uniqueid)
    assert record.outcome == "handed_back"
    assert call.closed_by_engine and "IVR_ROUTED" not in call.variables  # the dialplan queues the caller
    await state.close()


# --- the README's example for testers, as written there ------------------------------------------
async def test_at_night_a_caller_hears_the_closed_message(engine, place_call, clock):
    clock.set(NIGHT)  # also OPEN_HOURS, LAST_MINUTE, EVENING, HOLIDAY
    call = await place_call(Press("2"), Press("0"))
    assert "ivr/closed" in call.prompts and call.hangup_by == "engine"
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "after_hours"


# --- a wrong key is an invalid answer in every kind of node that waits for one -------------------
async def test_a_wrong_key_at_the_language_choice_is_invalid(engine, place_call) -> None:
    call = await place_call(Press("7"), Press("2"), Press("0"))
    record = await engine.services.state.journal.call(call.uniqueid)
    assert [(e.kind, e.node, e.data) for e in record.events if e.kind in ("invalid", "silence")] == [
        ("invalid", "welcome", {"dtmf": "7"})
    ]
    assert "1414/welcome-invalid" in call.prompts or "1414/text-invalid" in call.prompts
    assert call.queue == "ru-general"


@pytest.mark.parametrize(("keys", "node"), [(["2", "8"], "main"), (["2", "7", "7", "7", "8"], "ask_topic")])
async def test_a_wrong_key_at_a_menu_or_the_open_question_is_invalid(engine, place_call, keys, node) -> None:
    call = await place_call(*[Press(k) for k in keys])
    record = await engine.services.state.journal.call(call.uniqueid)
    answers = [e.kind for e in record.events if e.node == node and e.kind in ("invalid", "silence")]
    assert answers[0] == "invalid"  # the wrong key itself, not a silence it was lost in


# --- every call its own --------------------------------------------------------------------------
async def test_two_asterisks_handing_out_the_same_uniqueid_are_two_calls(engine, place_call) -> None:
    first = FakeCall([Press("2"), Press("0")], source_address="127.0.0.1")
    second = FakeCall([Press("1"), Press("0")], source_address="127.0.0.2")  # another Asterisk server
    second.uniqueid = first.uniqueid
    for call in (first, second):
        await call.run("127.0.0.1", engine.server.port, timeout=30)
    journal = engine.services.state.journal
    await journal.flush()
    one = await journal.call(f"{first.uniqueid}@127.0.0.1")
    two = await journal.call(f"{first.uniqueid}@127.0.0.2")
    assert (one.language, one.outcome) == ("ru", "queued")
    assert (two.language, two.outcome) == ("kk", "queued")
