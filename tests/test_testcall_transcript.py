"""The tester's transcript of a fake call: prompts with their text, keys as keys, which scripted step
answered which command, the steps nothing used and why, and how the call ended."""

from __future__ import annotations

import json
from pathlib import Path

from ivr.engine.simulate import TextCatalogue
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, write_wav
from ivr.testing.sounds import SoundsOnDisk
from ivr.testing.transcript import Ending, render, render_json, steps, unused_steps


def a_wav(path: Path) -> Path:
    return write_wav(path, b"\0\0" * 8000)


async def test_each_step_is_shown_where_it_answered_with_keys_as_keys(engine, place_call) -> None:
    call = await place_call(Press("2"), Press("1"), Press("0"))
    texts = TextCatalogue(engine.library.get("1414")).text
    lines = steps(call, texts)
    welcome = next(line for line in lines if line.args[:1] == ("1414/welcome",))
    assert (welcome.key, welcome.answered_by) == ("2", ("step 1: press 2",))
    main = next(line for line in lines if line.args[:1] == ("1414/main",))
    assert main.language == "ru" and main.texts[0][1].startswith("Выберите раздел")
    shown = render(
        lines,
        Ending(call.uniqueid, call.language, call.queue, call.queue_result, call.hangup_by, call.ending()),
        [],
    )
    assert "[key 1]  <- step 2: press 1" in shown


async def test_speech_the_engine_never_listened_for_is_reported(engine, place_call, tmp_path) -> None:
    # No speech model here: the engine is DTMF-only, and the words are lost where it waits for a key.
    call = await place_call(Press("2"), Say(a_wav(tmp_path / "words.wav")))
    notes = unused_steps(call)
    assert notes == ["step 2: say words.wav was lost: the engine was listening for keys only at that prompt"]


async def test_unused_steps_and_json(engine, place_call, tmp_path) -> None:
    call = await place_call(Press("2"), Press("0"), Press("5"))  # the call is queued before step 3
    notes = unused_steps(call)
    assert notes == ["step 3 (press 5) was not used: the call ended before it"]
    ending = Ending(
        call.uniqueid, call.language, call.queue, call.queue_result, call.hangup_by, call.ending()
    )
    data = json.loads(render_json(steps(call), ending, notes))
    assert data["call_id"] == call.uniqueid and data["queue_result"] == "answered"
    assert data["notes"] == notes and data["commands"][-1]["command"] == "HANGUP"


async def test_a_sound_asterisk_cannot_play_answers_as_asterisk_does_and_the_transcript_says_so(
    engine, tmp_path
) -> None:
    # The test engine's prompt folders link the repository's files: remove links, never the files.
    root = Path(engine.settings.prompts.dir)
    for extension in ("wav", "wav16"):
        (root / "ru" / "1414" / f"greeting.{extension}").unlink(missing_ok=True)
    main = root / "ru" / "1414" / "main.wav"
    main.unlink()
    main.write_text("not audio")  # a .wav format_wav refuses: Asterisk plays the .wav16 beside it
    sounds = SoundsOnDisk(root)
    call = FakeCall(
        [Press("2"), Press("1"), HangUp()], prompt_samples=lambda name: sounds.samples(name, call.language)
    )
    await call.run("127.0.0.1", engine.server.port, timeout=30)
    lines = steps(call, TextCatalogue(engine.library.get("1414")).text, sounds.describe)
    greeting = next(line for line in lines if line.args[:1] == ("1414/greeting",))
    assert greeting.reply == "200 result=-1 endpos=0"  # as res_agi answers for a file it cannot open
    assert greeting.files == (
        ("1414/greeting", f"no file Asterisk can play under {root / 'ru'}/: the caller hears nothing"),
    )
    menu = next(line for line in lines if line.args[:1] == ("1414/main",))
    assert menu.files[0][1].startswith(f"{root / 'ru' / '1414' / 'main.wav16'}, ")
    shown = render(lines, Ending(call.uniqueid, "ru", None, None, call.hangup_by, call.ending()), [])
    assert "the caller hears nothing]" in shown and "«Госкорпорация" in shown
