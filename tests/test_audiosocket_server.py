"""The asyncio AudioSocket listener against the fake Asterisk side, which refuses what a real one refuses."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
import wave
from pathlib import Path

import pytest

from ivr.audiosocket.protocol import audio_message, dtmf_message, split_frames
from ivr.audiosocket.server import AudioSocketConnection, AudioSocketServer
from ivr.testing.fake_audiosocket import KEY_DOWN_TICKS, FakeAudioSocket, read_slin
from ivr.testing.fake_caller import HangUp, Press, Say, Silence
from ivr.testing.transcripts import transcripts_root


class Collect:
    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.digits: list[str] = []
        self.closed = asyncio.Event()
        self.frames_before_digit: int | None = None

    def on_audio(self, payload: bytes, rate: int) -> None:
        assert rate == 8000
        self.audio.append(payload)

    def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)
        if self.frames_before_digit is None:
            self.frames_before_digit = len(self.audio)

    def on_closed(self) -> None:
        self.closed.set()


@pytest.fixture
async def server() -> AudioSocketServer:
    listener = AudioSocketServer("127.0.0.1", 0)
    await listener.start()
    yield listener
    await listener.stop()


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("as") / "tone.wav"
    # 0.503 s: 25 frames and a short one, as a played file ends
    subprocess.run(
        ["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "synth", "0.503", "sine", "440"],
        check=True,
    )
    return out


async def connect(
    server: AudioSocketServer, action: object
) -> tuple[FakeAudioSocket, asyncio.Task[int], AudioSocketConnection]:
    call = uuid.uuid4()
    waiter = server.expect(call)
    fake = FakeAudioSocket(str(call), action)
    running = asyncio.create_task(fake.run("127.0.0.1", server.port))
    connection = await asyncio.wait_for(waiter, 5)
    return fake, running, connection


async def test_the_callers_speech_arrives_frame_by_frame_with_the_short_tail(
    server: AudioSocketServer, tone_wav: Path
) -> None:
    fake, running, connection = await connect(server, Say(tone_wav, at=0.1))
    collect = Collect()
    connection.attach(collect)
    while len(collect.audio) < 5 + 26 + 3:
        await asyncio.sleep(0.02)
    connection.finish()
    assert await running == 0 and fake.ended_by == "server sent hangup"
    spoken = split_frames(read_slin(tone_wav))
    assert len(spoken[-1]) < 320
    joined = b"".join(collect.audio)
    assert b"".join(spoken) in joined


async def test_frames_before_the_call_picks_the_connection_up_are_kept(server: AudioSocketServer) -> None:
    fake, running, connection = await connect(server, Silence())
    while fake.sent_frames < 5:
        await asyncio.sleep(0.01)
    collect = Collect()
    connection.attach(collect)
    assert len(collect.audio) >= 4  # sent before anyone listened, delivered on attach
    connection.finish()
    assert await running == 0


async def test_a_digit_comes_after_a_hole_in_the_audio(server: AudioSocketServer) -> None:
    fake, running, connection = await connect(server, Press("5", at=0.1))
    collect = Collect()
    connection.attach(collect)
    while not collect.digits:
        await asyncio.sleep(0.02)
    connection.finish()
    await running
    assert collect.digits == ["5"]
    # audio at ticks 1-4, none while the key is down (ticks 5-9), the digit at tick 10
    assert fake.digit_sent_at == 5 + KEY_DOWN_TICKS
    assert collect.frames_before_digit == 4


async def test_a_caller_hangup_is_a_plain_close(server: AudioSocketServer) -> None:
    fake, running, connection = await connect(server, HangUp(at=0.1))
    collect = Collect()
    connection.attach(collect)
    await asyncio.wait_for(collect.closed.wait(), 5)
    assert await running == -1 and fake.caller_hung_up
    assert connection.peer_closed


async def test_a_connection_for_an_unknown_call_is_ended_cleanly(server: AudioSocketServer) -> None:
    fake = FakeAudioSocket(str(uuid.uuid4()), Silence())
    assert await fake.run("127.0.0.1", server.port) == 0
    assert fake.ended_by == "server sent hangup"


async def test_paced_prompt_frames_reach_the_caller_and_the_session_ends_with_hangup(
    server: AudioSocketServer,
) -> None:
    fake, running, connection = await connect(server, Silence())
    tone = split_frames(bytes(range(256)) * 50)[:20]
    sent = 0

    def tick() -> None:
        nonlocal sent
        if sent < len(tone):
            connection.send_audio(tone[sent])
            sent += 1

    key = server.clock.add(tick)
    while sent < len(tone):
        await asyncio.sleep(0.02)
    server.clock.remove(key)
    await asyncio.sleep(0.06)
    connection.finish()
    assert await running == 0
    assert [r.size for r in fake.heard] == [320] * 20 + [0]
    ticks = [r.tick for r in fake.heard[:20]]
    assert ticks[-1] - ticks[0] >= 15  # paced over ~20 ticks, not one burst
    assert server.clock.stats.ticks >= 15  # a late tick may run its callbacks twice to catch up


@pytest.mark.parametrize(("raw", "why"), [(dtmf_message("5"), "kind 0x03"), (b"\x10\x00\x00", "zero-length")])
async def test_the_fake_refuses_what_asterisk_refuses(
    server: AudioSocketServer, raw: bytes, why: str
) -> None:
    fake, running, connection = await connect(server, Silence())
    connection.transport.write(raw)
    assert await running == -1
    assert why in fake.ended_by


async def test_two_seconds_without_a_frame_either_way_end_the_session(server: AudioSocketServer) -> None:
    fake, running, _connection = await connect(server, Silence(media=False))
    assert await asyncio.wait_for(running, 5) == -1
    assert fake.ended_by == "2 s without a frame either way"


def test_audio_message_for_a_frame_the_fake_sends() -> None:
    assert audio_message(bytes(320))[:3] == b"\x10\x01\x40"


async def test_the_fake_sends_speech_byte_for_byte_as_the_recorded_asterisk_did(
    server: AudioSocketServer, tmp_path: Path
) -> None:
    """speech.in.bin: UUID, the phrase as 92 full frames and a 126-byte one, then silence frames."""
    recorded = (transcripts_root() / "audiosocket" / "speech.in.bin").read_bytes()
    with wave.open(str(transcripts_root() / "audiosocket" / "speech.received.wav")) as wav:
        received = wav.readframes(wav.getnframes())
    phrase = tmp_path / "as-speech.wav"
    with wave.open(str(phrase), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(received[: 14783 * 2])  # what reached the socket of the 14805-sample file
    call = uuid.UUID("3f2504e0-4f89-41d3-9a0c-0305e82c3303")
    waiter = server.expect(call)
    fake = FakeAudioSocket(str(call), Say(phrase, at=0))
    running = asyncio.create_task(fake.run("127.0.0.1", server.port))
    connection = await asyncio.wait_for(waiter, 5)
    collect = Collect()
    connection.attach(collect)
    while len(collect.audio) < 120:
        await asyncio.sleep(0.02)
    connection.finish()
    assert await running == 0
    compared = 19 + 92 * 323 + 129 + 20 * 323  # UUID, the phrase, 20 silence frames
    assert bytes(fake.wire[:compared]) == recorded[:compared]
