"""FakeAmi against the real Asterisk 22 AMI transcripts, plus its scripting helpers.

Replay: every transcript's OUT bytes are sent to the fake over TCP, in the recorded chunks, and what
comes back is compared with what real Asterisk sent. Compared are the messages the fake is responsible
for (see ACTION_DRIVEN_EVENTS): every Response and every event an action or a queue change causes.
The channel-lifecycle storm of a real call (Newchannel, Newexten, VarSet, DialBegin, Hangup...) comes
from Asterisk's dialplan, which the fake does not run, so those events are left out of both sides.
Compared: the message type, the header keys in order, and the values - except the volatile ones
blanked by `normalise` (clocks, process-wide counters, addresses, ids).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from ivr.ami.protocol import AmiParser, Message, serialize
from ivr.testing.fake_ami import (
    INVALID,
    FakeAmi,
    OriginateOutcome,
    QueueMember,
    QueueState,
)
from ivr.testing.transcripts import Transcript, load_transcript, transcript_names

ACTION_DRIVEN_EVENTS = {
    "FullyBooted",
    "SuccessfulAuth",
    "RequestBadFormat",
    "OriginateResponse",
    "QueueParams",
    "QueueMember",
    "QueueEntry",
    "QueueStatusComplete",
    "QueueSummary",
    "QueueSummaryComplete",
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "Shutdown",
}

# Keys whose values depend on when and where the run happened, never on the protocol:
#   Uptime/LastReload, EventTV/SessionTV, Timestamp, Core*Date/Time - wall clock and process age;
#   SessionID (a pointer in Asterisk), LocalAddress/RemoteAddress (ports of this run);
#   CoreProcessedCalls/CoreCurrentCalls, Uniqueid/Linkedid - process-wide call counters;
#   LastCall/LastPause/LoginTime - epoch seconds; Wait/LongestHoldTime - seconds a caller has waited.
VOLATILE_KEYS = {
    "uptime",
    "lastreload",
    "eventtv",
    "sessiontv",
    "timestamp",
    "corestartupdate",
    "corestartuptime",
    "corereloaddate",
    "corereloadtime",
    "sessionid",
    "localaddress",
    "remoteaddress",
    "coreprocessedcalls",
    "corecurrentcalls",
    "uniqueid",
    "linkedid",
    "lastcall",
    "lastpause",
    "logintime",
    "wait",
    "longestholdtime",
}
# HoldTime is a scripted queue figure in QueueSummary but a measured wait in QueueCallerAbandon.
VOLATILE_BY_EVENT = {("QueueCallerAbandon", "holdtime")}
CHANNEL_SEQUENCE = re.compile(r"-[0-9a-f]{8}(;\d)?$")  # Local/x@y-00000020;1: a channel counter
SECONDS_AGO = re.compile(r"\d+ secs ago")  # "queue show" member lines


def normalise(message: Message) -> tuple[tuple[str, str], ...]:
    event = message.event or ""
    out = []
    for key, value in message.headers:
        low = key.lower()
        if low in VOLATILE_KEYS or (event, low) in VOLATILE_BY_EVENT:
            value = "*"
        elif low == "channel":
            value = CHANNEL_SEQUENCE.sub(r"-N\1", value)
        elif low == "output":
            value = SECONDS_AGO.sub("N secs ago", value)
        out.append((key, value))
    return tuple(out)


def action_driven(message: Message) -> bool:
    if message.is_response:
        return True
    if message.event == "UserEvent":
        return message.action_id is not None  # from Action: UserEvent, not from the dialplan
    return message.event in ACTION_DRIVEN_EVENTS


def is_shutdown(chunk) -> bool:
    return chunk.direction == "META" and chunk.data == b"running CLI: core stop now"


def expected_messages(transcript: Transcript) -> tuple[list[Message], list[int]]:
    """Filtered IN messages, and after each OUT chunk how many of them had arrived by the next OUT.

    Asterisk delivered the RequestBadFormat security event of bad-action twice (byte-identical, same
    EventTV); a repeated identical message is Asterisk re-flushing its event queue, not protocol, so
    exact repeats are dropped.
    """
    parser = AmiParser()
    messages: list[Message] = []
    seen: set[bytes] = set()
    marks: list[int] = []
    for chunk in transcript.chunks:
        if chunk.direction == "OUT" or is_shutdown(chunk):
            marks.append(len(messages))
        elif chunk.direction == "IN":
            for message in parser.feed(chunk.data):
                raw = message.to_bytes()
                if action_driven(message) and raw not in seen:
                    seen.add(raw)
                    messages.append(message)
    # marks[i] = count before step i (an OUT chunk or the shutdown); after step i, marks[i + 1] (or all).
    after = [*marks[1:], len(messages)]
    return messages, after


def script_like_recording(ami: FakeAmi, name: str) -> None:
    """Queue configuration and counters as the recording Asterisk had them (see its queues.conf)."""
    agent1 = QueueMember("Local/agent1@agents/n", calls_taken=3, last_call=1795552070, login_time=1795551596)
    ru = QueueState("operators-ru", members=[agent1], talktime=4, completed=3, abandoned=2)
    ru.service_level_perf, ru.service_level_perf2 = 100.0, 60.0
    if name == "command":  # recorded later: one more answered and one more abandoned call
        agent1.calls_taken, ru.completed, ru.abandoned, ru.service_level_perf2 = 4, 4, 3, 57.1
    ami.set_queue(ru)
    ami.set_queue(QueueState("operators-kk"))
    ami.device_states["Local/agent2@agents/n"] = INVALID  # no such extension in [agents]
    # The recording hangs up the queued call by the channel name Asterisk gave it.
    ami.next_channel_number = 0x23
    ami.script_originate(OriginateOutcome(success=False), channel="Local/nonexistent@no-such-context")
    answered = 0.0 if name == "queue-answered" else None
    ami.script_originate(
        OriginateOutcome(
            join_queue="operators-ru", language="ru", dialplan_priority=3, answer_after=answered
        ),
        channel="Local/ru@queue-test",
    )


async def read_until(reader, parser: AmiParser, got: list[Message], count: int) -> None:
    """Read until `count` messages in all; on a stall stop and let the comparison show the gap."""
    while len(got) < count:
        try:
            data = await asyncio.wait_for(reader.read(65536), 5)
        except TimeoutError:
            return
        if not data:
            return
        got.extend(parser.feed(data))


@pytest.mark.parametrize("name", transcript_names("ami"))
async def test_fake_answers_like_the_recorded_asterisk(name: str) -> None:
    transcript = load_transcript("ami", name)
    expected, marks = expected_messages(transcript)
    async with FakeAmi("test", "test", auth_failure_delay=0.01) as ami:
        script_like_recording(ami, name)
        reader, writer = await asyncio.open_connection("127.0.0.1", ami.port)
        parser = AmiParser()
        got: list[Message] = []
        steps = iter(marks)
        for chunk in transcript.chunks:
            if chunk.direction == "OUT":
                writer.write(chunk.data)
            elif is_shutdown(chunk):
                await ami.shutdown()
            else:
                continue
            await read_until(reader, parser, got, next(steps))
        assert parser.banner == "Asterisk Call Manager/11.0.0"
        assert [normalise(m) for m in got] == [normalise(m) for m in expected]
        if any("EOF from Asterisk" in note for note in transcript.notes()):
            assert await asyncio.wait_for(reader.read(1), 5) == b"", "Asterisk closed the socket here"
        writer.close()


async def login(ami: FakeAmi, user: str = "ivr", secret: str = "test", **extra: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", ami.port)
    parser = AmiParser()
    writer.write(serialize({"Action": "Login", "ActionID": "l", "Username": user, "Secret": secret, **extra}))
    got: list[Message] = []
    await read_until(reader, parser, got, 3)
    assert got[0].get("Message") == "Authentication accepted"
    return reader, writer, parser, got[3:]


async def next_message(reader, parser: AmiParser, pending: list[Message]) -> Message:
    await read_until(reader, parser, pending, 1)
    return pending.pop(0)


async def test_caller_helpers_emit_the_recorded_layout_and_update_the_summary() -> None:
    async with FakeAmi() as ami:
        ami.set_queue(QueueState("kk-general", members=[QueueMember("Local/101@agents")]))
        reader, writer, parser, pending = await login(ami)
        ami.caller_join("kk-general", "PJSIP/trunk-0001", caller_id_num="77010000001", language="kk")
        joined = await next_message(reader, parser, pending)
        assert joined.event == "QueueCallerJoin"
        assert joined.keys()[:16] == (
            "Event",
            "Privilege",
            "Channel",
            "ChannelState",
            "ChannelStateDesc",
            "CallerIDNum",
            "CallerIDName",
            "ConnectedLineNum",
            "ConnectedLineName",
            "Language",
            "AccountCode",
            "Context",
            "Exten",
            "Priority",
            "Uniqueid",
            "Linkedid",
        )
        assert (joined["Queue"], joined["Position"], joined["Count"], joined["Language"]) == (
            "kk-general",
            "1",
            "1",
            "kk",
        )
        ami.add_caller("kk-general", "PJSIP/trunk-0002", waited=42)
        writer.write(serialize({"Action": "QueueSummary", "ActionID": "s", "Queue": "kk-general"}))
        reply = [await next_message(reader, parser, pending) for _ in range(3)]
        summary = reply[1]
        assert (summary["LoggedIn"], summary["Available"], summary["Callers"]) == ("1", "1", "2")
        assert int(summary["LongestHoldTime"]) >= 42
        assert reply[2]["ListItems"] == "1"
        ami.caller_abandon("kk-general", "PJSIP/trunk-0001")
        abandon, leave = [await next_message(reader, parser, pending) for _ in range(2)]
        assert (abandon.event, leave.event, leave["Count"]) == ("QueueCallerAbandon", "QueueCallerLeave", "1")
        assert ami.queue("kk-general").abandoned == 1
        writer.close()


async def test_events_reach_only_clients_whose_mask_allows_them() -> None:
    async with FakeAmi() as ami:
        r1, w1, p1, pending1 = await login(ami)
        r2, w2, p2, pending2 = await login(ami, Events="user")
        ami.emit("Hangup", Channel="PJSIP/a-1", Cause="16")
        ami.emit("UserEvent", UserEvent="IVRChoice", Menu="main")
        first = await next_message(r1, p1, pending1)
        second = await next_message(r1, p1, pending1)
        only = await next_message(r2, p2, pending2)
        assert (first.event, first["Privilege"], second.event) == ("Hangup", "call,all", "UserEvent")
        assert only.event == "UserEvent"
        w1.close()
        w2.close()


async def test_emit_refuses_injected_headers() -> None:
    async with FakeAmi() as ami:
        with pytest.raises(ValueError, match="CR or LF"):
            ami.emit("UserEvent", UserEvent="x\r\nEvent: Shutdown")


async def test_actions_are_logged_and_can_be_awaited() -> None:
    async with FakeAmi() as ami:
        _reader, writer, _parser, _pending = await login(ami)
        writer.write(serialize({"Action": "Ping", "ActionID": "p1"}))
        ping = await ami.wait_for_action("Ping")
        assert ping.action_id == "p1"
        assert [a.action for a in ami.actions] == ["Login", "Ping"]
        writer.close()


async def test_restart_listens_on_the_same_port_after_shutdown() -> None:
    async with FakeAmi() as ami:
        port = ami.port
        reader, writer, parser, pending = await login(ami)
        await ami.shutdown()
        shutdown = await next_message(reader, parser, pending)
        assert (shutdown.event, shutdown["Shutdown"], shutdown["Restart"]) == ("Shutdown", "Cleanly", "False")
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        assert await ami.restart() == port
        reader, writer, parser, pending = await login(ami)
        assert ami.clients == 1
        writer.close()
