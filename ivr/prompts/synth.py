"""Text to raw speech with espeak-ng, through pyttsx3 by default or the espeak-ng program.

pyttsx3 2.99's espeak driver works headless (AUDIO_OUTPUT_RETRIEVAL, no sound device needed) and is the
default. It runs espeak-ng, a C library, in a worker process (ivr/prompts/pyttsx3_worker.py), one per
process that synthesises, started on first use and kept for every later text: a crash of the library
(espeak-ng has segfaulted there, about once in a dozen test runs) then costs one prompt, never the
engine and its calls nor a build. When the worker dies or does not answer within WORKER_TIMEOUT (then it
is killed), one warning names the text, the voice and how it ended; the espeak-ng program speaks that
text with the same voice, rate and pitch, and the next text starts a new worker. It exits with its
parent (EOF on its pipe) and is stopped and reaped at exit (shutdown_worker).

The driver's habits handled rather than trusted:
- an unknown voice name does not raise, and it speaks on in the previous voice: the worker resolves
  voices against the voice list first and compares the voice in use after synthesis (SynthError).
- it stamps every file 22050 Hz, which is espeak-ng's own rate but not that of mbrola voices (16 kHz).
  Those voices (names starting "mb-") go through the espeak-ng program, which writes the true rate; so
  does any language whose voice settings say `engine = "espeak-ng"`.
- the driver runs espeak-ng in retrieval mode, where espeak-ng calls back from its own thread, and
  collects the samples without synchronisation: measured here, about 1 utterance in 100 comes back
  with no samples at all (the others are complete, within a millisecond of the program's output).
  An empty result is spoken again by the espeak-ng program.
- it prints "Audio saved to <file>" for every text, from that callback thread: the worker sends the
  print back, and it goes to our log at debug level, so builds and the server log show none of it.
espeak-ng keeps global state, so the worker speaks one text at a time (a lock here); the build overlaps
that with the sox conversions of other prompts in worker threads.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import attrs

from ivr.config import PromptSettings
from ivr.prompts.pyttsx3_worker import SpeechRequest
from ivr.prompts.worker_process import WorkerLost, WorkerProcess
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
        if _speak_in_worker(text, voice, target) and _has_audio(target):
            return
        # The worker died or hung, or pyttsx3 lost the utterance (about 1 in 100 here, see the module
        # docstring): the program speaks it instead, with the same voice, rate and pitch.
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


# How long the worker may take over one text, its start included, before it is taken as hung and killed.
# A prompt takes well under a second; the margin is for a machine busy with other work.
WORKER_TIMEOUT = 30.0

_WORKER: WorkerProcess | None = None
_WORKER_LOCK = threading.Lock()  # espeak-ng's state is process-global: one text at a time in the worker


def worker_pid() -> int | None:
    """The process id of this process's pyttsx3 worker, if one has been started (and not shut down)."""
    worker = _WORKER
    return worker.pid if worker is not None else None


def shutdown_worker() -> None:
    """Stop the pyttsx3 worker and reap it (at exit; a later synthesize() starts another)."""
    global _WORKER
    with _WORKER_LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None:
        worker.close()


def _speak_in_worker(text: str, voice: VoiceSettings, target: Path) -> bool:
    """Whether the worker spoke: False when it died or hung (logged), and the program is to speak."""
    global _WORKER
    # absolute: the worker's working directory is the one this process had when the worker started
    request = SpeechRequest(text, voice.voice, voice.rate, voice.pitch, os.path.abspath(target))
    with _WORKER_LOCK:
        worker = _running_worker()
        try:
            answer = worker.ask(request, WORKER_TIMEOUT)
        except WorkerLost as lost:
            _WORKER = None  # gone and reaped: the next text starts a fresh worker
            log.warning(
                "pyttsx3 worker (pid %d) %s; text %r, voice %s: the espeak-ng program speaks this prompt, "
                "and a new worker starts for the next text",
                worker.pid, lost, _excerpt(text), voice.voice,
            )  # fmt: skip
            return False
    for level, message in answer.notes:
        log.log(level, "pyttsx3: %s", message)
    if answer.error:
        raise SynthError(answer.error)
    return True


def _running_worker() -> WorkerProcess:
    """The worker, started now if there is none or it died since the last text. Under _WORKER_LOCK."""
    global _WORKER
    if _WORKER is not None:
        ended = _WORKER.ended()
        if ended is not None:
            log.warning("pyttsx3 worker (pid %d) %s between texts; a new one starts", _WORKER.pid, ended)
            _WORKER = None
    if _WORKER is None:
        try:
            _WORKER = WorkerProcess()
        except OSError as exc:
            raise SynthError(f"the pyttsx3 worker could not start ({exc})") from None
    return _WORKER


def _excerpt(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _forget_inherited_worker() -> None:
    """After fork(): the worker is the parent's, and the lock may have been held by one of its threads."""
    global _WORKER, _WORKER_LOCK
    if _WORKER is not None:
        _WORKER.forget()
    _WORKER = None
    _WORKER_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_inherited_worker)
atexit.register(shutdown_worker)


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
