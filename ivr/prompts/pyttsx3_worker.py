"""The pyttsx3 worker: a child process that speaks texts into WAV files, one at a time, for synth.py.

Started as `python -m ivr.prompts.pyttsx3_worker` by worker_process.py, never by hand. espeak-ng runs
inside this process (a C library, through pyttsx3's ctypes driver), so a crash of the library kills
only this process: the parent notices, makes that one prompt with the espeak-ng program and starts
another worker.

Protocol: one JSON object per line. The parent writes a SpeechRequest on our stdin; we write the WAV
to its target and answer {"error": "" or why, "notes": [[level, message], ...]} on the stdout we were
given. Our own fd 1 is pointed at stderr first, so nothing printed here (by Python or by the C library)
can corrupt an answer. The notes are what the driver printed, for the parent to log (see _quiet_driver).
EOF on stdin means the parent is gone or done with us: we exit. SIGINT is ignored: Ctrl-C in a terminal
reaches the whole process group, and the parent decides when we stop.

Two habits of pyttsx3 2.99's espeak driver are handled here rather than trusted (synth.py handles
the others: the file's rate, lost utterances):
- an unknown voice name does not raise: the driver reports the error through the engine's 'error'
  callback and speaks on in the previous voice (English at first). Voices are therefore resolved
  against the voice list first, errors are collected from that callback, and the voice actually in use
  is compared after synthesis.
- it prints "Audio saved to <file>" for every text, from espeak-ng's callback thread (possibly after
  runAndWait has returned): that print becomes a note at debug level instead.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from typing import BinaryIO

import attrs


@attrs.frozen
class SpeechRequest:
    """One text to speak. `voice` is as configured ("kk", "kk+f3"): an espeak-ng voice, then a variant."""

    text: str
    voice: str
    rate: int
    pitch: int
    target: str  # the WAV file to write

    def to_line(self) -> bytes:
        return json.dumps(attrs.asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpeechRequest:
        return cls(**json.loads(line))


@attrs.frozen
class SpeechAnswer:
    """The worker's reply: why the text could not be spoken ("" when it was), and the driver's prints."""

    error: str = ""
    notes: tuple[tuple[int, str], ...] = ()  # (logging level, message)

    def to_line(self) -> bytes:
        return json.dumps(attrs.asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpeechAnswer:
        fields = json.loads(line)
        return cls(fields["error"], tuple((level, message) for level, message in fields["notes"]))


class SpeechFailed(Exception):
    """pyttsx3 could not speak this text (an unknown voice, the driver's error): said in the answer."""


# What the driver printed since the last answer, as (logging level, message). Appended from espeak-ng's
# callback thread, taken by the main loop: the lock keeps a note from falling between the two.
_NOTES: list[tuple[int, str]] = []
_NOTES_LOCK = threading.Lock()


def _driver_print(*values: object, **_: object) -> None:
    message = " ".join(str(value) for value in values)
    level = logging.DEBUG if message.startswith("Audio saved to ") else logging.WARNING
    with _NOTES_LOCK:
        _NOTES.append((level, message))


def take_notes() -> tuple[tuple[int, str], ...]:
    with _NOTES_LOCK:
        notes = tuple(_NOTES)
        _NOTES.clear()
    return notes


def _quiet_driver() -> None:
    """Bind the name `print` in the espeak driver's module to _driver_print.

    The driver prints from espeak-ng's callback, which may run after runAndWait has returned: so the
    driver's own print is replaced, rather than stdout redirected while we wait. Its other prints
    (playback errors) are kept as warnings.
    """
    driver = sys.modules.get("pyttsx3.drivers.espeak")
    if driver is not None:
        driver.print = _driver_print  # type: ignore[attr-defined]


class Pyttsx3Engine:
    """The one pyttsx3 engine of this process (espeak-ng can be initialised only once per process)."""

    def __init__(self) -> None:
        try:
            import pyttsx3
        except ImportError as exc:
            raise SpeechFailed(f"pyttsx3 cannot be imported ({exc})") from None
        try:
            self._engine = pyttsx3.init("espeak")
        except (RuntimeError, OSError) as exc:
            raise SpeechFailed(f"pyttsx3 could not start espeak-ng ({exc})") from None
        _quiet_driver()
        self._errors: list[BaseException] = []
        self._engine.connect("error", lambda **event: self._errors.append(event.get("exception")))
        self._voice_ids = self._index_voices()

    def _index_voices(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for voice in self._engine.getProperty("voices"):
            for alias in [voice.id, voice.id.rsplit("/", 1)[-1], voice.name.lower(), *voice.languages]:
                index.setdefault(str(alias).lower(), voice.id)
        return index

    def speak(self, request: SpeechRequest) -> None:
        base, _, variant = request.voice.partition("+")
        voice_id = self._voice_ids.get(base.strip().lower())
        if voice_id is None:
            raise SpeechFailed(f"espeak-ng (through pyttsx3) has no voice {request.voice!r}")
        self._errors.clear()
        self._engine.setProperty("voice", f"{voice_id}+{variant}" if variant else voice_id)
        self._engine.setProperty("rate", request.rate)
        self._engine.setProperty("pitch", request.pitch)
        self._engine.save_to_file(request.text, request.target)
        self._engine.runAndWait()
        if self._errors:
            raise SpeechFailed(f"pyttsx3/espeak-ng: {self._errors[0]}")
        in_use = str(self._engine.getProperty("voice"))
        if in_use.split("+", 1)[0] != voice_id:
            raise SpeechFailed(f"pyttsx3 spoke with voice {in_use!r} instead of {voice_id!r}")


def answer(engine: Pyttsx3Engine | None, startup_error: str, line: bytes) -> SpeechAnswer:
    """The reply to one request line. Never raises: whatever goes wrong is said in its error."""
    error = startup_error
    if engine is not None:
        try:
            engine.speak(SpeechRequest.from_line(line))
        except SpeechFailed as exc:
            error = str(exc)
        except Exception as exc:  # the driver's own bugs: this text fails, the worker carries on
            error = f"pyttsx3: {type(exc).__name__}: {exc}"
    return SpeechAnswer(error, take_notes())


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    engine: Pyttsx3Engine | None = None
    startup_error = ""
    try:
        engine = Pyttsx3Engine()
    except SpeechFailed as exc:  # said in answer to every request: the parent raises it as SynthError
        startup_error = str(exc)
    for line in requests:  # ends at EOF: the parent closed our stdin, or is gone
        replies.write(answer(engine, startup_error, line).to_line())
        replies.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr, not into an answer
    with replies:
        serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
