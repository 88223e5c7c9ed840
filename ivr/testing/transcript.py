"""What a tester reads after a fake call (`ivr testcall`): every command the engine sent with Asterisk's
reply, the text of each prompt in the call's language, keys as keys, which scripted step answered
which command, the steps nothing used (and why), and how the call ended, with the journal's outcome
when the engine's journal can be read from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from ivr.agi.protocol import split_app_args
from ivr.testing.fake_caller import FakeCall, Say, describe_action

TextOf = Callable[[str, str], str | None]  # (sound, language) -> the text it says
FileOf = Callable[[str, str], str]  # (sound, language) -> the file Asterisk plays for it, or why none
KEY_REPLIES = {"STREAM FILE", "WAIT FOR DIGIT", "RECORD FILE"}  # result=<ASCII code of the key>


@attrs.frozen
class Step:
    at: float
    command: str
    args: tuple[str, ...]
    reply: str
    language: str
    texts: tuple[tuple[str, str], ...] = ()  # (sound, text) of each prompt the command plays
    files: tuple[tuple[str, str], ...] = ()  # (sound, the file played or why none), when looked up
    key: str | None = None
    answered_by: tuple[str, ...] = ()  # the scripted steps it used


@attrs.frozen
class Ending:
    call_id: str
    language: str
    queue: str | None
    queue_result: str | None
    hangup_by: str | None
    how: str  # FakeCall.ending()
    outcome: str | None = None  # from the engine's journal, when it can be read
    topic: str | None = None
    journal_note: str = ""


def _key(command: str, reply: str) -> str | None:
    if command not in KEY_REPLIES or "result=" not in reply:
        return None
    value = reply.split("result=", 1)[1].split(" ", 1)[0]
    if not value.lstrip("-").isdigit() or int(value) <= 0 or "(timeout)" in reply:
        return None  # RECORD FILE's "(timeout)" result is milliseconds left, not a key
    key = chr(int(value))
    return key if key in "0123456789*#ABCD" else None


def _sounds(command: str, args: tuple[str, ...]) -> list[str]:
    if command in ("STREAM FILE", "GET DATA") and args:
        return [args[0]]
    if command == "EXEC" and len(args) > 1 and args[0].lower() == "playback":
        return [s for s in split_app_args(args[1])[0].split("&") if s]
    return []


def steps(call: FakeCall, text_of: TextOf | None = None, file_of: FileOf | None = None) -> list[Step]:
    language = "en"
    result = []
    for index, exchange in enumerate(call.exchanges):
        if exchange.command == "SET VARIABLE" and exchange.args[:1] == ("CHANNEL(language)",):
            language = exchange.args[1]
        sounds = _sounds(exchange.command, exchange.args)
        texts = tuple(
            (sound, text)
            for sound in sounds
            if text_of is not None and (text := text_of(sound, language)) is not None
        )
        files = tuple((sound, file_of(sound, language)) for sound in sounds) if file_of is not None else ()
        result.append(
            Step(
                exchange.at,
                exchange.command,
                exchange.args,
                exchange.reply,
                language,
                texts,
                files,
                _key(exchange.command, exchange.reply),
                tuple(call.steps_used.get(index, ())),
            )
        )
    return result


def unused_steps(call: FakeCall, speech_languages: set[str] | None = None) -> list[str]:
    """The scripted steps no command used, each with the likely reason."""
    notes = []
    for number, action in zip(call.step_numbers, call.script, strict=True):
        why = "the call ended before it"
        if isinstance(action, Say):
            heard = any(e.command == "RECORD FILE" for e in call.exchanges)
            if not heard:
                why = (
                    "the engine never recorded: it listens for speech only in a language with a "
                    'speech model (see `ivr serve`\'s log: "DTMF-only")'
                )
        notes.append(f"step {number} ({describe_action(action)}) was not used: {why}")
    for index, used in call.steps_used.items():
        exchange = call.exchanges[index] if index < len(call.exchanges) else None
        if exchange is not None and exchange.command in ("GET DATA", "WAIT FOR DIGIT"):
            for step in used:
                if ": say " in step:
                    notes.append(f"{step} was lost: the engine was listening for keys only at that prompt")
    return notes


def render(steps_: list[Step], ending: Ending, notes: list[str]) -> str:
    lines = []
    for step in steps_:
        line = f"{step.at:7.3f}  {step.command} {' '.join(step.args)}  ->  {step.reply}"
        if step.key:
            line += f"  [key {step.key}]"
        if step.answered_by:
            line += "  <- " + ", ".join(step.answered_by)
        lines.append(line)
        said = dict(step.texts)
        for sound in dict.fromkeys([*said, *dict(step.files)]):
            text = f"«{said[sound]}» ({step.language})" if sound in said else sound
            where = dict(step.files).get(sound)
            lines.append(f"           {text}  [{where}]" if where else f"           {text}")
    lines.extend(f"note: {note}" for note in notes)
    lines.append(ending.how)
    if ending.outcome is not None:
        lines.append(f"journal: outcome {ending.outcome}; topic {ending.topic or '-'}; key {ending.call_id}")
    elif ending.journal_note:
        lines.append(f"journal: {ending.journal_note}")
    return "\n".join(lines)


def render_json(steps_: list[Step], ending: Ending, notes: list[str]) -> str:
    def step(s: Step) -> dict[str, Any]:
        return {
            "at": round(s.at, 3),
            "command": s.command,
            "args": list(s.args),
            "reply": s.reply,
            "language": s.language,
            "key": s.key,
            "texts": [{"sound": sound, "text": text} for sound, text in s.texts],
            "files": [{"sound": sound, "file": file} for sound, file in s.files],
            "answered_by": list(s.answered_by),
        }

    return json.dumps(
        {"commands": [step(s) for s in steps_], "notes": notes, **attrs.asdict(ending)},
        ensure_ascii=False,
        indent=2,
    )
