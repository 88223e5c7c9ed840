"""AmiClient (panoramisk underneath) against FakeAmi over real TCP."""

# The fixtures are imported by name (tests/conftest.py belongs to the lead), so their parameters
# "redefine" the imports as far as ruff can tell.

from __future__ import annotations

import asyncio
import logging
import socket

import attrs
import pytest

from ivr.ami.client import AmiClient, OriginateResult, QueueSummary
from ivr.ami.protocol import Message
from ivr.config import AmiSettings
from ivr.testing.fake_ami import FakeAmi, OriginateOutcome, QueueMember, QueueState

# Generous guard against hangs only; nothing here asserts on speed.
HANG_GUARD = 10.0


async def connected_client(settings: AmiSettings) -> AmiClient:
    client = AmiClient(settings, action_timeout=2.0)
    client.start()
    assert await client.wait_connected(HANG_GUARD)
    return client


def kk_general(fake: FakeAmi) -> QueueState:
    queue = QueueState("kk-general", holdtime=35, talktime=140, completed=12, abandoned=3)
    queue.members += [
        QueueMember("Local/101@agents", name="Айгүл"),
        QueueMember("Local/102@agents", paused=True, paused_reason="lunch"),
        QueueMember("Local/103@agents", status=5),  # unavailable: not logged in
    ]
    return fake.set_queue(queue)


async def test_logs_in_with_the_configured_user(fake_ami: FakeAmi, ami_settings: AmiSettings) -> None:
    client = await connected_client(ami_settings)
    try:
        assert client.connected and client.state == "connected"
        login = await fake_ami.wait_for_action("Login")
        assert (login["Username"], login["Secret"]) == ("ivr", "test")
        assert fake_ami.clients == 1
    finally:
        await client.close()
    assert not client.connected


async def test_bad_secret_keeps_retrying_and_logs_the_rejection_once(
    fake_ami: FakeAmi, ami_settings: AmiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.ami")
    client = AmiClient(attrs.evolve(ami_settings, secret="wrong"), action_timeout=2.0)
    client.start()
    try:
        for _ in range(3):  # three attempts: the client did not give up after the first refusal
            await fake_ami.wait_for_action("Login", timeout=HANG_GUARD)
        assert not client.connected
        assert client.state == "rejected"
        assert await client.queue_summary("kk-general") is None
        rejections = [r for r in caplog.records if "login rejected" in r.getMessage()]
        assert len(rejections) == 1
        assert "Authentication failed" in rejections[0].getMessage()
        assert "wrong" not in caplog.text  # the secret never reaches the log
    finally:
        await client.close()


async def test_queue_summary_figures_come_from_the_queue_state(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    kk_general(fake_ami)
    fake_ami.add_caller("kk-general", "PJSIP/trunk-00000001", waited=50)
    fake_ami.add_caller("kk-general", "PJSIP/trunk-00000002", waited=5)
    client = await connected_client(ami_settings)
    try:
        summary = await client.queue_summary("kk-general")
        assert isinstance(summary, QueueSummary)
        assert (summary.queue, summary.logged_in, summary.available, summary.callers) == (
            "kk-general",
            2,
            1,
            2,
        )
        assert (summary.hold_time, summary.talk_time) == (35, 140)
        assert summary.longest_hold_time >= 50
        assert await client.queue_summary("no-such-queue") is None
        sent = await fake_ami.wait_for_action("QueueSummary")
        assert sent["Queue"] == "kk-general"
    finally:
        await client.close()


async def test_queue_status_lists_members_and_waiting_callers(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    kk_general(fake_ami)
    fake_ami.add_caller("kk-general", "PJSIP/trunk-00000001", caller_id_num="77011234567", waited=20)
    client = await connected_client(ami_settings)
    try:
        status = await client.queue_status("kk-general")
        assert status is not None
        assert (status.calls, status.hold_time, status.completed, status.abandoned) == (1, 35, 12, 3)
        assert [m.name for m in status.members] == ["Айгүл", "Local/102@agents", "Local/103@agents"]
        assert [(m.paused, m.paused_reason) for m in status.members][1] == (True, "lunch")
        (entry,) = status.entries
        assert (entry.position, entry.channel, entry.caller_id_num) == (
            1,
            "PJSIP/trunk-00000001",
            "77011234567",
        )
        assert entry.wait >= 20
    finally:
        await client.close()


async def test_subscribers_get_their_events_and_a_failing_one_breaks_nothing(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    kk_general(fake_ami)
    client = await connected_client(ami_settings)
    received: asyncio.Queue[Message] = asyncio.Queue()
    everything: asyncio.Queue[Message] = asyncio.Queue()

    def broken(message: Message) -> None:
        raise RuntimeError("subscriber bug")

    async def collect(message: Message) -> None:
        await received.put(message)

    try:
        client.subscribe(broken)
        client.subscribe(collect, events={"QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave"})
        unsubscribe = client.subscribe(everything.put_nowait, events=None)
        fake_ami.emit("Newexten", Channel="PJSIP/x-1", Application="AGI")  # not in collect's set
        fake_ami.caller_join("kk-general", "PJSIP/trunk-1", caller_id_name="Сәуле", language="kk")
        join = await asyncio.wait_for(received.get(), HANG_GUARD)
        assert (join.event, join["Queue"], join["CallerIDName"], join["Language"]) == (
            "QueueCallerJoin",
            "kk-general",
            "Сәуле",
            "kk",
        )
        first_seen = await asyncio.wait_for(everything.get(), HANG_GUARD)
        assert first_seen.event == "Newexten"
        unsubscribe()
        fake_ami.caller_abandon("kk-general", "PJSIP/trunk-1")
        abandon = await asyncio.wait_for(received.get(), HANG_GUARD)
        leave = await asyncio.wait_for(received.get(), HANG_GUARD)
        assert (abandon.event, leave.event) == ("QueueCallerAbandon", "QueueCallerLeave")
        assert client.connected  # the broken subscriber did not take the connection down
        assert (await client.queue_summary("kk-general")) is not None
        assert everything.qsize() == 1  # only the join arrived before unsubscribing
    finally:
        await client.close()


async def test_originate_success_reports_the_answered_channel(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    client = await connected_client(ami_settings)
    try:
        result = await client.originate(
            "Local/callback@outbound",
            "ivr-callback",
            "1414",
            caller_id='"1414" <1414>',
            variables={"IVR_SESSION": "abc123", "LANG": "kk"},
            timeout_ms=20000,
            action_id="cb-1",
        )
        assert isinstance(result, OriginateResult)
        assert result.success and result.reason_code == 4 and result.reason == "answered"
        assert result.channel is not None and result.channel.startswith("Local/callback@outbound-")
        assert result.uniqueid and result.action_id == "cb-1"
        sent = await fake_ami.wait_for_action("Originate")
        assert sent["Async"] == "true" and sent["Timeout"] == "20000" and sent["Context"] == "ivr-callback"
        assert sent.get_all("Variable") == ["IVR_SESSION=abc123", "LANG=kk"]
    finally:
        await client.close()


async def test_originate_failure_is_a_result_not_an_exception(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    fake_ami.script_originate(OriginateOutcome(success=False, reason=5), channel="PJSIP/busy*")
    client = await connected_client(ami_settings)
    try:
        busy = await client.originate("PJSIP/busy-line", "ivr-callback", "1414")
        assert (busy.success, busy.reason_code, busy.reason, busy.uniqueid) == (False, 5, "busy", None)
        no_channel = await client.originate("", "ivr-callback", "1414")
        assert (no_channel.success, no_channel.reason) == (False, "Channel not specified")
    finally:
        await client.close()


async def test_injected_header_values_are_never_sent(fake_ami: FakeAmi, ami_settings: AmiSettings) -> None:
    client = await connected_client(ami_settings)
    try:
        result = await client.originate("PJSIP/100\r\nAction: Hangup", "ivr", "1414")
        assert not result.success
        variable = await client.originate("PJSIP/100", "ivr", "1414", variables={"X": "1\nAction: Logoff"})
        assert not variable.success
        assert await client.queue_summary("kk\r\nAction: Logoff") is None
        assert fake_ami.received("Originate") == [] and fake_ami.received("Logoff") == []
        assert client.connected
    finally:
        await client.close()


async def test_reconnects_after_asterisk_restarts(fake_ami: FakeAmi, ami_settings: AmiSettings) -> None:
    kk_general(fake_ami)
    client = await connected_client(ami_settings)
    shutdowns: asyncio.Queue[Message] = asyncio.Queue()
    client.subscribe(shutdowns.put_nowait, events={"Shutdown", "FullyBooted"})
    try:
        await fake_ami.shutdown()
        assert (await asyncio.wait_for(shutdowns.get(), HANG_GUARD)).event == "Shutdown"
        assert await client.queue_summary("kk-general") is None  # down: None, no exception
        await fake_ami.restart()
        assert (await asyncio.wait_for(shutdowns.get(), HANG_GUARD)).event == "FullyBooted"
        assert await client.wait_connected(HANG_GUARD)
        summary = await client.queue_summary("kk-general")
        assert summary is not None and summary.logged_in == 2
        assert len(fake_ami.received("Login")) == 2
    finally:
        await client.close()


async def test_originate_in_flight_when_the_socket_drops_fails_instead_of_hanging(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    fake_ami.script_originate(OriginateOutcome(delay=30.0), channel="PJSIP/slow")
    client = await connected_client(ami_settings)
    try:
        pending = asyncio.create_task(client.originate("PJSIP/slow", "ivr", "1414", timeout_ms=60000))
        await fake_ami.wait_for_action("Originate")
        await fake_ami.close()  # a crash: no Shutdown event, just a dead socket
        result = await asyncio.wait_for(pending, HANG_GUARD)
        assert not result.success
        assert "unavailable" in result.reason
    finally:
        await client.close()


async def test_a_hung_asterisk_is_detected_by_ping_and_calls_time_out_to_none(
    fake_ami: FakeAmi, ami_settings: AmiSettings
) -> None:
    kk_general(fake_ami)
    client = AmiClient(ami_settings, action_timeout=0.3, ping_interval=0.2)
    client.start()
    try:
        assert await client.wait_connected(HANG_GUARD)
        fake_ami.unresponsive = True
        assert await client.queue_summary("kk-general") is None
        await fake_ami.wait_for_action("Ping", timeout=HANG_GUARD)
        await fake_ami.wait_for_action("Login", timeout=HANG_GUARD)  # the first one
        await fake_ami.wait_for_action("Login", timeout=HANG_GUARD)  # gave up on the silent link
        fake_ami.unresponsive = False
        assert await client.wait_connected(HANG_GUARD)
        summary = None
        async with asyncio.timeout(HANG_GUARD):
            while summary is None:  # the reconnect may still be replacing the stale connection
                summary = await client.queue_summary("kk-general")
                await asyncio.sleep(0.05)
        assert summary.talk_time == 140
    finally:
        await client.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_asterisk_gives_none_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivr.ami")
    settings = AmiSettings(
        host="127.0.0.1", port=closed_port(), secret="x", reconnect_min=0.02, reconnect_max=0.05
    )
    client = AmiClient(settings)
    client.start()
    try:
        await asyncio.sleep(0.3)  # several refused attempts
        assert not client.connected and client.state == "unreachable"
        assert await asyncio.wait_for(client.queue_summary("kk-general"), HANG_GUARD) is None
        assert await asyncio.wait_for(client.queue_status("kk-general"), HANG_GUARD) is None
        failed = await asyncio.wait_for(client.originate("PJSIP/1", "ivr", "1414"), HANG_GUARD)
        assert not failed.success
        assert len([r for r in caplog.records if "unreachable at" in r.getMessage()]) == 1
        assert len([r for r in caplog.records if "AMI unavailable" in r.getMessage()]) == 1
    finally:
        await client.close()


async def test_disabled_ami_never_connects() -> None:
    client = AmiClient(AmiSettings())
    client.start()
    assert not client.connected and client.state == "stopped"
    assert await client.queue_summary("kk-general") is None
    await client.close()
