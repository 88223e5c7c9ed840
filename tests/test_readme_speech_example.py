"""The README's speech scenario, as written there ("Tests and benchmarks")."""

import pytest

from ivr.testing.fake_caller import Press, Say


@pytest.fixture
def engine_services(speech_engine_services):
    return speech_engine_services


async def test_a_caller_who_presses_2_and_says_operator_waits_for_a_russian_operator(
    engine, place_call, spoken
):
    call = await place_call(Press("2"), Say(spoken("оператор", "ru")))
    assert call.queue == "ru-general"
    record = await engine.services.state.journal.call(call.uniqueid)
    assert {"action": "operator", "how": "speech"} in [e.data for e in record.events if e.kind == "global"]
