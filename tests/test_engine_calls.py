"""Calls through the fake Asterisk into a real engine running the real 1414 menu."""

from __future__ import annotations

import asyncio

import pytest

from ivr.agi.protocol import AgiParser, Environment
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Silence, env_block


async def test_russian_caller_presses_zero_and_reaches_the_russian_operator_queue(engine, place_call) -> None:
    call = await place_call(Press("2"), Press("0"))
    assert call.commands[0] == "ANSWER"
    assert call.language == "ru"
    assert call.queue == "ru-general"
    assert call.variables["IVR_ROUTED"] == "1"
    # the caller pressed 2 while the Kazakh greeting played (Kazakh first: the state language)
    languages_set = [
        e.args[1] for e in call.exchanges if e.command == "SET VARIABLE" and e.args[0] == "CHANNEL(language)"
    ]
    assert languages_set[:2] == ["kk", "ru"]  # Kazakh (set once), then the caller's choice
    assert call.prompts[:2] == ["1414/welcome", "1414/greeting"]


async def test_a_caller_who_waits_hears_the_greeting_in_kazakh_then_russian(engine, place_call) -> None:
    call = await place_call(Silence(), Press("2"), Press("0"))
    assert call.prompts[:2] == ["1414/welcome", "1414/welcome"]
    assert call.queue == "ru-general"


async def test_kazakh_caller_books_a_slot_then_asks_for_the_booking_queue(engine, place_call) -> None:
    call = await place_call(Press("1"), Press("2"), Press("2"))
    assert call.language == "kk"
    assert call.queue == "kk-booking"
    state = engine.services.state
    record = await state.journal.call(call.uniqueid)
    assert record is not None and record.outcome == "queued" and record.topic == "booking"


async def test_a_caller_who_says_nothing_ends_with_an_operator_not_in_silence(engine, place_call) -> None:
    call = await place_call()  # silent throughout
    assert call.queue is not None
    assert call.queue.endswith("-general")
    # an operator answered; when they hang up, the engine ends the caller's side too
    assert call.hangup_by == "engine" and call.commands[-1] == "HANGUP"
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "queued"


async def test_hang_up_mid_menu_is_journalled_as_abandoned(engine, place_call) -> None:
    call = await place_call(Press("2"), HangUp())
    assert call.dead and call.closed_by_engine
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "abandoned"
    assert any(e.kind == "hangup" for e in record.events)


async def test_hang_up_while_queued_ends_the_call_cleanly(engine, place_call) -> None:
    call = await place_call(Press("2"), Press("0"), queue_outcome="hangup")
    assert call.queue == "ru-general" and call.dead
    assert engine.server.stats.handler_errors == 0


async def test_queue_timeout_without_next_offers_a_callback_then_apologises_and_ends(
    engine, place_call
) -> None:
    call = await place_call(Press("1"), Press("0"), queue_outcome="timeout")
    assert call.queue == "kk-general"
    assert call.prompts[-2:] == ["ivr/callback-offer-busy", "ivr/operators-busy"]
    assert call.hangup_by == "engine"
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "no_operator"


async def test_language_key_switches_language_at_any_time(engine, place_call) -> None:
    call = await place_call(Press("1"), Press("9"), Press("0"))
    assert call.language == "ru" and call.queue == "ru-general"


async def test_invalid_keys_exhaust_retries_and_reach_the_open_question_then_operator(
    engine, place_call
) -> None:
    call = await place_call(Press("2"), Press("7"), Press("8"), Press("7"))
    assert call.prompts.count("1414/text-invalid") == 3
    assert "1414/ask_topic" in call.prompts  # main menu failure goes to the open question
    assert call.queue == "ru-general"


async def test_a_call_for_a_menu_the_engine_lacks_goes_back_to_the_dialplan_fallback(engine) -> None:
    # agi://host/no-such-menu: a typo in the dialplan must not drop the caller
    call = FakeCall(agi_script="no-such-menu")
    await call.run("127.0.0.1", engine.server.port, timeout=10)
    assert call.commands == [] and call.hangup_by is None and call.closed_by_engine
    assert "returned to the dialplan unrouted (its fallback queue takes the caller)" in call.ending()
    assert engine.server.stats.unknown_scripts == 1
    await engine.services.state.journal.flush()
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "handed_back"
    assert [(e.kind, e.data) for e in record.events] == [("unknown_menu", {"menu": "no-such-menu"})]


async def test_many_concurrent_calls_on_one_loop(engine) -> None:
    calls = [FakeCall([Press("2"), Press("0")]) for _ in range(50)]
    await asyncio.gather(*(c.run("127.0.0.1", engine.server.port, timeout=60) for c in calls))
    assert all(c.queue == "ru-general" for c in calls)
    assert engine.server.stats.calls_finished >= 50


async def test_garbage_connection_is_dropped_and_costs_nothing_after(engine) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the engine
    writer.close()
    assert engine.server.stats.dropped == 1


async def test_close_before_the_environment_ends_is_dropped(engine) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.server.port)
    writer.write(env_block("1414")[:100])
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await asyncio.sleep(0.05)
    assert engine.server.stats.dropped == 1
    assert engine.server.active_calls == 0


async def test_an_over_long_line_is_dropped(engine) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.server.port)
    writer.write(b"agi_network: " + b"y" * 20000)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert engine.server.stats.dropped == 1


async def test_graceful_shutdown_lets_a_running_call_finish(engine) -> None:
    slow = FakeCall([Press("2"), Press("0")], reply_delay=0.3)
    running = asyncio.create_task(slow.run("127.0.0.1", engine.server.port, timeout=30))
    await asyncio.sleep(0.5)
    await engine.stop(grace=20)
    await running
    assert slow.queue == "ru-general"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", engine.server.port)


async def test_shutdown_deadline_hands_unfinished_calls_back_to_the_dialplan(engine) -> None:
    slow = FakeCall([Silence()] * 10, reply_delay=0.5)
    running = asyncio.create_task(slow.run("127.0.0.1", engine.server.port, timeout=30))
    await asyncio.sleep(0.3)
    await engine.stop(grace=0.2)
    await running
    assert slow.closed_by_engine
    assert "IVR_ROUTED" not in slow.variables  # so the dialplan's fallback queue takes the caller


def test_parser_reads_the_fake_env_block() -> None:
    parser = AgiParser()
    parser.receive_data(env_block("1414", args=["x"]))
    event = parser.next_event()
    assert isinstance(event, Environment) and event.env.args == ("x",)


async def test_a_booking_caller_the_general_line_takes_is_still_a_booking_call(engine, place_call) -> None:
    # 2: Russian; 2: booking; 2: "my booking is lost" -> the booking queue, which times out; the offer of
    # a callback let pass; then `next: operator`: the general line answers
    call = await place_call(
        Press("2"), Press("2"), Press("2"), Silence(), queue_outcome={"ru-booking": "timeout"}
    )
    assert call.queued == ["ru-booking", "ru-general"]
    await engine.services.state.journal.flush()
    record = await engine.services.state.journal.call(call.uniqueid)
    assert (record.outcome, record.topic) == ("queued", "booking")


async def test_the_operator_key_pressed_over_we_did_not_hear_you_is_taken(engine, place_call) -> None:
    # 2: Russian; silence at the main menu; 0 while "we did not hear your answer" plays
    call = await place_call(Press("2"), Silence(), Press("0"))
    assert call.queue == "ru-general"
    assert call.prompts[call.prompts.index("1414/text-silence") + 1 :][:1] != ["1414/main-short"]
    record = await engine.services.state.journal.call(call.uniqueid)
    # the main menu lists "0: the operator" itself, so it is that option's choice
    choices = [e.data for e in record.events if e.kind == "choice"]
    assert {"how": "dtmf-barge-in", "target": "operator"} in choices
