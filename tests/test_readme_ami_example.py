"""The README's example of a test with the fake AMI, exactly as written there."""

import pytest

from ivr.testing.fake_ami import QueueState
from ivr.testing.fake_caller import Press


@pytest.fixture
def engine_services(ami_engine_services, fake_ami):
    fake_ami.set_queue(QueueState("ru-general", holdtime=60, talktime=180))
    fake_ami.add_member("ru-general", "PJSIP/op-101")
    return ami_engine_services


async def test_a_free_operator_means_no_wait_is_announced(engine, place_call):
    assert await engine.services.ami.wait_connected(5)
    call = await place_call(Press("2"), Press("0"))
    assert call.queue == "ru-general"
