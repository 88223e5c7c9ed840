"""Voice-activity detection on 20 ms telephone frames: when does the caller start and stop speaking?

The decision, frame by frame, in words:

1. A frame's level is the RMS in dBFS of its pre-emphasised samples (x[n] - 15/16 x[n-1], a gentle
   high-pass as in speech coders): hum and rumble below ~300 Hz, where telephone speech has little,
   count for almost nothing. Its zero-crossing rate (ZCR) is the fraction of neighbouring raw samples
   that change sign: voiced speech stays below ~0.25 at 8 kHz; hiss and white noise cross on about half.
2. A *noise floor* follows the level of the frames that are not speech. The first `calibration_frames`
   (200 ms) only measure it (the quietest frame), so noise already on the line when the turn begins
   sets the bar; after that it drops at once to a quieter frame and rises slowly
   (`floor_rise_db_per_s`), so steady line noise lifts it within seconds while speech, which is not
   fed to it, never does.
3. A frame is *voiced* when its level is `margin_db` above the floor, above `min_level_dbfs`, with a ZCR
   below `max_zcr`, and, while our own prompt may be echoing back, above the loudest prompt frame sent
   in the last `echo_window` frames minus `echo_loss_db` (the echo return loss we rely on): echo of the
   prompt is a copy of it, delayed and at least that much quieter, so it stays under this bar while a
   caller talking over the prompt at a normal level does not.
4. *Onset* needs `onset_frames` voiced frames in a row (60 ms: a click, a cough's edge or a DTMF
   transient is shorter). The onset is dated to the first of them, so nothing said is lost.
5. *End of speech* comes after `hangover_frames` frames in a row that are not voiced (200 ms: long
   enough to bridge the stop consonants and short pauses inside a phrase, short enough to answer the
   caller within 300 ms of their last word).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence
from operator import mul

import attrs

FRAME_MS = 20
PRE_EMPHASIS = 0.9375
SILENCE_DBFS = -96.0  # level given to digital silence (log of 0)


@attrs.frozen
class VadSettings:
    margin_db: float = 10.0
    min_level_dbfs: float = -40.0
    max_zcr: float = 0.35
    onset_frames: int = 3
    hangover_frames: int = 10
    echo_loss_db: float = 12.0
    echo_window: int = 20  # frames of prompt history an echo may lag behind (400 ms)
    floor_rise_db_per_s: float = 6.0
    calibration_frames: int = 10


# The sign of each little-endian sample is the top bit of its odd byte: 1 for negative.
_SIGN = bytes(1 if b >= 0x80 else 0 for b in range(256))
_LITTLE = sys.byteorder == "little"


def _samples(pcm: bytes) -> Sequence[int]:
    """The frame's samples without copying them (a view on the bytes) where the host is little-endian."""
    even = pcm[: len(pcm) - len(pcm) % 2]
    if _LITTLE:
        return memoryview(even).cast("h")
    samples = array("h")
    samples.frombytes(even)
    samples.byteswap()
    return samples


def frame_level(samples: Sequence[int]) -> float:
    """Pre-emphasised RMS level in dBFS. The sums run in C (map(mul)): sum((x1 - a*x0)^2) expands to
    sum(x1^2) + a^2 sum(x0^2) - 2a sum(x1*x0), and both sums of squares come from one pass over all
    samples (minus the first or the last square)."""
    count = len(samples)
    if count < 2:
        return SILENCE_DBFS
    squares = sum(map(mul, samples, samples))
    first, last = samples[0], samples[-1]
    energy = (
        (squares - first * first)
        + PRE_EMPHASIS * PRE_EMPHASIS * (squares - last * last)
        - 2 * PRE_EMPHASIS * sum(map(mul, samples[1:], samples[:-1]))
    ) / (count - 1)
    if energy <= 0:
        return SILENCE_DBFS
    return max(10.0 * math.log10(energy / (32768.0 * 32768.0)), SILENCE_DBFS)


def zero_crossing_rate(pcm: bytes) -> float:
    """Fraction of neighbouring samples (16-bit little-endian) whose signs differ. One sign byte (0/1)
    per sample, read as one big integer: XOR with itself shifted by a byte leaves a 1 where the sign
    changes (plus the first sign itself), and bit_count() counts them, all in C."""
    signs = pcm[1 : len(pcm) - len(pcm) % 2 : 2].translate(_SIGN)
    count = len(signs)
    if count < 2:
        return 0.0
    packed = int.from_bytes(signs, "big")
    return ((packed ^ (packed >> 8)).bit_count() - signs[0]) / (count - 1)


def frame_features(pcm: bytes) -> tuple[float, float]:
    """(pre-emphasised level in dBFS, zero-crossing rate) of 16-bit little-endian mono samples."""
    return frame_level(_samples(pcm)), zero_crossing_rate(pcm)


class VoiceActivityDetector:
    """Feed every inbound frame in order; `push` says when speech starts ("onset") and ends ("end").

    After "onset", `onset_age` is how many frames ago (counting the current one) the speech began.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self.floor = 0.0  # replaced by the quietest calibration frame
        self._rise_per_frame = self.settings.floor_rise_db_per_s * FRAME_MS / 1000
        self.in_speech = False
        self._voiced_run = 0
        self._quiet_run = 0
        self.onset_age = 0
        self.frames = 0
        self.last_voiced = -1  # index of the last voiced frame

    def bar(self, echo_reference: float | None = None) -> float:
        """The level a frame must pass to be voice (if its ZCR is low enough)."""
        s = self.settings
        if self.frames < s.calibration_frames:
            return math.inf
        bar = max(self.floor + s.margin_db, s.min_level_dbfs)
        if echo_reference is not None:
            bar = max(bar, echo_reference - s.echo_loss_db)
        return bar

    def voiced(self, level: float, zcr: float, echo_reference: float | None = None) -> bool:
        return level > self.bar(echo_reference) and zcr < self.settings.max_zcr

    def push(self, pcm: bytes, echo_reference: float | None = None) -> str | None:
        """One frame; `echo_reference` is the loudest prompt level (dBFS) that may be echoing now."""
        level = frame_level(_samples(pcm))
        # Only frames loud enough to be voice need their zero-crossing rate.
        zcr = zero_crossing_rate(pcm) if level > self.bar(echo_reference) else 0.0
        return self.push_features(level, zcr, echo_reference)

    def push_features(self, level: float, zcr: float, echo_reference: float | None = None) -> str | None:
        s = self.settings
        voiced = self.voiced(level, zcr, echo_reference)
        self.frames += 1
        if voiced:
            self.last_voiced = self.frames - 1
        else:
            self._track_floor(level)
        if not self.in_speech:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= s.onset_frames:
                self.in_speech = True
                self._quiet_run = 0
                self.onset_age = self._voiced_run
                return "onset"
            return None
        self._quiet_run = 0 if voiced else self._quiet_run + 1
        if self._quiet_run >= s.hangover_frames:
            self.in_speech = False
            self._voiced_run = 0
            return "end"
        return None

    def _track_floor(self, level: float) -> None:
        if self.frames <= self.settings.calibration_frames:
            self.floor = level if self.frames == 1 else min(self.floor, level)
        elif level < self.floor:
            self.floor = max(level, SILENCE_DBFS)
        else:
            self.floor = min(level, self.floor + self._rise_per_frame)
