"""`ivr prompts build` / `ivr prompts say` on the real 1414 menu, and the number sounds Asterisk looks for."""

from __future__ import annotations

import argparse
import shutil
import wave
from pathlib import Path

import pytest

from ivr.config import PromptSettings
from ivr.prompts.build import build_prompts
from ivr.prompts.catalog import asterisk_sound_texts
from ivr.prompts.cli import register, run_build, texts_for_engine, texts_from_menus
from ivr.prompts.numbers import minutes_phrase, say_number_prompts
from ivr.texts import PromptText

REPO = Path(__file__).resolve().parent.parent
MENUS = REPO / "menus"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ivr")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def number_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only Asterisk's own sounds, both languages, narrowband: what SayNumber and the engine need."""
    prompts = tmp_path_factory.mktemp("numbers") / "prompts"
    report = build_prompts([], prompts, PromptSettings(), wideband=False)
    assert report.ok, report.summary()
    return prompts


def test_numbers_1_to_999_resolve_to_files_that_exist(number_prompts: Path) -> None:
    for language in ("kk", "ru"):
        for n in range(1, 1000):
            for sound in say_number_prompts(n, language):
                assert (number_prompts / language / f"{sound}.wav").is_file(), (language, n, sound)
        for n in (1, 2, 5, 21, 90):
            for sound in minutes_phrase(n, language):
                assert (number_prompts / language / f"{sound}.wav").is_file()


def test_queue_announcements_exist_in_the_layout_app_queue_reads(number_prompts: Path) -> None:
    for language in ("kk", "ru"):
        for text in asterisk_sound_texts(language):
            path = number_prompts / language / f"{text.name}.wav"
            with wave.open(str(path), "rb") as wav:
                assert (wav.getframerate(), wav.getnchannels()) == (8000, 1)
                assert wav.getnframes() > 0.2 * 8000
        assert (number_prompts / language / "queue-periodic-announce.wav").is_file()
        assert (number_prompts / language / "digits" / "thousand.wav").is_file()


def test_the_1414_menu_texts_are_read_from_the_menu_directory() -> None:
    texts = texts_from_menus(MENUS)
    assert {t.language for t in texts} == {"kk", "ru"}
    assert all(t.text.strip() for t in texts)


def test_check_on_an_empty_prompt_directory_fails_and_writes_nothing(tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts"
    assert run("prompts", "build", "--menus", str(MENUS), "--prompts", str(prompts), "--check") == 1
    assert "missing: kk/" in capsys.readouterr().err
    assert not prompts.exists()


def test_build_then_check_one_language(tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts"
    args = ("prompts", "build", "--menus", str(MENUS), "--prompts", str(prompts), "--lang", "ru")
    assert run(*args, "--no-wideband") == 0
    needed = {t.name for t in texts_for_engine(MENUS) if t.language == "ru"}
    assert {t.name for t in texts_from_menus(MENUS)} < needed  # the engine's own texts come too
    for name in needed:
        assert (prompts / "ru" / f"{name}.wav").is_file()
    assert not (prompts / "kk").exists()
    capsys.readouterr()
    assert run(*args, "--no-wideband", "--check") == 0
    assert "0 missing, 0 stale" in capsys.readouterr().out


def test_a_missing_menu_directory_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert run("prompts", "build", "--menus", str(tmp_path / "nope"), "--prompts", str(tmp_path)) == 2
    assert "no such menu directory" in capsys.readouterr().err


def test_say_writes_one_trial_file(tmp_path: Path) -> None:
    out = tmp_path / "try.wav"
    assert run("prompts", "say", "Сіздің кезектегі нөміріңіз бес", "--lang", "kk", "-o", str(out)) == 0
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert 1.0 < wav.getnframes() / 8000 < 6.0


def test_say_refuses_a_file_name_that_is_not_wav(tmp_path: Path, capsys) -> None:
    assert run("prompts", "say", "Проверка", "--lang", "ru", "-o", str(tmp_path / "try.mp3")) == 2
    assert "the audio is a WAV file; name it .wav" in capsys.readouterr().err
    assert not (tmp_path / "try.mp3").exists()


def test_a_broken_recording_makes_the_build_and_the_check_exit_non_zero_naming_it(
    number_prompts: Path, tmp_path: Path, capsys
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(number_prompts, prompts)  # Asterisk's sounds are there already: only the text is built
    texts = [PromptText("1414/bye", "ru", "Спасибо за звонок. До свидания!")]
    options = {"languages": ("ru",), "wideband": False}
    assert run_build(texts, prompts, PromptSettings(), **options) == 0
    bye = prompts / "ru" / "1414" / "bye.wav"
    bye.write_bytes(b"<html>Not found</html>")  # what a failed download saves
    refused = f"recording refused: {bye} is not audio sox can read (sox: can't open input file: WAVE: RIFF"
    capsys.readouterr()

    assert run_build(texts, prompts, PromptSettings(), check_only=True, **options) == 1
    assert refused in capsys.readouterr().err
    assert run_build(texts, prompts, PromptSettings(), **options) == 1
    out = capsys.readouterr()
    assert refused in out.err and out.err.rstrip().endswith("0 failed, 1 recording refused")
    assert (
        run_build(texts, prompts, PromptSettings(), check_only=True, **options) == 1
    )  # until the admin acts
    assert (
        f"recording refused earlier: {prompts / 'ru' / '.refused' / '1414'}/bye." in capsys.readouterr().err
    )


def test_progress_in_a_log_is_a_line_per_tenth_and_silent_for_short_builds() -> None:
    import io

    from ivr.prompts.progress import StderrProgress

    log = io.StringIO()
    progress = StderrProgress(log)
    for done in range(1, 101):
        progress(done, 100, f"kk/item-{done}")
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("prompts: 100/100 (100%)")

    quiet = io.StringIO()
    short = StderrProgress(quiet)
    for done in range(1, 4):
        short(done, 3, "kk/x")
    assert quiet.getvalue() == ""
