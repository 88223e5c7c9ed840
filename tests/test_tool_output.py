"""What the tools print and log is ours and says each thing once: no library chatter, no doubled words."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from ivr.config import PromptSettings
from ivr.engine.app import Engine
from ivr.prompts import pyttsx3_worker, synth
from ivr.prompts.synth import VoiceSettings, synthesize
from ivr.testing.engine_fixtures import project_settings

ROOT = Path(__file__).parent.parent


def test_the_tts_driver_prints_nothing_even_after_synthesis(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    synth.shutdown_worker()  # a worker started now writes to this test's captured stdout and stderr
    with caplog.at_level(logging.DEBUG, logger="ivr.prompts.synth"):
        for name in ("hello", "again"):
            synthesize("Сәлеметсіз бе", VoiceSettings("kk"), tmp_path / f"{name}.wav")
    assert (tmp_path / "hello.wav").stat().st_size > 44
    out, err = capfd.readouterr()
    assert "Audio saved" not in out + err
    # espeak-ng's callback thread may print after runAndWait has returned: by the next text's answer
    # at the latest, the print has come back to our log, at debug level.
    levels = {record.getMessage(): record.levelname for record in caplog.records}
    assert levels[f"pyttsx3: Audio saved to {tmp_path / 'hello.wav'}"] == "DEBUG"


def test_the_drivers_other_prints_are_kept_as_warnings() -> None:
    pyttsx3_worker.take_notes()
    pyttsx3_worker._driver_print("Playback error:", "no device")
    pyttsx3_worker._driver_print("Audio saved to /tmp/x.wav")
    assert pyttsx3_worker.take_notes() == (
        (logging.WARNING, "Playback error: no device"),
        (logging.DEBUG, "Audio saved to /tmp/x.wav"),
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the project's menus, Asterisk configuration and prompts an engine may change."""
    for part in ("menus", "asterisk-conf", "prompts"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "spool").mkdir()
    return tmp_path


def site_engine(site: Path) -> Engine:
    return Engine(
        project_settings(
            site, menus_dir=str(site / "menus"), prompts=PromptSettings(dir=str(site / "prompts"))
        )
    )


async def logged(caplog: pytest.LogCaptureFixture, fragment: str, count: int = 1) -> list[str]:
    """The log lines holding `fragment`, once there are `count` of them (or after 30 s, those there are)."""
    for _ in range(300):
        lines = [r.getMessage() for r in caplog.records if fragment in r.getMessage()]
        if len(lines) >= count:
            break
        await asyncio.sleep(0.1)
    return lines


def without_counts(lines: list[str]) -> list[str]:
    """The build's summary with "N unchanged": as many as the menus and the engine's own texts need."""
    return [re.sub(r"\d+ unchanged", "N unchanged", line) for line in lines]


def a_text_edited(site: Path) -> None:
    menu = site / "menus" / "1414.yaml"
    text = menu.read_text(encoding="utf-8")
    menu.write_text(text.replace("мы не поняли ваш выбор.", "мы не поняли ваш выбор. Ещё раз."), "utf-8")


async def test_a_menu_edit_logs_its_prompts_once_and_prints_nothing(
    site: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    engine = site_engine(site)
    await engine.start()
    try:
        a_text_edited(site)
        lines = without_counts(await logged(caplog, "reloaded; prompts"))
    finally:
        await engine.stop(2.0)
    assert lines == [
        "menu 1414 reloaded; prompts: 1 synthesised, 0 recordings converted, N unchanged, 0 human, "
        "0 removed, 0 failed"
    ]
    assert "Audio saved" not in capfd.readouterr().out


async def test_prompts_edited_while_the_engine_was_stopped_are_made_again_once_it_serves(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a_text_edited(site)
    caplog.set_level(logging.INFO)
    engine = site_engine(site)
    await engine.start()
    try:
        engine.refresh_prompts()  # as `ivr serve` does once started
        lines = without_counts(await logged(caplog, "while the engine was stopped", 2))
    finally:
        await engine.stop(2.0)
    assert lines == [
        "1 prompt is older than its text (edited while the engine was stopped), e.g. ru/1414/text-invalid: "
        "synthesising it now; until then callers hear the old words",
        "prompts edited while the engine was stopped; prompts: 1 synthesised, 0 recordings converted, "
        "N unchanged, 0 human, 0 removed, 0 failed",
    ]


async def test_a_broken_recording_found_at_start_is_set_aside_and_logged_as_a_warning(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    welcome = site / "prompts" / "ru" / "1414" / "welcome.wav"
    welcome.write_bytes(b"")  # a copy that never arrived, dropped in while the engine was stopped
    caplog.set_level(logging.INFO)
    engine = site_engine(site)
    await engine.start()
    try:
        engine.refresh_prompts()  # as `ivr serve` does once started
        await logged(caplog, "recording refused")
    finally:
        await engine.stop(2.0)
    records = [r for r in caplog.records if r.getMessage().startswith("engine started; prompts: ")]
    assert [r.levelname for r in records] == ["WARNING", "WARNING"]
    assert (
        records[0]
        .getMessage()
        .startswith(
            f"engine started; prompts: recording refused: {welcome} is an empty file (0 bytes). It is set aside as "
        )
    )
    assert without_counts([records[1].getMessage()])[0] == (
        "engine started; prompts: 1 synthesised, 0 recordings converted, N unchanged, 0 human, 0 removed, "
        "0 failed, 1 recording refused"
    )
    assert not [r for r in caplog.records if "\n" in r.getMessage()]  # one line a record, each with its time
    assert welcome.stat().st_size > 8000  # callers hear the text, in both formats
    assert (site / "prompts" / "ru" / "1414" / "welcome.wav16").stat().st_size > 16000


async def test_a_recording_dropped_in_while_the_engine_was_stopped_is_converted_once_it_serves(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    welcome = site / "prompts" / "ru" / "1414" / "welcome.wav"
    welcome.unlink()  # a link into the project's prompts: replaced, never written through
    tone = ["synth", "6", "sine", "300-900"]  # a person's take, as far as the build can tell: 16 kHz
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(welcome), *tone], check=True)
    caplog.set_level(logging.INFO)
    engine = site_engine(site)
    await engine.start()
    try:
        engine.refresh_prompts()  # as `ivr serve` does once started
        lines = without_counts(await logged(caplog, "engine started; prompts: ", 2))
    finally:
        await engine.stop(2.0)
    assert lines[0].startswith(
        "engine started; prompts: recording converted: ru/1414/welcome.wav in its place, with a .wav16 (the "
        "original kept as ru/.originals/1414/welcome."
    )
    assert lines[1] == (
        "engine started; prompts: 0 synthesised, 1 recording converted, N unchanged, 1 human, 0 removed, 0 failed"
    )
    with wave.open(str(welcome), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (8000, 1, 6 * 8000)


async def test_a_menu_moved_away_keeps_its_sounds_for_the_calls_still_on_it(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # calls in progress finish on the menu version they began with: a reload must not delete its audio
    caplog.set_level(logging.INFO)
    engine = site_engine(site)
    await engine.start()
    try:
        (site / "menus" / "1414.yaml").rename(site / "menus" / "new1414.yaml")
        lines = without_counts(await logged(caplog, "reloaded; prompts"))
    finally:
        await engine.stop(2.0)
    assert lines and lines[-1].startswith("menus 1414, new1414 reloaded; prompts:"), lines  # both names
    assert "0 removed" in lines[-1]
    assert (site / "prompts" / "ru" / "1414" / "main.wav").is_file()
    assert (site / "prompts" / "ru" / "new1414" / "main.wav").is_file()


async def test_a_menu_warning_is_logged_once_at_start(engine_settings, tmp_path, caplog) -> None:
    import shutil

    import attrs

    from ivr.engine.app import Engine

    site = tmp_path / "site"
    shutil.copytree(ROOT / "menus", site / "menus")
    shutil.copytree(ROOT / "asterisk-conf", site / "asterisk-conf")
    menu = site / "menus" / "1414.yaml"
    menu.write_text(menu.read_text(encoding="utf-8") + "\n  spare:\n    kind: hangup\n", encoding="utf-8")
    settings = attrs.evolve(engine_settings, menus_dir=str(site / "menus"))
    engine = Engine(settings)
    caplog.set_level("WARNING")
    await engine.start()
    try:
        unreachable = [r for r in caplog.records if "spare" in r.getMessage()]
        assert len(unreachable) == 1, [r.getMessage() for r in unreachable]
    finally:
        await engine.stop(1)
