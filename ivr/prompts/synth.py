"""Text to raw speech with espeak-ng, through pyttsx3 by default or the espeak-ng program.

pyttsx3 2.99's espeak driver works headless (AUDIO_OUTPUT_RETRIEVAL, no sound device needed) and is the
default. Two of its habits are handled here rather than trusted:
- an unknown voice name does not raise: the driver reports the error through the engine's 'error'
  callback and speaks on in the previous voice (English at first). Voices are therefore resolved
  against the voice list first, errors are collected from that callback, and the voice actually in use
  is compared after synthesis.
- it stamps every file 22050 Hz, which is espeak-ng's own rate but not that of mbrola voices (16 kHz).
  Those voices (names starting "mb-") go through the espeak-ng program, which writes the true rate; so
  does any language whose voice settings say `engine = "espeak-ng"`.
- the driver runs espeak-ng in retrieval mode, where espeak-ng calls back from its own thread, and
  collects the samples without synchronisation: measured here, about 1 utterance in 100 comes back
  with no samples at all (the others are complete, within a millisecond of the program's output).
  An empty result is spoken again by the espeak-ng program.
- it prints "Audio saved to <file>" for every text, from that callback thread: the print goes to our
  log at debug level instead (see _quiet_driver), so builds and the server log show none of it.
espeak-ng keeps global state, so a process synthesises one text at a time through pyttsx3 (a lock);
the build overlaps that with the sox conversions of other prompts in worker threads.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import attrs

from ivr.config import PromptSettings
from ivr.texts import LANGUAGES

log = logging.getLogger(__name__)

# Bump when anything that shapes the audio changes (conversion, normalisation, engine handling):
# every generated prompt becomes stale and is synthesised again.
SYNTH_VERSION = 1

ENGINES = ("pyttsx3", "espeak-ng")
_DEFAULT_VOICES = {"kk": "kk", "ru": "ru"}
_SYNTH_TIMEOUT = 120.0
_WAV_HEADER_BYTES = 44


class SynthError(RuntimeError):
    """A voice is unknown, espeak-ng is missing, or synthesis produced no audio."""


def _check_rate(_instance: Any, _attribute: Any, value: int) -> None:
    if not 80 <= value <= 450:
        raise ValueError(f"rate {value} is outside espeak-ng's 80-450 words per minute")


def _check_pitch(_instance: Any, _attribute: Any, value: int) -> None:
    if not 0 <= value <= 99:
        raise ValueError(f"pitch {value} is outside espeak-ng's 0-99")


@attrs.frozen
class VoiceSettings:
    """How one language is spoken. `rate` is words per minute, `pitch` 0-99 (espeak-ng's scales)."""

    voice: str
    rate: int = attrs.field(default=150, validator=_check_rate)
    pitch: int = attrs.field(default=50, validator=_check_pitch)
    engine: str = attrs.field(default="pyttsx3", validator=attrs.validators.in_(ENGINES))

    @property
    def effective_engine(self) -> str:
        return "espeak-ng" if self.voice.lower().startswith("mb-") else self.engine

    def fingerprint(self) -> dict[str, Any]:
        return {"voice": self.voice, "rate": self.rate, "pitch": self.pitch, "engine": self.effective_engine}


def voice_for(settings: PromptSettings, language: str) -> VoiceSettings:
    """The language's voice from [prompts.voices.<lang>], with defaults; bad values raise SynthError."""
    table = dict(settings.voices.get(language, {}))
    unknown = set(table) - {f.name for f in attrs.fields(VoiceSettings)}
    if unknown:
        raise SynthError(f"prompts.voices.{language}: unknown setting(s) {', '.join(sorted(unknown))}")
    table.setdefault("voice", _DEFAULT_VOICES.get(language, language))
    try:
        return VoiceSettings(**table)
    except (TypeError, ValueError) as exc:
        raise SynthError(f"prompts.voices.{language}: {exc}") from None


def all_voices(settings: PromptSettings, languages: tuple[str, ...] = LANGUAGES) -> dict[str, VoiceSettings]:
    return {language: voice_for(settings, language) for language in languages}


def espeak_ng_path() -> str | None:
    return shutil.which("espeak-ng")


def synthesis_problems(voices: dict[str, VoiceSettings]) -> list[str]:
    """Why prompts could not be synthesised here (empty when they can): tools and voices."""
    if espeak_ng_path() is None:
        return [
            "espeak-ng is not installed: missing prompts cannot be synthesised (apt-get install espeak-ng)"
        ]
    problems = []
    known = _espeak_ng_voice_names()
    for language, voice in voices.items():
        if _base_voice(voice.voice) not in known:
            problems.append(f"prompts.voices.{language}: espeak-ng has no voice {voice.voice!r}")
    if any(v.effective_engine == "pyttsx3" for v in voices.values()):
        try:
            import pyttsx3  # noqa: F401
        except ImportError as exc:
            problems.append(f"pyttsx3 cannot be imported ({exc}); set engine = 'espeak-ng' per language")
    return problems


def synthesize(text: str, voice: VoiceSettings, target: Path) -> None:
    """Speak `text` into the WAV file `target` at the engine's own rate (22050 Hz for espeak voices)."""
    if not text.strip():
        raise SynthError("empty text")
    if voice.effective_engine == "pyttsx3":
        with _ENGINE_LOCK:
            _pyttsx3_engine().synthesize(text, voice, target)
        if _has_audio(target):
            return
        # pyttsx3 lost the utterance (about 1 in 100 here, see the module docstring): the program
        # speaks it instead, with the same voice, rate and pitch.
    _synthesize_espeak_ng(text, voice, target)
    if not _has_audio(target):
        raise SynthError(f"{voice.voice}: synthesis produced no audio for {text[:40]!r}")


def _has_audio(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > _WAV_HEADER_BYTES


def _base_voice(name: str) -> str:
    return name.split("+", 1)[0].strip().lower()


def _espeak_ng_voice_names() -> set[str]:
    """Every name espeak-ng accepts for -v: language codes, file identifiers (trk/kk, kk), mbrola voices."""
    names: set[str] = set()
    for args in (["--voices"], ["--voices=mb"]):
        try:
            done = subprocess.run(
                ["espeak-ng", *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in done.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 5:
                language, voice_name, file = fields[1], fields[3], fields[4]
                names.update({language.lower(), voice_name.lower(), file.lower(), file.rsplit("/", 1)[-1]})
    return names


class _Pyttsx3Engine:
    """One pyttsx3 engine per process (espeak-ng can be initialised only once per process)."""

    def __init__(self) -> None:
        try:
            import pyttsx3
        except ImportError as exc:
            raise SynthError(f"pyttsx3 cannot be imported ({exc})") from None
        try:
            self._engine = pyttsx3.init("espeak")
        except (RuntimeError, OSError) as exc:
            raise SynthError(f"pyttsx3 could not start espeak-ng ({exc})") from None
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

    def synthesize(self, text: str, voice: VoiceSettings, target: Path) -> None:
        base = _base_voice(voice.voice)
        voice_id = self._voice_ids.get(base)
        if voice_id is None:
            raise SynthError(f"espeak-ng (through pyttsx3) has no voice {voice.voice!r}")
        variant = voice.voice.split("+", 1)[1] if "+" in voice.voice else ""
        self._errors.clear()
        self._engine.setProperty("voice", f"{voice_id}+{variant}" if variant else voice_id)
        self._engine.setProperty("rate", voice.rate)
        self._engine.setProperty("pitch", voice.pitch)
        self._engine.save_to_file(text, str(target))
        self._engine.runAndWait()
        if self._errors:
            raise SynthError(f"pyttsx3/espeak-ng: {self._errors[0]}")
        in_use = str(self._engine.getProperty("voice"))
        if in_use.split("+", 1)[0] != voice_id:
            raise SynthError(f"pyttsx3 spoke with voice {in_use!r} instead of {voice_id!r}")


def _quiet_driver() -> None:
    """Route the espeak driver's print() calls to our log: "Audio saved to <file>" after every text.

    The driver prints from espeak-ng's callback, which may run after runAndWait has returned, and
    redirecting sys.stdout meanwhile would swallow every other thread's output in a server: so the
    name `print` in that one module is bound to a function that logs instead. Its other prints
    (playback errors) are kept, as warnings.
    """
    driver = sys.modules.get("pyttsx3.drivers.espeak")
    if driver is not None:
        driver.print = _driver_print  # type: ignore[attr-defined]


def _driver_print(*values: object, **_: object) -> None:
    message = " ".join(str(value) for value in values)
    if message.startswith("Audio saved to "):
        log.debug("pyttsx3: %s", message)
    else:
        log.warning("pyttsx3: %s", message)


_ENGINE: _Pyttsx3Engine | None = None
_ENGINE_LOCK = threading.Lock()  # espeak-ng's state is process-global: one text at a time


def _pyttsx3_engine() -> _Pyttsx3Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Pyttsx3Engine()
    return _ENGINE


def _synthesize_espeak_ng(text: str, voice: VoiceSettings, target: Path) -> None:
    if espeak_ng_path() is None:
        raise SynthError("espeak-ng is not installed")
    command = ["espeak-ng", "-v", voice.voice, "-s", str(voice.rate), "-p", str(voice.pitch)]
    command += ["-w", str(target), "--stdin"]
    try:
        done = subprocess.run(
            command, input=text, capture_output=True, text=True, timeout=_SYNTH_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise SynthError(f"espeak-ng took longer than {_SYNTH_TIMEOUT:.0f} s") from None
    if done.returncode != 0 or "does not exist" in done.stderr:
        raise SynthError(f"espeak-ng -v {voice.voice}: {done.stderr.strip() or f'exit {done.returncode}'}")
