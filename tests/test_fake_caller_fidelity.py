"""The fake Asterisk answers the recorder's own commands exactly as the real Asterisk 22 did.

For each recorded scenario a small replay server plays the recorder: it sends the recorded command
lines, one at a time, to a FakeCall and collects what comes back. The fake's replies must equal the
transcript's, byte for byte, except the figures that depend on real audio timing (RECORD FILE's
remaining milliseconds and endpos after speech), whose form must still match.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from ivr.agi.protocol import NEED_DATA, AgiParser, Closed, Environment, Reply
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, Silence
from ivr.testing.transcripts import load_transcript, transcript_names


def beep_wav(tmp_path: Path) -> Path:
    """2 s of 440 Hz tone: what the recording rig's 'talk' caller played."""
    path = tmp_path / "talk.wav"
    subprocess.run(
        ["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth", "2", "sine", "440"],
        check=True,
    )
    return path


def scenario_call(name: str, tmp_path: Path) -> FakeCall:
    talk = beep_wav(tmp_path)
    samples = {"beep2s": 16000}
    common = {"agi_script": name, "callerid": "79001234567", "prompt_samples": samples.get}
    setups = {
        "basic": {},
        "basic-exitonhangup": {"exit_on_hangup": True},
        "getdata-dtmf": {"script": [Press("42"), Press("12#")]},
        "getdata-timeout": {"script": [Silence(), Press("7")]},
        "stream-interrupt": {"script": [Press("3")]},
        "wait-for-digit": {"script": [Silence(), Press("5"), Press("#")]},
        "record": {"script": [Silence(), Press("#"), Silence()]},
        "record-noframes": {"script": [Silence(media=False)]},
        "record-talk": {"script": [Say(talk)]},
        "speech-handoff": {"script": [Say(talk)]},
        "caller-hangs-up-during-stream": {"hangup_at": 2},
        "caller-hangs-up-exitonhangup": {"hangup_at": 2, "exit_on_hangup": True},
        "invalid-command": {},
        "exec-queue-answered": {"queue_outcome": "answered"},
        "exec-queue-answered-c": {"queue_outcome": "answered"},
        "exec-queue-timeout": {"queue_outcome": "timeout"},
        "exec-playback": {},
        "channel-status": {"other_channels": {"Local/channel-status@agi-run-00000017;1": 6}},
    }
    return FakeCall(**common, **setups[name])


async def replay(name: str, call: FakeCall) -> list[object]:
    """Act as the recorder did: send each recorded command, collect Asterisk's (the fake's) events."""
    commands = load_transcript("agi", name).sent.decode().splitlines(keepends=True)
    events: list[object] = []
    done = asyncio.get_running_loop().create_future()

    async def recorder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AgiParser()

        async def pull(want_reply: bool) -> None:
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    data = await asyncio.wait_for(reader.read(65536), 10)
                    parser.receive_data(data)
                    continue
                events.append(event)
                if isinstance(event, Closed) or (want_reply and isinstance(event, (Reply, Environment))):
                    return

        await pull(want_reply=True)  # the environment block
        for line in commands:
            if call.exit_on_hangup and call.dead:
                break
            writer.write(line.encode())
            await pull(want_reply=True)
        await asyncio.sleep(0.1)  # let the unsolicited HANGUP line arrive, as the recorder idled
        if not reader.at_eof():
            writer.write_eof()  # the recorder's half-close
        try:
            await pull(want_reply=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()
        done.set_result(None)

    server = await asyncio.start_server(recorder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await call.run("127.0.0.1", port, timeout=20)
    await asyncio.wait_for(done, 10)
    server.close()
    return events


def recorded_events(name: str) -> list[object]:
    parser = AgiParser()
    parser.receive_data(load_transcript("agi", name).received)
    parser.receive_data(b"")
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, Closed):
            break
    return events


def shape(event: object, timing_free: bool) -> object:
    if isinstance(event, Environment):
        return ("env", tuple(event.env.values))  # same keys in the same order
    if isinstance(event, Reply) and timing_free and event.data in ("timeout", "dtmf"):
        return (event.code, event.value is not None and event.value > 0, event.data, tuple(event.extras))
    if isinstance(event, Reply):
        return (event.code, event.line, event.usage)
    return type(event).__name__


@pytest.mark.parametrize("name", transcript_names("agi"))
async def test_fake_asterisk_answers_like_the_real_one(name: str, tmp_path: Path) -> None:
    call = scenario_call(name, tmp_path)
    got = await replay(name, call)
    want = recorded_events(name)
    timing_free = name in ("record-talk", "speech-handoff")
    assert [shape(e, timing_free) for e in got] == [shape(e, timing_free) for e in want]


async def test_recorded_speech_reaches_the_spool_as_an_8khz_wav(tmp_path: Path) -> None:
    call = scenario_call("record-talk", tmp_path)
    call.script = [Say(beep_wav(tmp_path))]
    spool = tmp_path / "spool"
    commands = f'ANSWER\nRECORD FILE {spool}/utt wav "#" 8000 0 s=2\n'
    events: list[object] = []

    async def recorder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        for line in commands.splitlines(keepends=True):
            writer.write(line.encode())
            events.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(recorder, "127.0.0.1", 0)
    await call.run("127.0.0.1", server.sockets[0].getsockname()[1], timeout=10)
    server.close()
    assert events[1].startswith(b"200 result=") and b"(timeout) endpos=24000" in events[1]
    import wave

    with wave.open(str(spool / "utt.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 24000)


def test_hang_up_action_is_a_caller_action() -> None:
    assert FakeCall([HangUp()]).script == [HangUp()]


# --- Queue outcomes the transcripts do not cover ----------------------------------------------------
# Seen on a real Asterisk 22.10.1 built by hand (minimal build, the project's queues.conf template,
# FastAGI sessions through Local channels, 2026-11-28):
#   * no members, only unavailable / invalid / paused members: EXEC -> "200 result=0" within ~1 ms,
#     QUEUESTATUS JOINEMPTY (never JOINUNAVAIL), ABANDONED unset, channel alive (CHANNEL STATUS 6), and
#     "WARNING ... app_queue.c:9004 queue_exec: Unable to join queue 'x'" in the log;
#   * maxlen=1 with one caller waiting: "200 result=0", QUEUESTATUS FULL;
#   * no such queue: "200 result=0", QUEUESTATUS UNKNOWN;
#   * nobody answers in time: "200 result=0", QUEUESTATUS TIMEOUT, and ABANDONED=TRUE, caller still on;
#   * the caller hangs up while waiting: "200 result=-1", the bare HANGUP line ~44 ms later,
#     GET VARIABLE ABANDONED -> "200 result=1 (TRUE)", QUEUESTATUS -> "200 result=0";
#   * answered, the agent hangs up: "200 result=-1", no HANGUP line, QUEUESTATUS and ABANDONED unset,
#     MEMBERINTERFACE set, CHANNEL STATUS 6 (as agi/exec-queue-answered).
# Which agrees with the source, apps/app_queue.c, queue_exec():
#   * join refused (joinempty / joinunavail in queues.conf, or maxlen reached): join_queue() fails,
#     "Unable to join queue '%s'" is logged, set_queue_result(chan, reason) sets QUEUESTATUS to
#     JOINEMPTY / JOINUNAVAIL / FULL, and the application returns 0 at once (lines 9003-9006);
#   * the caller hangs up while waiting: res < 0 and not handled -> record_abandoned() sets
#     ABANDONED=TRUE (line 5318), the reason stays QUEUE_UNKNOWN so QUEUESTATUS is not set, and the
#     application returns -1 (lines 9227-9236, 9270);
#   * ABANDONED is cleared when Queue starts (line 8900).
async def run_commands(call: FakeCall, lines: list[str]) -> list[str]:
    """Send raw AGI command lines to the fake as an engine would; the reply lines it gave."""
    replies: list[str] = []
    done = asyncio.get_running_loop().create_future()

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\n", b""):
            pass  # the environment block
        for line in lines:
            writer.write(line.encode() + b"\n")
            reply = (await reader.readline()).decode().rstrip("\n")
            while reply == "HANGUP":  # the unsolicited notice of a dead channel, not a reply
                reply = (await reader.readline()).decode().rstrip("\n")
            replies.append(reply)
        writer.close()
        done.set_result(None)

    server = await asyncio.start_server(engine, "127.0.0.1", 0)
    await call.run("127.0.0.1", server.sockets[0].getsockname()[1], timeout=10)
    await asyncio.wait_for(done, 10)
    server.close()
    return replies


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("joinempty", "JOINEMPTY"), ("joinunavail", "JOINUNAVAIL"), ("full", "FULL"), ("noqueue", "UNKNOWN")],
)
async def test_a_refused_join_returns_at_once_with_its_queuestatus(outcome: str, status: str) -> None:
    call = FakeCall(queue_outcome=outcome)
    replies = await run_commands(
        call, ['EXEC Queue "kk-general,t,,,900"', "GET VARIABLE QUEUESTATUS", "GET VARIABLE ABANDONED"]
    )
    assert replies == ["200 result=0", f"200 result=1 ({status})", "200 result=0"]
    assert not call.dead


async def test_a_caller_who_gives_up_in_the_queue_is_abandoned_and_gone() -> None:
    call = FakeCall(queue_outcome="hangup")
    replies = await run_commands(
        call, ['EXEC Queue "kk-general,t,,,900"', "GET VARIABLE ABANDONED", "GET VARIABLE QUEUESTATUS"]
    )
    assert replies == ["200 result=-1", "200 result=1 (TRUE)", "200 result=0"]
    assert call.dead and call.hangup_by == "caller"
    assert b"HANGUP\n" in call.wire_in  # the bare HANGUP line of a dead channel


async def test_a_queue_timeout_leaves_abandoned_set_with_the_caller_still_on_the_line() -> None:
    call = FakeCall(queue_outcome="timeout")
    replies = await run_commands(
        call,
        [
            'EXEC Queue "kk-general,t,,,10"',
            "GET VARIABLE QUEUESTATUS",
            "GET VARIABLE ABANDONED",
            "CHANNEL STATUS",
        ],
    )
    assert replies == ["200 result=0", "200 result=1 (TIMEOUT)", "200 result=1 (TRUE)", "200 result=4"]
    assert not call.dead
