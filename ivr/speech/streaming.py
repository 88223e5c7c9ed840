"""Decoding a caller's answer while it is being spoken, in the speech service's worker pool.

One SpeechStream per answer. The event loop hands it telephone frames as they arrive; it batches them
(`batch_bytes`, 100 ms: fewer, larger calls into Kaldi cost less than one per 20 ms frame) and keeps
at most one decode job per stream in the pool at a time, so frames reach Kaldi in order without a lock.
When the caller stops, `finish()` decodes the last batch and asks for the final result: only that last
batch lies between the end of speech and the decision. That final job is urgent (ivr.speech.pool):
it goes before other streams' batches, and takes back its own batch if that is still queued, so an
answer waits for its own audio only, even when the pool is behind.

The 8 kHz frames go to Kaldi as they are, with the recogniser told their rate: Kaldi's online feature
pipeline resamples them to the model's rate in C++ with its windowed-sinc resampler, keeping the filter
state from one batch to the next (a per-batch resampler in Python would click at every batch edge and,
holding the GIL, cost more than the decoding itself). tests/test_audiosocket_speech.py checks the words.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ivr.speech.models import LoadedModel, vosk_module
from ivr.speech.pool import DecodePool
from ivr.speech.recognizer import Recognition, Word, build_grammar

log = logging.getLogger(__name__)

BATCH_BYTES = 1600  # 100 ms at 8 kHz


class StreamClosed(Exception):
    """The stream was closed (caller gone, engine stopping) before its result was asked for."""


class SpeechStream:
    def __init__(
        self,
        model: LoadedModel,
        phrases: Sequence[str] | None,
        pool: DecodePool,
        on_close: Callable[[], None],
        rate: int = 8000,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.model = model
        self.phrases = None if phrases is None else tuple(phrases)
        self.rate = rate
        self.batch_bytes = batch_bytes
        self._pool = pool
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._recognizer: Any = None
        self._pending = bytearray()
        self._job: asyncio.Future[None] | None = None
        self._queued: tuple[Future[None], bytes] | None = None  # the pool's side of _job, and its audio
        self._finishing = False
        self._closed = False
        self._failed: BaseException | None = None
        self.bytes_fed = 0
        self.decode_seconds = 0.0  # worker time spent on this stream
        self.empty_grammar = False

    # --- the event loop's side -------------------------------------------------------------------
    def feed(self, pcm: bytes) -> None:
        """Queue audio for decoding; never blocks."""
        if self._closed or self.empty_grammar:
            return
        self._pending += pcm
        self.bytes_fed += len(pcm)
        if self._job is None and len(self._pending) >= self.batch_bytes:
            self._submit()

    def _submit(self) -> None:
        data = bytes(self._pending)
        self._pending.clear()
        try:
            queued = self._pool.submit(self._accept, data)
        except RuntimeError as exc:  # the service was closed (engine stopping) while the caller spoke
            self._failed = exc
            return
        self._queued = (queued, data)
        job = asyncio.wrap_future(queued, loop=self._loop)
        self._job = job
        job.add_done_callback(self._job_done)

    def _job_done(self, job: asyncio.Future[None]) -> None:
        if self._job is job:
            self._job = None
            self._queued = None
        if not job.cancelled() and job.exception() is not None:
            self._failed = job.exception()
            return
        if (
            not self._closed
            and not self._finishing
            and self._failed is None
            and len(self._pending) >= self.batch_bytes
        ):
            self._submit()

    async def finish(self) -> Recognition:
        """Decode what is left and return what was said; raises when decoding failed."""
        self._finishing = True
        queued = self._queued
        if queued is not None and queued[0].cancel():
            # Still waiting behind other streams: its audio goes into the urgent final job instead.
            self._pending[:0] = queued[1]
            self._job = self._queued = None
        while self._job is not None:
            job = self._job
            if job.done():
                # Its done-callback (which may submit the next batch) is queued but has not run:
                # awaiting a finished future does not yield, so yield once to let it run.
                await asyncio.sleep(0)
            else:
                await asyncio.wait([job])
        if self._closed:
            raise StreamClosed("speech stream closed")
        if self._failed is not None:
            raise self._failed
        started = time.perf_counter()
        rest = bytes(self._pending)
        self._pending.clear()
        result = await asyncio.wrap_future(self._pool.submit_urgent(self._final, rest), loop=self._loop)
        result_wait = time.perf_counter() - started
        log.debug("stream final result after %.3f s", result_wait)
        return result

    def close(self) -> None:
        """Release the stream's slot; a job still in the pool finishes and is forgotten."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            self._on_close()

    # --- the worker's side -------------------------------------------------------------------------
    def _make_recognizer(self) -> Any:
        vosk = vosk_module()
        if self.phrases is None:
            recognizer = vosk.KaldiRecognizer(self.model.model, self.rate)
        else:
            grammar = build_grammar(self.phrases, self.model)
            if not any(g != self.model.unknown_word for g in grammar):
                self.empty_grammar = True  # nothing sayable: the answer can only be unknown
                return None
            grammar_json = json.dumps(grammar, ensure_ascii=False)
            recognizer = vosk.KaldiRecognizer(self.model.model, self.rate, grammar_json)
        recognizer.SetWords(True)
        return recognizer

    def _accept(self, data: bytes) -> None:
        started = time.perf_counter()
        if self._recognizer is None and not self.empty_grammar:
            self._recognizer = self._make_recognizer()
        if self._recognizer is not None and data:
            self._recognizer.AcceptWaveform(data)
        self.decode_seconds += time.perf_counter() - started

    def _final(self, data: bytes) -> Recognition:
        self._accept(data)
        started = time.perf_counter()
        audio_seconds = self.bytes_fed / 2 / self.rate
        if self._recognizer is None:
            return Recognition("", (), 0.0, self.decode_seconds, self.phrases is not None, audio_seconds)
        result = json.loads(self._recognizer.FinalResult())
        self._recognizer = None  # free Kaldi's decoder state now, not when the stream is collected
        words = tuple(
            Word(w["word"], float(w.get("conf", 1.0)), float(w["start"]), float(w["end"]))
            for w in result.get("result", ())
        )
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
        self.decode_seconds += time.perf_counter() - started
        return Recognition(
            result.get("text", ""),
            words,
            confidence,
            self.decode_seconds,
            self.phrases is not None,
            audio_seconds,
        )
