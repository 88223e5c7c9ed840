"""A caller speaks into RECORD FILE through the fake Asterisk; the engine decodes the recording with the
real Vosk recogniser (the packaged Korean model standing in for the Russian one) and takes the branch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from ivr.clock import FixedClock
from ivr.config import Settings, SpeechSettings
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.speech.recognizer import SpeechService
from ivr.testing.engine_fixtures import OPEN_HOURS
from ivr.testing.fake_caller import FakeCall, Press, Say, Silence
from tests.speech_support import demo_settings


@pytest.fixture
async def engine(tmp_path: Path, prompts_dir: Path, speech: SpeechService) -> AsyncIterator[Engine]:
    settings = demo_settings(tmp_path, prompts_dir)
    (tmp_path / "spool").mkdir()
    eng = Engine(settings, EngineServices(settings=settings, speech=speech, clock=FixedClock(OPEN_HOURS)))
    await eng.start()
    yield eng
    await eng.stop(2)


async def call(engine: Engine, *script: object) -> FakeCall:
    fake = FakeCall(list(script), agi_script="demo")
    await fake.run("127.0.0.1", engine.server.port, timeout=60)
    await engine.services.state.journal.flush()
    return fake


async def test_saying_a_phrase_takes_its_branch(engine: Engine, audio: dict[str, Path]) -> None:
    fake = await call(engine, Say(audio["hospital"]))
    assert "RECORD FILE" in fake.commands
    assert fake.queue == "ru-egov"
    record = await engine.services.state.journal.call(fake.uniqueid)
    spoken = [e for e in record.events if e.kind == "speech"]
    assert spoken and "병원" in spoken[0].data["text"]


async def test_another_phrase_takes_the_other_branch(engine: Engine, audio: dict[str, Path]) -> None:
    fake = await call(engine, Say(audio["greeting"]))
    assert fake.queue == "ru-booking"


async def test_a_key_pressed_while_recording_wins_over_speech(engine: Engine) -> None:
    # Silence during the prompt, then the caller presses 1 while the engine records.
    fake = await call(engine, Press("1"))
    assert fake.queue == "ru-egov"


async def test_a_wrong_key_at_a_node_that_takes_speech_is_an_invalid_answer(engine: Engine) -> None:
    # 8 is no option: it stops the prompt or the recording and is said to be invalid, never taken
    # for silence (the text a silent caller hears).
    fake = await call(engine, Press("8"), Press("1"))
    record = await engine.services.state.journal.call(fake.uniqueid)
    answers = [(e.kind, e.data.get("input")) for e in record.events if e.kind in ("invalid", "silence")]
    assert answers == [("invalid", "8")]
    assert fake.prompts == ["demo/main", "demo/main"]  # asked again (this menu has no invalid text)
    assert fake.queue == "ru-egov"


@pytest.mark.parametrize("what", ["unknown", "noise"])
async def test_unknown_speech_or_noise_takes_the_fallback(
    engine: Engine, audio: dict[str, Path], what: str
) -> None:
    fake = await call(engine, Say(audio[what]), Say(audio[what]))
    record = await engine.services.state.journal.call(fake.uniqueid)
    heard = [(e.kind, e.data) for e in record.events if e.kind in ("speech", "choice", "invalid")]
    assert fake.queue == "ru-general", heard  # on_failure: the operator


async def test_silence_takes_the_fallback(engine: Engine) -> None:
    fake = await call(engine, Silence(), Silence())
    assert fake.queue == "ru-general"


async def test_recordings_do_not_pile_up_in_the_spool(engine: Engine, audio: dict[str, Path]) -> None:
    await call(engine, Say(audio["hospital"]))
    assert list(Path(engine.settings.speech.spool).iterdir()) == []


def test_settings_name_the_model_by_path() -> None:
    settings = attrs.evolve(Settings(), speech=SpeechSettings(models={"ru": "/nowhere"}))
    assert settings.speech.models["ru"] == "/nowhere"


async def test_the_engine_makes_its_recording_spool_on_a_fresh_machine(
    tmp_path: Path, prompts_dir: Path, speech: SpeechService
) -> None:
    spool = tmp_path / "var" / "spool" / "asterisk" / "ivr"
    settings = demo_settings(tmp_path, prompts_dir, spool)
    eng = Engine(settings, EngineServices(settings=settings, speech=speech, clock=FixedClock(OPEN_HOURS)))
    await eng.start()
    try:
        assert spool.is_dir()
    finally:
        await eng.stop(1)
