"""The README's example of an outage and a callback in a test, exactly as written there."""

from ivr.testing.engine_fixtures import NIGHT
from ivr.testing.fake_caller import Press


async def test_a_booking_outage_is_heard_after_the_language_choice_and_again_at_booking(
    engine, place_call, announce_incident
):
    incident = await announce_incident(
        "Кезекке жазылу уақытша жұмыс істемейді.", "Запись в ЦОН временно не работает.", topics=["booking"]
    )
    call = await place_call(Press("2"), Press("2"))
    assert call.prompts.count(f"incidents/incident-{incident}") == 2


async def test_at_night_a_caller_leaves_a_callback(engine, place_call, clock):
    clock.set(NIGHT)
    # 0: the operator; 1: "call me back"; 1: "the number read back is right"
    call = await place_call(Press("2"), Press("0"), Press("1"), Press("1"))
    [callback] = await engine.services.state.callbacks.list()
    assert (callback.number, callback.queue, callback.state) == (call.callerid, "ru-general", "pending")
    record = await engine.services.state.journal.call(call.uniqueid)
    assert record.outcome == "callback"
