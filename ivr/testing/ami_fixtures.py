"""pytest fixtures for AMI: `pytest_plugins = ["ivr.testing.ami_fixtures"]` in a conftest, or import them.

fake_ami: a started FakeAmi on 127.0.0.1 (random port) accepting user "ivr" / secret "test", with a
short failed-login delay so tests of bad secrets stay quick.
ami_settings: AmiSettings pointing at it, reconnecting fast (0.05-0.4 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from ivr.config import AmiSettings
from ivr.testing.fake_ami import FakeAmi

FAKE_AMI_USER = "ivr"
FAKE_AMI_SECRET = "test"


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    ami = FakeAmi(FAKE_AMI_USER, FAKE_AMI_SECRET, auth_failure_delay=0.05)
    await ami.start()
    try:
        yield ami
    finally:
        await ami.close()


@pytest_asyncio.fixture
async def ami_settings(fake_ami: FakeAmi) -> AmiSettings:
    return AmiSettings(
        host="127.0.0.1",
        port=fake_ami.port,
        user=FAKE_AMI_USER,
        secret=FAKE_AMI_SECRET,
        reconnect_min=0.05,
        reconnect_max=0.4,
    )
