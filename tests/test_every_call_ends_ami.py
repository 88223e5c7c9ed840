"""Every call ends with AMI in every state: queue figures, nobody logged in, stuck, gone.

Through the fake Asterisk (FastAGI caller + AMI server), the 1414 menu, the clock pinned at open hours.
"""

from __future__ import annotations

import pytest

from ivr.engine.services import EngineServices
from ivr.testing.fake_ami import FakeAmi, QueueState
from ivr.testing.fake_caller import Press

QUEUES = ("kk-general", "ru-general", "kk-egov", "ru-egov", "kk-booking", "ru-booking")


async def outcome(engine, call) -> str | None:
    record = await engine.services.state.journal.call(call.uniqueid)
    return record.outcome if record else None


@pytest.fixture
def engine_services(ami_engine_services, fake_ami: FakeAmi) -> EngineServices:
    for name in QUEUES:
        fake_ami.set_queue(QueueState(name, holdtime=60, talktime=180))
    return ami_engine_services


async def test_nobody_logged_in_offers_a_callback_once_then_ends(engine, place_call, fake_ami) -> None:
    assert await engine.services.ami.wait_connected(5)
    # no members in any queue: app_queue refuses the join (joinempty in asterisk-conf/queues.conf)
    call = await place_call(Press("1"), Press("0"), queue_outcome="joinempty")
    assert call.prompts.count("ivr/callback-offer") == 1  # let pass before the queue: not offered again
    assert call.queued == ["kk-general"] and call.hangup_by == "engine"
    assert call.prompts[-1] == "ivr/operators-busy"
    assert await outcome(engine, call) == "no_operator"


async def test_a_stuck_ami_costs_the_caller_at_most_its_short_wait(engine, place_call, fake_ami) -> None:
    assert await engine.services.ami.wait_connected(5)
    fake_ami.add_member("ru-general", "PJSIP/op-101")
    fake_ami.unresponsive = True  # logged in, but actions go unanswered
    call = await place_call(Press("2"), Press("0"))
    assert call.queue == "ru-general"
    # the Queue command followed "connecting" within the configured wait, not the 5 s action timeout
    connecting = next(e.at for e in call.exchanges if e.args[:1] == ("1414/text-connecting",))
    queued = next(e.at for e in call.exchanges if e.args[:1] == ("Queue",))
    assert queued - connecting < engine.settings.ami.wait_on_call + 2.0


async def test_with_ami_down_a_silent_caller_still_ends_in_a_queue(engine, place_call, fake_ami) -> None:
    await fake_ami.close()
    call = await place_call()
    assert call.queue == "kk-general" and call.hangup_by == "engine"
    assert await outcome(engine, call) == "queued"


def playback_sounds(call) -> list[str]:
    return [sound for app, args in call.applications if app == "Playback" for sound in args[0].split("&")]


async def test_the_place_in_line_counts_only_those_ahead_for_a_busy_operator(
    engine, place_call, fake_ami
) -> None:
    assert await engine.services.ami.wait_connected(5)
    for n in range(2):
        fake_ami.add_member("ru-general", f"PJSIP/op-10{n}")  # two operators free
    for n in range(3):
        fake_ami.add_caller("ru-general", f"PJSIP/trunk-0000000{n}", waited=30)  # three callers waiting
    call = await place_call(Press("2"), Press("0"))
    sounds = playback_sounds(call)
    # two of the three are being connected; one is ahead of this caller: number 2
    assert sounds[:2] == ["ivr/queue-position", "digits/2"]


async def test_no_place_in_line_is_announced_when_an_operator_is_free(engine, place_call, fake_ami) -> None:
    assert await engine.services.ami.wait_connected(5)
    fake_ami.add_member("ru-general", "PJSIP/op-101")
    call = await place_call(Press("2"), Press("0"))
    assert playback_sounds(call) == [] and call.queue == "ru-general"
