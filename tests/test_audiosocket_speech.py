"""Barge-in end to end: a fake Asterisk places the call, EXEC AudioSocket connects the call's audio to the
engine, the engine plays the prompt itself and listens; the caller (a real espeak-ng Korean utterance,
decoded by the real Vosk Korean model standing in for the Russian one) speaks over it.

Timing is asserted in frames of the fake's own 20 ms clock, never with the wall clock."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.audiosocket.protocol import audio_message, uuid_message
from ivr.audiosocket.server import AudioSocketServer
from ivr.audiosocket.turn import Turn
from ivr.clock import FixedClock
from ivr.config import AudioSocketSettings
from ivr.engine.app import Engine
from ivr.engine.media import _Driver
from ivr.engine.services import EngineServices
from ivr.engine.simulate import FixedHours
from ivr.speech.recognizer import SpeechService
from ivr.testing.engine_fixtures import OPEN_HOURS
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, Silence
from tests.speech_support import demo_settings

BARGE_IN_FRAMES = 5  # 100 ms


@pytest.fixture
async def engine(tmp_path: Path, prompts_dir: Path, speech: SpeechService) -> AsyncIterator[Engine]:
    settings = demo_settings(
        tmp_path, prompts_dir, audiosocket=AudioSocketSettings(enabled=True, bind="127.0.0.1:0")
    )
    (tmp_path / "spool").mkdir()
    services = EngineServices(
        settings=settings, speech=speech, hours=FixedHours(True), clock=FixedClock(OPEN_HOURS)
    )
    eng = Engine(settings, services)
    await eng.start()
    yield eng
    await eng.stop(2)


async def call(engine: Engine, *script: object, **options: object) -> FakeCall:
    fake = FakeCall(list(script), agi_script="demo", **options)
    await fake.run("127.0.0.1", engine.server.port, timeout=60)
    await engine.services.state.journal.flush()
    return fake


async def engine_idle(engine: Engine) -> None:
    """The fake has seen the call end; give the engine's side the moment it needs to finish too."""
    for _ in range(200):
        if engine.server.active_calls == 0:
            return
        await asyncio.sleep(0.01)


SCHEDULING_SLACK_FRAMES = 10  # 200 ms: the 20 ms clock of a loaded 2-core machine runs late at times


def whole_prompt(engine: Engine) -> int:
    """Frames with sound in the main node's prompt: what a caller hears when nobody interrupts."""
    node = engine.library.get("demo").nodes["main"]
    frames = engine.services.media.prompts.frames("ru", [p.sound for p in node.say])
    return sum(1 for f in frames.frames if any(f))


async def speech_events(engine: Engine, fake: FakeCall) -> list[dict]:
    record = await engine.services.state.journal.call(fake.uniqueid)
    return [e.data for e in record.events if e.kind == "speech"]


async def test_speaking_over_the_prompt_stops_it_and_takes_the_branch(engine: Engine, audio: dict) -> None:
    fake = await call(engine, Say(audio["hospital"], at=0.6))
    assert fake.queue == "ru-egov"
    assert "RECORD FILE" not in fake.commands and "STREAM FILE" not in fake.commands[:3]
    session = fake.media[0]
    assert session.result == 0 and session.ended_by == "server sent hangup"
    onset = session.onset_tick
    assert onset is not None
    # The prompt (about 2.5 s) was cut soon after the onset. How soon (100 ms is the target) is a speed
    # figure: bench/bench_audiosocket.py measures it; here a loaded machine gets a few frames of slack.
    assert session.prompt_frames_after(onset) <= BARGE_IN_FRAMES + SCHEDULING_SLACK_FRAMES
    assert session.prompt_frames < 0.6 / 0.02 + BARGE_IN_FRAMES + SCHEDULING_SLACK_FRAMES
    spoken = await speech_events(engine, fake)
    assert spoken[0]["media"] == "audiosocket" and spoken[0]["barge_in"] is True
    assert "병원" in spoken[0]["text"]
    # Decided from the stream, while RECORD FILE would still be waiting out its 2 s of silence (the
    # 300 ms target is the bench's figure, not a test's: the machine may be busy).
    assert session.hangup_tick - session.speech_end_tick < 2.0 / 0.02


async def test_speaking_after_the_prompt_takes_the_other_branch(engine: Engine, audio: dict) -> None:
    fake = await call(engine, Say(audio["greeting"]))
    assert fake.queue == "ru-booking"
    session = fake.media[0]
    assert session.prompt_frames == whole_prompt(engine)  # the whole prompt played
    spoken = await speech_events(engine, fake)
    assert spoken[0]["barge_in"] is False


@pytest.mark.parametrize("noise", ["noise", "brown"])
async def test_noise_over_the_prompt_does_not_barge_in(engine: Engine, audio: dict, noise: str) -> None:
    fake = await call(engine, Say(audio[noise], at=0.4), Silence())
    assert fake.media[0].prompt_frames == whole_prompt(engine)  # played to the end
    assert fake.queue == "ru-general"  # nothing understood twice: the operator


async def test_the_prompts_own_echo_does_not_barge_in(engine: Engine) -> None:
    fake = await call(engine, Silence(), Silence(), echo_db=15.0)
    assert [s.prompt_frames for s in fake.media] == [whole_prompt(engine)] * 2
    assert fake.queue == "ru-general"


async def test_steady_line_noise_from_the_start_does_not_barge_in(engine: Engine, audio: dict) -> None:
    fake = await call(engine, Silence(), Silence(), line_noise=audio["pink"])
    assert fake.media[0].prompt_frames == whole_prompt(engine)


async def test_speech_over_line_noise_still_barges_in(engine: Engine, audio: dict) -> None:
    fake = await call(engine, Say(audio["hospital"], at=0.6), line_noise=audio["pink"])
    assert fake.queue == "ru-egov"
    assert fake.media[0].prompt_frames < 60


async def test_a_key_during_the_prompt_wins(engine: Engine) -> None:
    fake = await call(engine, Press("2", at=0.5))
    assert fake.queue == "ru-booking"
    session = fake.media[0]
    assert session.digit_sent_at is not None
    assert session.prompt_frames_after(session.digit_sent_at) <= 2
    assert session.hangup_tick - session.digit_sent_at <= 2


async def test_a_key_after_the_prompt_is_taken_like_a_recording_escape(engine: Engine, audio: dict) -> None:
    fake = await call(engine, Press("1"))
    assert fake.queue == "ru-egov"


async def test_hanging_up_mid_stream_frees_everything(
    engine: Engine, speech: SpeechService, audio: dict
) -> None:
    fake = await call(engine, HangUp(at=0.5))
    assert fake.media[0].caller_hung_up
    assert fake.queue is None
    await engine_idle(engine)
    media = engine.services.media
    assert engine.server.active_calls == 0
    assert media.server.connections == set() and media.server.waiting == 0
    assert speech.streams == 0
    record = await engine.services.state.journal.call(fake.uniqueid)
    assert record.outcome == "abandoned"


async def test_hanging_up_while_speaking_frees_the_stream(
    engine: Engine, speech: SpeechService, audio: dict
) -> None:
    # Speech starts at 0.4 s; the caller is gone at 0.9 s, in the middle of the word.
    fake = await call(engine, Say(audio["greeting"], at=0.4, hangup_at=0.9))
    session = fake.media[0]
    assert session.caller_hung_up and session.onset_tick is not None
    await engine_idle(engine)
    assert speech.streams == 0 and engine.services.media.server.connections == set()
    assert await speech_events(engine, fake) == []  # nothing half-heard was acted on


async def test_two_callers_at_once_do_not_mix(engine: Engine, audio: dict) -> None:
    first, second = await asyncio.gather(
        call(engine, Say(audio["hospital"], at=0.5)),
        call(engine, Say(audio["greeting"], at=0.7)),
    )
    assert (first.queue, second.queue) == ("ru-egov", "ru-booking")
    assert first.media[0].uuid != second.media[0].uuid


async def test_silence_times_out_and_the_fallback_follows(engine: Engine) -> None:
    fake = await call(engine, Silence(), Silence())
    assert fake.queue == "ru-general"
    assert len(fake.media) == 2 and all(s.result == 0 for s in fake.media)


async def test_without_the_audiosocket_module_the_engine_records_as_before(
    engine: Engine, audio: dict
) -> None:
    fake = await call(engine, Say(audio["hospital"]), audiosocket=False)
    assert fake.queue == "ru-egov"
    assert "RECORD FILE" in fake.commands
    assert not engine.services.media.enabled  # off for a while, logged once
    again = await call(engine, Say(audio["greeting"]))
    assert "RECORD FILE" in again.commands and again.media == []


async def test_an_advertised_address_that_is_not_the_engine_is_found_at_start_and_answers_are_recorded(
    tmp_path: Path, prompts_dir: Path, speech: SpeechService, audio: dict, caplog: pytest.LogCaptureFixture
) -> None:
    other = AudioSocketServer("127.0.0.1", 0)  # e.g. another engine behind the advertised address
    await other.start()
    settings = demo_settings(
        tmp_path,
        prompts_dir,
        audiosocket=AudioSocketSettings(
            enabled=True, bind="127.0.0.1:0", advertise=f"127.0.0.1:{other.port}"
        ),
    )
    (tmp_path / "spool").mkdir()
    services = EngineServices(
        settings=settings, speech=speech, hours=FixedHours(True), clock=FixedClock(OPEN_HOURS)
    )
    eng = Engine(settings, services)
    await eng.start()
    try:
        assert not eng.services.media.enabled
        assert f"connect to 127.0.0.1:{other.port} ([audiosocket] advertise)" in caplog.text
        fake = await call(eng, Say(audio["hospital"]))
        # No EXEC AudioSocket that would leave the caller in silence: the answer is recorded at once.
        assert "RECORD FILE" in fake.commands and fake.media == []
        assert fake.queue == "ru-egov"
    finally:
        await eng.stop(2)
        await other.stop()


async def test_testcall_speaks_a_file_over_the_prompt(engine: Engine, audio: dict) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr",
        "testcall",
        f"127.0.0.1:{engine.server.port}",
        "--script",
        "demo",
        "--say",
        str(audio["hospital"]),
        "--at",
        "0.6",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "EXEC AudioSocket" in text and "queue ru-egov (answered)" in text
    assert "AudioSocket #1: ended: server sent hangup" in text
    assert re.search(r"spoke at frame 3\d, prompt frames after that [0-6];", text), text


def test_testcall_at_needs_a_step_before_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ivr", "testcall", "127.0.0.1:1", "--at", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "--at SECONDS follows" in result.stderr


async def test_a_stream_finishes_when_its_last_batch_is_done_but_not_yet_collected(
    speech: SpeechService, audio: dict
) -> None:
    """The decode job can be finished with its done-callback still queued when the answer ends;
    finish() must yield to that callback rather than wait on a finished future in a loop."""
    from ivr.testing.fake_audiosocket import read_slin

    stream = speech.open_stream("ru", ["병원", "안녕하세요"])
    try:
        pcm = read_slin(audio["hospital"])
        stream.feed(pcm)
        await asyncio.wait([stream._job])
        finished = asyncio.get_running_loop().create_future()
        stream._job = finished
        finished.add_done_callback(stream._job_done)
        finished.set_result(None)  # done; _job_done is queued, not run
        recognition = await asyncio.wait_for(stream.finish(), 30)
        assert recognition.text == "병원"
    finally:
        stream.close()
    assert speech.streams == 0


async def test_wideband_audio_of_the_channel_driver_form_is_reported_not_taken_for_silence(
    speech: SpeechService, caplog: pytest.LogCaptureFixture
) -> None:
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    call_uuid = uuid.uuid4()
    arrived = server.expect(call_uuid)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        # What Dial(AudioSocket/...c(slin16)) sends: 640-byte frames of kind 0x12 (shared transcripts).
        writer.write(uuid_message(call_uuid) + audio_message(bytes(640), 16000) * 3)
        connection = await arrived
        stream = speech.open_stream("ru", ["병원"])
        assert stream is not None
        driver = _Driver(connection, Turn([], "1"), stream)
        connection.attach(driver)
        writer.write(audio_message(bytes(640), 16000) * 2)
        writer.write_eof()  # the caller hangs up: every frame before it has been delivered
        assert (await driver.done).kind == "hangup"
        assert driver.other_rates == 5 and driver.turn.frames_in == 0
        assert caplog.text.count("sends 16000 Hz audio") == 1
        stream.close()
    finally:
        writer.close()
        await server.stop()
