"""The prompt build with real espeak-ng and sox: formats, incremental rebuilds, human recordings, --check."""

from __future__ import annotations

import array
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import pytest

from ivr.config import PromptSettings
from ivr.prompts.audio import file_sha256
from ivr.prompts.build import (
    PromptError,
    build_prompts,
    check_prompts,
    missing_prompts,
)
from ivr.texts import PromptProblem, PromptText

SETTINGS = PromptSettings()

TEXTS = [
    PromptText("1414/welcome", "kk", "Сәлеметсіз бе! Қазақ тілінде жалғастыру үшін бірді басыңыз."),
    PromptText("1414/welcome", "ru", "Здравствуйте! Для продолжения на русском языке нажмите два."),
    PromptText("1414/operator", "kk", "Операторға қосылу үшін нөлді басыңыз."),
    PromptText("1414/operator", "ru", "Чтобы соединиться с оператором, нажмите ноль."),
    PromptText("1414/bye", "kk", "Қоңырауыңызға рахмет. Сау болыңыз!"),
    PromptText("1414/bye", "ru", "Спасибо за звонок. До свидания!"),
]


def build(prompts: Path, texts: list[PromptText] = TEXTS, **options):
    options.setdefault("include_asterisk_sounds", False)
    return build_prompts(texts, prompts, options.pop("settings", SETTINGS), **options)


def wav_of(prompts: Path, language: str, name: str, ext: str = ".wav") -> Path:
    return prompts / language / f"{name}{ext}"


def mtimes(prompts: Path) -> dict[str, int]:
    return {
        str(p.relative_to(prompts)): p.stat().st_mtime_ns
        for p in prompts.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def manifest(prompts: Path, language: str) -> dict:
    return json.loads((prompts / language / ".manifest.json").read_text(encoding="utf-8"))["entries"]


def make_recording(path: Path, rate: int, channels: int, seconds: float = 1.5, volume: float = 1.0) -> None:
    """Stands in for a person's recording: a tone made by sox in the given rate and channel count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    synth = ["synth", str(seconds), "sine", "300-900", "vol", str(volume)]
    subprocess.run(
        ["sox", "-R", "-n", "-r", str(rate), "-c", str(channels), "-b", "16", str(path), *synth], check=True
    )


@pytest.fixture
def built(tmp_path: Path) -> Path:
    prompts = tmp_path / "prompts"
    report = build(prompts)
    assert report.ok, report.summary()
    return prompts


def test_every_text_becomes_8khz_and_16khz_speech_of_plausible_length(built: Path) -> None:
    for text in TEXTS:
        for ext, rate in ((".wav", 8000), (".wav16", 16000)):
            with wave.open(str(wav_of(built, text.language, text.name, ext)), "rb") as wav:
                assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (rate, 1, 2)
                assert wav.getcomptype() == "NONE"
                seconds = wav.getnframes() / rate
                samples = array.array("h", wav.readframes(wav.getnframes()))
            # espeak-ng at 150 words a minute speaks roughly 8-20 characters a second.
            assert len(text.text) / 25 < seconds < len(text.text) / 5, (text, seconds)
            # Normalised to -3 dBFS: speech, not silence, and not clipped.
            assert 0.6 * 32767 < max(abs(s) for s in samples) < 32767


def test_an_unchanged_build_synthesises_nothing(built: Path) -> None:
    before = mtimes(built)
    report = build(built)
    assert report.synthesized == ()
    assert len(report.unchanged) == len(TEXTS)
    assert mtimes(built) == before


def test_changing_one_text_rebuilds_exactly_that_file(built: Path) -> None:
    before = mtimes(built)
    texts = [
        *TEXTS[:3],
        PromptText("1414/operator", "ru", "Для связи с оператором нажмите ноль."),
        *TEXTS[4:],
    ]
    report = build(built, texts)
    assert report.synthesized == ("ru/1414/operator",)
    after = mtimes(built)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"ru/1414/operator.wav", "ru/1414/operator.wav16"}


def test_whitespace_changes_do_not_make_a_prompt_stale(built: Path) -> None:
    texts = [PromptText(t.name, t.language, f"  {t.text.replace(' ', '   ')}\n") for t in TEXTS]
    assert build(built, texts).synthesized == ()


def test_changing_a_languages_voice_rebuilds_that_language_only(built: Path) -> None:
    slower = PromptSettings(voices={"ru": {"voice": "ru", "rate": 120, "pitch": 40}})
    report = build(built, settings=slower)
    assert set(report.synthesized) == {f"ru/{t.name}" for t in TEXTS if t.language == "ru"}


def test_removing_a_text_deletes_its_generated_files_only(built: Path) -> None:
    texts = [t for t in TEXTS if not (t.name == "1414/bye" and t.language == "kk")]
    check = build(built, texts, check_only=True)
    assert check.removed == ("kk/1414/bye",) and check.ok  # reported, not an error, nothing deleted
    assert wav_of(built, "kk", "1414/bye").exists()
    report = build(built, texts)
    assert report.removed == ("kk/1414/bye",)
    assert not wav_of(built, "kk", "1414/bye").exists()
    assert not wav_of(built, "kk", "1414/bye", ".wav16").exists()
    assert wav_of(built, "ru", "1414/bye").exists()
    assert "1414/bye" not in manifest(built, "kk")


def test_a_human_recording_in_another_rate_is_converted_and_survives_rebuilds(built: Path) -> None:
    welcome = wav_of(built, "kk", "1414/welcome")
    make_recording(welcome, 44100, 2)
    original = welcome.read_bytes()

    report = build(built)
    assert report.converted == ("kk/1414/welcome",)
    assert report.synthesized == ()
    with wave.open(str(welcome), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert 1.4 < wav.getnframes() / 8000 < 1.6  # the person's 1.5 s, not the synthesised text
    with wave.open(str(wav_of(built, "kk", "1414/welcome", ".wav16")), "rb") as wav16:
        assert wav16.getframerate() == 16000 and 1.4 < wav16.getnframes() / 16000 < 1.6
    entry = manifest(built, "kk")["1414/welcome"]
    assert entry["kind"] == "human"
    assert (built / "kk" / entry["source"]).read_bytes() == original  # the person's bytes are kept

    converted = welcome.read_bytes()
    changed = [PromptText("1414/welcome", "kk", "Мүлде басқа мәтін."), *TEXTS[1:]]
    for report in (build(built), build(built, force=True), build(built, changed)):
        assert "kk/1414/welcome" not in report.synthesized
        assert welcome.read_bytes() == converted

    report = build(built, [t for t in TEXTS if t.name != "1414/welcome"])
    assert report.unused_human == ("kk/1414/welcome",)
    assert welcome.read_bytes() == converted


def test_a_native_human_recording_is_kept_byte_for_byte_and_the_old_wideband_copy_goes(built: Path) -> None:
    bye = wav_of(built, "ru", "1414/bye")
    make_recording(bye, 8000, 1)
    recorded = bye.read_bytes()
    report = build(built)
    assert "ru/1414/bye" in report.human and report.converted == () and report.synthesized == ()
    assert bye.read_bytes() == recorded
    # The generated 16 kHz copy would otherwise speak the old text on wideband channels.
    assert not wav_of(built, "ru", "1414/bye", ".wav16").exists()
    assert build(built).synthesized == ()


def test_a_recording_in_another_format_replaces_the_generated_prompt(built: Path) -> None:
    flac = built / "ru" / "1414" / "operator.flac"
    make_recording(flac, 22050, 1, seconds=2.0)
    report = build(built)
    assert report.converted == ("ru/1414/operator",)
    assert not flac.exists()  # moved aside, not lost
    kept = list((built / "ru" / ".originals" / "1414").glob("operator.*.flac"))
    assert len(kept) == 1
    assert report.summary().splitlines()[-2:] == [
        "recording converted: ru/1414/operator.flac into ru/1414/operator.wav and .wav16 (the original kept "
        f"as ru/.originals/1414/{kept[0].name})",
        "0 synthesised, 1 recording converted, 5 unchanged, 1 human, 0 removed, 0 failed",
    ]
    assert build(built).unknown == ()  # the kept original is the build's own, not a stray file
    with wave.open(str(wav_of(built, "ru", "1414/operator")), "rb") as wav:
        assert wav.getframerate() == 8000 and 1.9 < wav.getnframes() / 8000 < 2.1


def test_check_says_a_recording_waits_to_be_converted_and_what_callers_hear_meanwhile(built: Path) -> None:
    welcome = wav_of(built, "ru", "1414/welcome")
    make_recording(
        welcome, 16000, 1
    )  # a .wav, but not one Asterisk plays: it refuses it, and plays the .wav16
    make_recording(built / "kk" / "1414" / "bye.flac", 44100, 2)
    check = build(built, check_only=True)
    assert check.exit_code == 1 and check.stale == () and check.missing == ()
    assert check.to_convert == ("kk/1414/bye", "ru/1414/welcome")
    assert check.summary().splitlines() == [
        "recording waiting to be converted: kk/1414/bye.flac; callers keep hearing the prompt as it was until "
        "`ivr prompts build` (or the running engine, at its start or next menu reload) converts it into "
        "kk/1414/bye.wav",
        "recording waiting to be converted: ru/1414/welcome.wav (16000 Hz, mono, 16-bit): Asterisk plays a .wav "
        "only at 8 kHz, mono, 16-bit, so callers hear the old .wav16 (what the prompt said before) until "
        "`ivr prompts build` (or the running engine, at its start or next menu reload) converts it",
        "prompts check: 0 missing, 0 stale, 4 up to date, 0 human recordings, 2 recordings waiting to be converted",
    ]
    assert build(built).converted == ("kk/1414/bye", "ru/1414/welcome")
    check = build(built, check_only=True)
    assert check.exit_code == 0 and check.summary().endswith("6 up to date, 2 human recordings")

    make_recording(
        welcome, 22050, 2
    )  # a narrowband build keeps no .wav16: nothing plays until it is converted
    assert build(built, wideband=False).ok
    make_recording(welcome, 22050, 2)
    [waiting] = build(built, check_only=True, wideband=False).waiting
    assert (
        "(22050 Hz, 2 channels, 16-bit): Asterisk plays a .wav only at 8 kHz, mono, 16-bit, so callers hear "
        "nothing there until" in waiting
    )


@pytest.mark.parametrize("rate", [8000, 22050])  # used as it is, and converted
def test_a_recording_whose_text_was_edited_since_is_named_and_kept(built: Path, rate: int) -> None:
    make_recording(wav_of(built, "ru", "1414/bye"), rate, 1)
    assert build(built).outdated_human == ()
    recorded = wav_of(built, "ru", "1414/bye").read_bytes()
    edited = [
        t if (t.name, t.language) != ("1414/bye", "ru") else PromptText(t.name, t.language, "До встречи!")
        for t in TEXTS
    ]
    report = build(built, edited)
    assert report.outdated_human == ("ru/1414/bye",)
    assert (
        "recording older than its text: ru/1414/bye (callers still hear the recorded words"
        in report.summary()
    )
    assert wav_of(built, "ru", "1414/bye").read_bytes() == recorded  # a person's recording is never replaced
    check = build(built, edited, check_only=True)
    assert check.ok and "recording older than its text: ru/1414/bye" in check.summary()


def test_a_recording_named_after_no_prompt_is_named_not_passed_over(built: Path) -> None:
    make_recording(built / "ru" / "1414" / "by.wav", 8000, 1)  # for 1414/bye, misspelt
    make_recording(built / "ru" / "bye.mp3", 22050, 1)  # outside its menu's folder
    make_recording(built / "kk" / "1414" / "Bye.wav", 8000, 1)  # Asterisk looks for bye.wav, case and all
    report = build(built)
    assert report.unknown == ("kk/1414/Bye.wav", "ru/1414/by.wav", "ru/bye.mp3")
    assert "no prompt is named after ru/1414/by.wav: it is never played" in report.summary()
    assert build(built, check_only=True).unknown == ("kk/1414/Bye.wav", "ru/1414/by.wav", "ru/bye.mp3")
    assert (built / "ru" / "1414" / "by.wav").exists()  # named, not touched


def test_two_recordings_for_one_prompt_are_reported_not_guessed(built: Path) -> None:
    make_recording(wav_of(built, "kk", "1414/bye"), 8000, 1)
    make_recording(built / "kk" / "1414" / "bye.au", 44100, 1)
    report = build(built)
    assert not report.ok
    assert any("kk/1414/bye" in message and "keep one" in message for message in report.failed)
    assert (built / "kk" / "1414" / "bye.au").exists()


def test_a_person_deleting_their_recording_brings_the_synthesised_prompt_back(built: Path) -> None:
    bye = wav_of(built, "kk", "1414/bye")
    make_recording(bye, 8000, 1)
    build(built)
    bye.unlink()
    assert build(built).synthesized == ("kk/1414/bye",)


def test_check_reports_missing_and_stale_and_writes_nothing(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    report = build(prompts, check_only=True)
    assert report.exit_code == 1
    assert len(report.missing) == len(TEXTS)
    assert not prompts.exists()

    build(prompts)
    assert build(prompts, check_only=True).exit_code == 0

    before = mtimes(prompts)
    manifest_before = (prompts / "ru" / ".manifest.json").read_bytes()
    texts = [*TEXTS[:5], PromptText("1414/bye", "ru", "Всего доброго!")]
    wav_of(prompts, "kk", "1414/welcome").unlink()
    report = build(prompts, texts, check_only=True)
    assert report.exit_code == 1
    assert report.stale == ("ru/1414/bye",)
    assert report.missing == ("kk/1414/welcome",)
    assert "stale: ru/1414/bye" in report.summary()
    del before["kk/1414/welcome.wav"]
    assert mtimes(prompts) == before
    assert (prompts / "ru" / ".manifest.json").read_bytes() == manifest_before


def test_missing_prompts_lists_what_the_engine_would_lack(built: Path) -> None:
    extra = PromptText("1414/new", "ru", "Новый текст.")
    assert missing_prompts([*TEXTS, extra], built) == ["ru/1414/new"]
    assert missing_prompts(TEXTS, built) == []
    # The engine also needs the number and queue sounds when it says positions and minutes itself.
    with_sounds = missing_prompts(TEXTS, built, include_asterisk_sounds=True)
    assert {"kk/digits/1", "ru/digits/1f", "ru/ivr/minute-few", "kk/queue-thankyou"} <= set(with_sounds)


def test_check_prompts_says_what_is_missing_and_why_it_cannot_be_built(built: Path, tmp_path: Path) -> None:
    extra = PromptText("1414/new", "kk", "Жаңа мәтін.")
    assert check_prompts(TEXTS, built) == []
    assert check_prompts([*TEXTS, extra], built) == [
        PromptProblem("prompt kk/1414/new is missing (run `ivr prompts build`)")
    ]

    # A machine with sox but no espeak-ng: the validator must say the prompt cannot be synthesised.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("sox"), bin_dir / "sox")
    old_path = os.environ["PATH"]
    os.environ["PATH"] = str(bin_dir)
    try:
        messages = check_prompts([*TEXTS, extra], built)
    finally:
        os.environ["PATH"] = old_path
    assert any("espeak-ng is not installed" in problem.message for problem in messages)
    assert {problem.severity for problem in messages} == {"error"}


def test_an_unknown_voice_fails_the_build_with_its_name(tmp_path: Path) -> None:
    settings = PromptSettings(voices={"kk": {"voice": "no-such-voice"}})
    report = build(tmp_path / "prompts", settings=settings)
    assert not report.ok
    assert any("no-such-voice" in message for message in report.failed)
    assert check_prompts(TEXTS, tmp_path / "prompts", settings)[-1].message.endswith(
        "no voice 'no-such-voice'"
    )


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([PromptText("1414/x", "kk", "   ")], "empty text"),
        ([PromptText("../etc/passwd", "kk", "мәтін")], "sound name"),
        ([PromptText("/abs", "ru", "текст")], "sound name"),
        ([PromptText("1414/x", "en", "text")], "unknown language"),
        ([PromptText("1414/x", "ru", "один"), PromptText("1414/x", "ru", "другой")], "two different texts"),
    ],
)
def test_bad_texts_are_refused_before_anything_is_written(tmp_path: Path, texts, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        build(tmp_path / "prompts", texts)
    assert not (tmp_path / "prompts").exists()


def test_bad_voice_settings_are_refused(tmp_path: Path) -> None:
    from ivr.prompts.synth import SynthError

    with pytest.raises(SynthError, match="rate"):
        build(tmp_path / "p", settings=PromptSettings(voices={"ru": {"rate": 5000}}))
    with pytest.raises(SynthError, match="unknown setting"):
        build(tmp_path / "p", settings=PromptSettings(voices={"ru": {"speed": 1}}))
    messages = check_prompts(TEXTS, tmp_path / "p", PromptSettings(voices={"kk": {"pitch": 120}}))
    assert messages[-1] == PromptProblem("prompts.voices.kk: pitch 120 is outside espeak-ng's 0-99")


def test_the_espeak_ng_program_engine_gives_the_same_format(tmp_path: Path) -> None:
    settings = PromptSettings(voices={"ru": {"voice": "ru", "engine": "espeak-ng"}})
    prompts = tmp_path / "prompts"
    report = build(prompts, [t for t in TEXTS if t.language == "ru"], settings=settings, languages=("ru",))
    assert report.ok and len(report.synthesized) == 3
    with wave.open(str(wav_of(prompts, "ru", "1414/welcome")), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() / 8000 > 2.0


def test_files_left_by_an_interrupted_build_are_not_mistaken_for_recordings(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    texts = [PromptText(f"1414/item-{i}", "ru", f"Пункт номер {i}.") for i in range(12)]

    def interrupt(done: int, total: int, item: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C while other prompts are still being written

    with pytest.raises(KeyboardInterrupt):
        build(prompts, texts, languages=("ru",), workers=2, progress=interrupt)
    # The other worker finished its file after the interruption: on disk, but only marked pending.
    pending = {name for name, entry in manifest(prompts, "ru").items() if entry.get("pending")}
    written = {f"1414/{p.stem}" for p in (prompts / "ru" / "1414").glob("*.wav")}
    assert written & pending

    report = build(prompts, texts, languages=("ru",))
    assert report.ok and report.human == ()
    assert {entry["kind"] for entry in manifest(prompts, "ru").values()} == {"generated"}
    assert not any(entry.get("pending") for entry in manifest(prompts, "ru").values())


@pytest.mark.parametrize("voice", ["kk", "ru", "kk+f3"])
def test_pyttsx3_speaks_with_the_configured_voice_not_a_fallback(tmp_path: Path, voice: str) -> None:
    from ivr.prompts.synth import VoiceSettings, synthesize

    text = "Сіздің кезектегі нөміріңіз жиырма бір. Ваш номер в очереди двадцать один."
    lengths = {}
    for engine in ("pyttsx3", "espeak-ng"):
        synthesize(text, VoiceSettings(voice, engine=engine), tmp_path / f"{engine}.wav")
        with wave.open(str(tmp_path / f"{engine}.wav"), "rb") as wav:
            lengths[engine] = wav.getnframes()
    # Same voice, same length (espeak-ng varies by a few samples); a fallback voice differs by far more.
    assert abs(lengths["pyttsx3"] - lengths["espeak-ng"]) < 0.02 * lengths["espeak-ng"]


# --- recordings that cannot be played ------------------------------------------------------------


def not_audio(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * 8)


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def header_only(path: Path) -> None:
    """A WAV in the very format Asterisk plays, with no sound after its header: it would be adopted as is."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)


def silent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sox", "-D", "-n", "-r", "44100", "-c", "2", "-b", "16", str(path), "trim", "0", "2"], check=True
    )


def nearly_silent(path: Path) -> None:
    make_recording(path, 8000, 1, volume=0.005)  # -46 dBFS: a muted microphone's hiss


def cut_short(path: Path) -> None:
    make_recording(path, 44100, 2, seconds=2.0)
    path.write_bytes(path.read_bytes()[:4000])  # a copy that stopped half-way


BROKEN = {
    "not audio": (
        not_audio,
        "is not audio sox can read (sox: can't open input file: WAVE: RIFF header not found)",
    ),
    "empty": (empty_file, "is an empty file (0 bytes)"),
    "header only": (header_only, "holds no sound (a header with no audio after it)"),
    "silent": (silent, "is silent (every sample is zero; a muted microphone?)"),
    "nearly silent": (nearly_silent, "is silent (its loudest sound is at -46 dBFS; a muted microphone?)"),
    "cut short": (
        cut_short,
        "is cut short: its header promises 2.0 s of sound, the file holds 0.02 s (a copy that did not finish?)",
    ),
}


def assert_synthesised_in_both_formats(prompts: Path, language: str, name: str) -> None:
    """Both files are the build's own speech of the text, made together: no format speaks for another source."""
    entry = manifest(prompts, language)[name]
    assert entry["kind"] == "generated" and not entry.get("pending")
    wav, wav16 = wav_of(prompts, language, name), wav_of(prompts, language, name, ".wav16")
    assert file_sha256(wav) == entry["wav_sha"] and file_sha256(wav16) == entry["wav16_sha"]
    with wave.open(str(wav), "rb") as narrow, wave.open(str(wav16), "rb") as wide:
        seconds = narrow.getnframes() / 8000
        assert seconds > 2.0  # the text spoken, not a recording's leftovers
        assert abs(wide.getnframes() / 16000 - seconds) < 0.01


@pytest.mark.parametrize("fault", BROKEN)
def test_a_broken_recording_in_a_prompts_place_is_set_aside_and_callers_hear_the_text(
    built: Path, fault: str
) -> None:
    make, says = BROKEN[fault]
    welcome = wav_of(built, "ru", "1414/welcome")
    make(welcome)
    broken = welcome.read_bytes()

    check = build(built, check_only=True)
    assert check.exit_code == 1
    assert f"recording refused: {welcome} {says}" in check.summary()
    assert "until `ivr prompts build`" in check.summary()
    assert (
        welcome.read_bytes() == broken and not (built / "ru" / ".refused").exists()
    )  # a check writes nothing

    report = build(built)
    assert report.ok and report.exit_code == 1  # every prompt plays (the engine may start), but say so
    assert report.synthesized == ("ru/1414/welcome",) and report.human == ()
    kept = list((built / "ru" / ".refused" / "1414").glob("welcome.*.wav"))
    assert [path.read_bytes() for path in kept] == [broken]  # the admin's file, to look at
    assert report.refused == (
        f"recording refused: {welcome} {says}. It is set aside as {kept[0]}; callers hear the synthesised "
        f"text. To use a recording, put a good recording at {welcome} and run `ivr prompts build`",
    )
    assert_synthesised_in_both_formats(built, "ru", "1414/welcome")

    again = build(built)  # named until the admin acts, never synthesised again
    assert again.synthesized == () and again.exit_code == 1
    assert again.refused == (
        f"recording refused earlier: {kept[0]} (set aside from {welcome}) {says}; callers hear the "
        f"synthesised text. To use a recording, put a good one at {welcome} and run `ivr prompts build`; "
        f"to keep the synthesised text, delete {kept[0]}",
    )

    make_recording(welcome, 8000, 1)  # recorded again
    check = build(built, check_only=True)
    assert check.exit_code == 0 and check.refused == ()
    assert check.leftovers == (
        f"refused recording left over: {kept[0]} (a good recording replaces it at {welcome}): a build removes it",
    )
    fixed = build(built)
    assert fixed.exit_code == 0 and fixed.human == ("ru/1414/welcome",) and fixed.refused == ()
    assert fixed.leftovers == (
        f"refused recording removed: {kept[0]} (a good recording has replaced it at {welcome})",
    )
    assert not (built / "ru" / ".refused").exists()  # broken audio nobody needs any more
    assert build(built, check_only=True).summary().splitlines() == [
        "prompts check: 0 missing, 0 stale, 6 up to date, 1 human recording"
    ]


@pytest.mark.parametrize(
    ("file_name", "make", "says"),
    [
        ("bye.mp3", not_audio, "is not audio sox can read (sox: "),
        ("bye.flac", silent, "is silent (every sample is zero"),
    ],
)
def test_a_broken_recording_beside_a_prompt_is_left_and_callers_keep_the_prompt(
    built: Path, file_name: str, make, says: str
) -> None:
    bye = wav_of(built, "kk", "1414/bye")
    before = {path: path.read_bytes() for path in (bye, wav_of(built, "kk", "1414/bye", ".wav16"))}
    entry = manifest(built, "kk")["1414/bye"]
    recording = built / "kk" / "1414" / file_name
    make(recording)

    for report in (build(built, check_only=True), build(built)):
        assert report.exit_code == 1 and report.converted == () and report.synthesized == ()
        [message] = report.refused
        assert message.startswith(f"recording refused: {recording} {says}")
        assert message.endswith(
            f"It is left as it is and callers keep hearing {bye}; replace it with a good recording "
            "(or delete it) and run `ivr prompts build`"
        )
    assert {path: path.read_bytes() for path in before} == before
    assert manifest(built, "kk")["1414/bye"] == entry
    assert recording.exists()

    recording.unlink()
    assert build(built).exit_code == 0


def test_a_broken_wav_over_an_earlier_recording_leaves_no_format_of_it(built: Path) -> None:
    welcome = wav_of(built, "kk", "1414/welcome")
    make_recording(welcome, 44100, 2)
    assert build(built).converted == ("kk/1414/welcome",)  # a .wav16 of the recording, too
    not_audio(welcome)
    report = build(built)
    assert report.synthesized == ("kk/1414/welcome",) and len(report.refused) == 1
    assert_synthesised_in_both_formats(built, "kk", "1414/welcome")


def test_each_refusal_names_its_own_file_and_what_callers_hear_now(built: Path, tmp_path: Path) -> None:
    welcome = wav_of(built, "ru", "1414/welcome")
    cut_short(welcome)
    build(built)
    silent(welcome)  # taken again: a muted microphone
    build(built)
    [first, second] = sorted(
        (built / "ru" / ".refused" / "1414").iterdir(), key=lambda p: p.stat().st_mtime_ns
    )
    not_audio(welcome)  # then a failed download, before anyone builds

    check = build(built, check_only=True)
    faults = {first: BROKEN["cut short"][1], second: BROKEN["silent"][1]}
    assert check.refused == tuple(
        sorted(
            [
                f"recording refused: {welcome} {BROKEN['not audio'][1]}. Callers get it as it is (a file "
                "Asterisk cannot read: the old .wav16, if there is one, or nothing) until "
                "`ivr prompts build` (or the engine, at its start or a menu reload) sets it aside as "
                f"{built / 'ru' / '.refused' / '1414'}/welcome.{file_sha256(welcome)[:12]}.wav and synthesises "
                f"the text; put a good recording at {welcome} and run `ivr prompts build`",
                *(
                    f"recording refused earlier: {kept} (set aside from {welcome}) {fault}; callers get what "
                    f"is at {welcome} now, refused too (its own message says so). To use a recording, put a "
                    f"good one at {welcome} and run `ivr prompts build`; to keep the synthesised text, "
                    f"delete {kept}"
                    for kept, fault in faults.items()
                ),
            ]
        )
    )

    welcome.unlink()  # the admin takes it away
    for message in build(built, check_only=True).refused:
        assert message.startswith("recording refused earlier: ")
        assert (
            f"; {welcome} is missing now (callers get its .wav16 if there is one, else nothing) until "
            in message
        )

    report = build(built)  # synthesised again: every copy says so
    assert report.synthesized == ("ru/1414/welcome",) and len(report.refused) == 2
    assert all("; callers hear the synthesised text. " in message for message in report.refused)

    say(RU_WELCOME, tmp_path / "take.flac")
    (tmp_path / "take.flac").rename(welcome.with_suffix(".flac"))  # at last a good take, beside the prompt
    assert len(build(built, check_only=True).leftovers) == 2
    report = build(built)
    assert report.converted == ("ru/1414/welcome",) and report.refused == ()
    assert report.leftovers == tuple(
        f"refused recording removed: {kept} (a good recording has replaced it at {welcome})"
        for kept in sorted(faults)
    )
    assert not (built / "ru" / ".refused").exists()


def test_a_narrowband_build_leaves_no_wav16_of_other_words(built: Path) -> None:
    welcome = wav_of(built, "ru", "1414/welcome")
    not_audio(welcome)
    edited = [t if t.name != "1414/bye" else PromptText(t.name, t.language, "До встречи!") for t in TEXTS]
    report = build(built, edited, wideband=False)
    assert len(report.synthesized) == len(TEXTS)  # the set of formats is part of what a prompt is made of
    assert list(built.rglob("*.wav16")) == []  # wideband channels play the .wav: the new words everywhere


def test_a_quiet_recording_is_adopted_not_taken_for_silence(built: Path) -> None:
    bye = wav_of(built, "ru", "1414/bye")
    make_recording(bye, 8000, 1, volume=0.03)  # -30 dBFS: quiet, but a voice
    report = build(built)
    assert report.refused == () and report.human == ("ru/1414/bye",)


def test_ivr_check_names_a_broken_recording_at_its_prompt(built: Path) -> None:
    bye = wav_of(built, "ru", "1414/bye")
    not_audio(bye)
    [problem] = check_prompts([t for t in TEXTS if t.name == "1414/bye"], built)
    # A warning: callers hear a consistent prompt, and the engine takes the menu all the same.
    assert problem.severity == "warning"
    assert problem.message.startswith(f"recording refused: {bye} {BROKEN['not audio'][1]}")
    assert check_prompts([t for t in TEXTS if t.name != "1414/bye"], built) == []


# --- recordings far shorter than their text: an MP3 copied half-way -----------------------------------


def say(text: PromptText, path: Path, *, tempo: float = 1.0) -> None:
    """A person's take of the text: spoken by `ivr prompts say` (16 kHz), sped up by sox's `tempo` (pitch
    kept) as a brisk speaker says it, and written in the format `path`'s ending names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        said = Path(tmp) / "said.wav"
        command = [sys.executable, "-m", "ivr", "prompts", "say", text.text, "--lang", text.language]
        subprocess.run([*command, "-o", str(said), "--rate", "16000"], check=True, capture_output=True)
        subprocess.run(
            ["sox", str(said), str(path), *(["tempo", str(tempo)] if tempo != 1 else [])], check=True
        )


def seconds_of(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


RU_WELCOME = TEXTS[1]


def test_an_mp3_cut_short_is_refused_by_its_text_and_callers_keep_the_prompt(
    built: Path, tmp_path: Path
) -> None:
    take = tmp_path / "welcome.mp3"
    say(RU_WELCOME, take)
    mp3 = built / "ru" / "1414" / "welcome.mp3"
    whole = take.read_bytes()
    mp3.write_bytes(whole[: len(whole) // 8])  # a copy that stopped: an MP3 keeps no length to tell it by
    assert seconds_of(mp3) < 1.0 < 3.5 < seconds_of(take)  # sox reads what is there, without complaint
    before = wav_of(built, "ru", "1414/welcome").read_bytes()

    for report in (build(built, check_only=True), build(built)):
        assert report.exit_code == 1 and report.converted == ()
        [message] = report.refused
        assert message.startswith(f"recording refused: {mp3} is far too short for its text: 0.")
        assert (
            "s of sound, where saying the text takes some 3.9 s at an ordinary pace, 1.3 s even at three times that"
            in message
        )
        assert f"callers keep hearing {wav_of(built, 'ru', '1414/welcome')}" in message
    assert wav_of(built, "ru", "1414/welcome").read_bytes() == before

    mp3.write_bytes(whole)  # copied again, to its end
    report = build(built)
    assert report.exit_code == 0 and report.converted == ("ru/1414/welcome",)


def test_a_wav_trimmed_short_in_a_prompts_place_is_set_aside(built: Path, tmp_path: Path) -> None:
    take = tmp_path / "take.wav"
    say(RU_WELCOME, take)
    welcome = wav_of(built, "ru", "1414/welcome")
    subprocess.run(
        ["sox", str(take), str(welcome), "trim", "0", "0.6"], check=True
    )  # a whole file, header and all
    report = build(built)
    [message] = report.refused
    assert message.startswith(f"recording refused: {welcome} is far too short for its text: 0.60 s of sound")
    assert_synthesised_in_both_formats(built, "ru", "1414/welcome")


@pytest.mark.parametrize("tempo", [1.0, 1.5, 2.0, 2.5])
@pytest.mark.parametrize("ending", [".mp3", ".wav"])
def test_a_good_take_is_never_refused_however_briskly_it_is_spoken(
    built: Path, tempo: float, ending: str
) -> None:
    # espeak-ng speaks these texts at 9-15 characters a second; 2.5 times that is faster than people talk.
    takes = {}
    for text in (RU_WELCOME, TEXTS[4]):  # the kk goodbye: the shortest text, with the most punctuation
        takes[text] = built / text.language / f"{text.name}{ending}"
        say(text, takes[text], tempo=tempo)
    report = build(built)
    assert report.refused == () and report.failed == ()
    assert sorted(report.converted) == ["kk/1414/bye", "ru/1414/welcome"]
    for text, take in takes.items():  # the takes themselves, moved aside as originals
        [original] = (built / text.language / ".originals" / "1414").glob(f"{Path(text.name).name}.*{ending}")
        assert abs(seconds_of(wav_of(built, text.language, text.name)) - seconds_of(original)) < 0.05
        assert take.exists() == (ending == ".wav")  # converted in its place, or moved from beside it


# --- recordings no prompt uses, endings in capitals ---------------------------------------------------


def test_a_recording_no_prompt_uses_any_more_is_named_with_what_to_do(built: Path) -> None:
    welcome = wav_of(built, "kk", "1414/welcome")
    make_recording(welcome, 44100, 2)
    build(built)
    [original] = (built / "kk" / ".originals" / "1414").glob("welcome.*.wav")
    texts = [t for t in TEXTS if (t.name, t.language) != ("1414/welcome", "kk")]  # its node deleted

    notice = (
        "recording no prompt uses any more: kk/1414/welcome.wav (its node deleted or renamed?), converted "
        f"from the original kept as kk/.originals/1414/{original.name}; both are kept. For a renamed node, "
        "move the original to the new name (kk/1414/<new id>.wav) and delete kk/1414/welcome.wav: the build "
        "converts it again. If neither is needed any more, delete both (the next build removes the .wav16 too)"
    )
    check = build(built, texts, check_only=True)
    assert check.exit_code == 0 and notice in check.summary().splitlines()
    assert notice in build(built, texts).summary().splitlines()
    assert welcome.exists()

    welcome.unlink()  # the admin lets it go, but for the original
    left = (
        f"recording deleted: kk/1414/welcome.wav; its original stays as kk/.originals/1414/{original.name}: "
        "delete that too if it is no longer needed, or move it back to kk/1414/welcome.wav to have it "
        "converted again"
    )
    assert left in build(built, texts, check_only=True).summary().splitlines()
    report = build(built, texts)
    assert report.removed == ("kk/1414/welcome",) and left in report.summary().splitlines()
    assert not wav_of(built, "kk", "1414/welcome", ".wav16").exists()
    assert "1414/welcome" not in manifest(built, "kk")
    assert original.exists()  # the person's bytes stay: theirs to delete
    assert "no prompt uses" not in build(built, texts, check_only=True).summary()

    original.rename(welcome)  # a node of that name again: the original, moved back, is converted again
    assert build(built).converted == ("kk/1414/welcome",)


def test_a_converted_recording_deleted_to_hear_the_text_names_its_original(built: Path) -> None:
    flac = built / "ru" / "1414" / "bye.flac"
    make_recording(flac, 44100, 1)
    build(built)
    [original] = (built / "ru" / ".originals" / "1414").glob("bye.*.flac")
    wav_of(built, "ru", "1414/bye").unlink()  # to hear the text synthesised
    report = build(built)
    assert report.synthesized == ("ru/1414/bye",)
    assert (
        f"recording deleted: ru/1414/bye.wav; its original stays as ru/.originals/1414/{original.name}: delete "
        "that too if it is no longer needed, or move it back to ru/1414/bye.flac to have it converted again"
    ) in report.summary().splitlines()
    assert "recording deleted" not in build(built).summary()  # said once


def test_a_native_recording_no_prompt_uses_has_no_original_to_speak_of(built: Path) -> None:
    make_recording(wav_of(built, "ru", "1414/bye"), 8000, 1)  # adopted as it is: no original kept
    build(built)
    texts = [t for t in TEXTS if (t.name, t.language) != ("1414/bye", "ru")]
    assert (
        "recording no prompt uses any more: ru/1414/bye.wav (its node deleted or renamed?); it is kept: delete "
        "it if it is no longer needed (the next build removes its .wav16 with it)"
    ) in build(built, texts).summary().splitlines()
    wav_of(built, "ru", "1414/bye").unlink()
    assert "recording deleted" not in build(built, texts).summary()


def test_a_recording_with_an_upper_case_ending_is_adopted_and_said_so(built: Path) -> None:
    upper = built / "kk" / "1414" / "bye.WAV"  # as Windows tools name it; Asterisk looks for bye.wav
    make_recording(upper, 8000, 1)

    check = build(built, check_only=True)
    assert check.to_convert == ("kk/1414/bye",) and check.stale == () and check.unknown == ()
    assert (
        "kk/1414/bye.WAV: a build adopts it as kk/1414/bye.wav (Asterisk looks for the lower-case ending only)"
        in check.summary().splitlines()
    )

    report = build(built)
    assert report.converted == ("kk/1414/bye",) and report.recased == ("kk/1414/bye.WAV",)
    assert (
        "kk/1414/bye.WAV adopted as kk/1414/bye.wav: Asterisk looks for the lower-case ending"
        in report.summary()
    )
    with wave.open(str(wav_of(built, "kk", "1414/bye")), "rb") as wav:
        assert wav.getframerate() == 8000 and 1.4 < wav.getnframes() / 8000 < 1.6
    assert not wav_of(built, "kk", "1414/bye", ".wav16").exists()  # 8 kHz: no wideband copy of the old text
    assert not upper.exists() and list((built / "kk" / ".originals" / "1414").glob("bye.*.WAV"))
    assert build(built).recased == ()
