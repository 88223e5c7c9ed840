"""Decoding recordings with Vosk in a bounded worker pool, and the service the interpreter calls.

Vosk's Python binding calls the C library through cffi, which releases the GIL for the call, so
a decode in a worker thread leaves the event loop free (tests/test_speech_vosk.py checks this
with a ticker). The pool is bounded twice: `workers` threads decode, and at most `max_pending`
more may wait; past that `recognize` returns None at once and the caller falls back to DTMF,
because a caller kept waiting for a queued decode is worse than one asked to press a key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ivr.config import SpeechSettings
from ivr.speech.audio import read_wav, resample
from ivr.speech.models import LoadedModel, ModelUnavailable, load_model, vosk_module
from ivr.speech.pool import DecodePool
from ivr.texts import LANGUAGES

if TYPE_CHECKING:
    from ivr.speech.streaming import SpeechStream

log = logging.getLogger(__name__)

# Bytes handed to the recogniser per call: 0.25 s at 16 kHz, the size Vosk's own examples use.
CHUNK_BYTES = 8000


@attrs.frozen
class Word:
    word: str
    confidence: float
    start: float
    end: float


@attrs.frozen
class Recognition:
    text: str
    words: tuple[Word, ...]
    confidence: float  # mean of the word confidences; 0 when nothing was recognised
    decode_seconds: float  # reading, resampling and decoding, in the worker
    restricted: bool  # decoded against the node's phrases rather than free-form
    audio_seconds: float = 0.0

    def confident_text(self, min_confidence: float) -> str:
        """The words at or above a confidence, without the out-of-grammar marker."""
        return " ".join(w.word for w in self.words if w.confidence >= min_confidence and w.word != "[unk]")


def build_grammar(phrases: Sequence[str], model: LoadedModel) -> list[str]:
    """The node's phrases, lowercased, reduced to words the model knows, plus "[unk]" if it has it.

    A word the model does not know would be dropped by Vosk with a warning on every decode; it is
    dropped here once instead, keeping the rest of its phrase (the matcher compares content words
    regardless of order, so "живой человек" still matches on "человек").
    """
    grammar: list[str] = []
    for phrase in phrases:
        words = [w for w in phrase.lower().split() if model.knows(w)]
        kept = " ".join(words)
        if kept and kept not in grammar:
            grammar.append(kept)
    if model.unknown_word:
        grammar.append(model.unknown_word)
    return grammar


def decode_file(model: LoadedModel, wav_path: str | Path, phrases: Sequence[str] | None) -> Recognition:
    """Blocking: read, resample to the model's rate and decode one recording."""
    started = time.perf_counter()
    pcm = read_wav(wav_path)
    pcm = resample(pcm, model.sample_rate)
    vosk = vosk_module()
    if phrases is None:
        recognizer = vosk.KaldiRecognizer(model.model, model.sample_rate)
    else:
        grammar = build_grammar(phrases, model)
        if not any(g != model.unknown_word for g in grammar):
            # Nothing sayable is left; decoding could only ever produce "[unk]".
            return Recognition("", (), 0.0, time.perf_counter() - started, True, pcm.seconds)
        grammar_json = json.dumps(grammar, ensure_ascii=False)
        recognizer = vosk.KaldiRecognizer(model.model, model.sample_rate, grammar_json)
    recognizer.SetWords(True)
    data = pcm.samples
    for offset in range(0, len(data), CHUNK_BYTES):
        recognizer.AcceptWaveform(data[offset : offset + CHUNK_BYTES])
    result = json.loads(recognizer.FinalResult())
    words = tuple(
        Word(w["word"], float(w.get("conf", 1.0)), float(w["start"]), float(w["end"]))
        for w in result.get("result", ())
    )
    confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
    elapsed = time.perf_counter() - started
    return Recognition(result.get("text", ""), words, confidence, elapsed, phrases is not None, pcm.seconds)


@attrs.define
class SpeechStats:
    decoded: int = 0
    rejected_overload: int = 0  # returned None because the pool was full
    unavailable: int = 0  # asked for a language with no model
    failed: int = 0  # the file or the decoder raised


class SpeechService:
    """Loads each configured model once and decodes recordings for every call on the engine."""

    def __init__(
        self,
        models: dict[str, str],
        workers: int = 2,
        max_pending: int = 8,
        max_streams: int = 200,
        niceness: int = 10,
    ) -> None:
        if workers < 1:
            raise ValueError(f"speech.workers must be at least 1, got {workers}")
        if max_pending < 0:
            raise ValueError(f"speech.max_pending must be 0 or more, got {max_pending}")
        self.model_paths = dict(models)
        self.workers = workers
        self.max_pending = max_pending
        self.max_streams = max_streams
        self.streams = 0  # answers being decoded as they are spoken (ivr.speech.streaming)
        self.stats = SpeechStats()
        self._models: dict[str, LoadedModel] = {}
        self._pool = DecodePool(workers, niceness=niceness)
        # Decodes submitted and not finished; released by the worker, so a caller who hangs up
        # mid-decode does not free a slot that is still busy.
        self._in_flight = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SpeechSettings) -> SpeechService:
        return cls(
            settings.models,
            workers=settings.workers,
            max_pending=settings.max_pending,
            max_streams=settings.max_streams,
        )

    async def start(self) -> None:
        """Load every configured model in the pool; log one line per language left DTMF-only."""
        loop = asyncio.get_running_loop()
        languages = list(dict.fromkeys([*LANGUAGES, *self.model_paths]))
        jobs = {
            lang: loop.run_in_executor(self._pool, load_model, lang, path)
            for lang, path in self.model_paths.items()
            if path
        }
        for lang in languages:
            if lang not in jobs:
                log.warning("speech: %s is DTMF-only: no model configured (speech.models.%s)", lang, lang)
                continue
            try:
                loaded = await jobs[lang]
            except ModelUnavailable as exc:
                log.warning("speech: %s is DTMF-only: %s", lang, exc)
                continue
            self._models[lang] = loaded
            log.info("speech: %s model loaded from %s (%d Hz)", lang, loaded.path, loaded.sample_rate)

    def available(self, language: str) -> bool:
        return language in self._models

    def model(self, language: str) -> LoadedModel | None:
        return self._models.get(language)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def recognize(
        self, wav_path: str | Path, language: str, phrases: Sequence[str] | None = None
    ) -> Recognition | None:
        """Decode a recording; None when the language has no model, the pool is full or decoding failed.

        `phrases` restricts the recogniser to those phrases (plus "[unk]"); None decodes free-form.
        """
        model = self._models.get(language)
        if model is None:
            self.stats.unavailable += 1
            return None
        with self._lock:
            if self._in_flight >= self.workers + self.max_pending:
                busy = self._in_flight
                admitted = False
            else:
                self._in_flight += 1
                admitted = True
        if not admitted:
            self.stats.rejected_overload += 1
            log.warning("speech: pool full (%d decoding or waiting), caller falls back to DTMF", busy)
            return None
        chosen = None if phrases is None else tuple(phrases)
        try:
            # The caller has finished speaking and waits: before batches of answers still spoken.
            future = self._pool.submit_urgent(decode_file, model, wav_path, chosen)
        except RuntimeError:  # the pool was shut down by close()
            self._release(None)
            return None
        future.add_done_callback(self._release)
        try:
            result = await asyncio.wrap_future(future)
        except Exception as exc:
            self.stats.failed += 1
            log.warning("speech: could not decode %s (%s): %s", wav_path, language, exc)
            return None
        self.stats.decoded += 1
        return result

    def open_stream(
        self, language: str, phrases: Sequence[str] | None, rate: int = 8000
    ) -> SpeechStream | None:
        """A decoder fed while the caller speaks, sharing this pool; None when the language has no
        model or `max_streams` answers are already being decoded (the caller then records as before)."""
        from ivr.speech.streaming import SpeechStream

        model = self._models.get(language)
        if model is None:
            self.stats.unavailable += 1
            return None
        if self.streams >= self.max_streams:
            self.stats.rejected_overload += 1
            log.warning("speech: %d streams already decoding; this answer is recorded instead", self.streams)
            return None
        self.streams += 1
        return SpeechStream(model, phrases, self._pool, self._stream_closed, rate)

    def _stream_closed(self) -> None:
        self.streams -= 1

    def _release(self, _future: object) -> None:
        with self._lock:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop the pool; decodes already running finish, waiting ones are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._models.clear()
