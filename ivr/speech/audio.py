"""Reading telephone WAV files and resampling them to the rate a Vosk model expects.

Asterisk's RECORD FILE writes a 44-byte header first and fixes the sizes when the recording
closes, so a file read while the call is being torn down (or a crashed recording) may declare
a data size of 0 or more than is on disk. The reader here trusts the bytes present, not the
header's sizes, which the stdlib `wave` module does not do.

Resampling is a windowed-sinc polyphase filter in pure Python (no numpy dependency):
`audioop.ratecv` is deprecated and gone in Python 3.13, and it interpolates linearly with no
low-pass, which leaves the images of 8 kHz speech in the 4-8 kHz band the Korean and small
Vosk models listen to (their mfcc.conf has --high-freq=7600). For the usual 8 kHz -> 16 kHz
case every second output sample is an input sample, so only half the outputs are filtered.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from functools import lru_cache
from operator import mul
from pathlib import Path

import attrs

PCM_FORMAT = 1
EXTENSIBLE_FORMAT = 0xFFFE
# Taps on each side of the centre for the interpolation kernel; 16 gives > 50 dB image rejection.
HALF_TAPS = 16


class AudioError(ValueError):
    """The file is not audio we can decode; the message says why."""


@attrs.frozen
class Pcm:
    """Mono signed 16-bit little-endian samples at `rate` Hz."""

    samples: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / 2 / self.rate


def read_wav(path: str | Path) -> Pcm:
    """Read a PCM WAV (any channel count, 8/16-bit) as mono 16-bit; tolerant of truncated files."""
    data = Path(path).read_bytes()
    return parse_wav(data, str(path))


def parse_wav(data: bytes, name: str = "<wav>") -> Pcm:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a RIFF/WAVE file")
    position = 12
    fmt: tuple[int, int, int, int] | None = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        body_start = position + 8
        if chunk_id == b"fmt ":
            if size < 16 or body_start + 16 > len(data):
                raise AudioError(f"{name}: fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body_start)
            if tag == EXTENSIBLE_FORMAT and size >= 40:
                (tag,) = struct.unpack_from("<H", data, body_start + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: data chunk before fmt chunk")
            # A size of 0 or beyond the end means the header was never finalised: take what is there.
            end = len(data) if size == 0 or body_start + size > len(data) else body_start + size
            return _to_mono16(data[body_start:end], fmt, name)
        position = body_start + size + (size & 1)
    if fmt is None:
        raise AudioError(f"{name}: no fmt chunk")
    # Header-only file (RECORD FILE that captured nothing): empty audio, not an error.
    return _to_mono16(b"", fmt, name)


def _to_mono16(raw: bytes, fmt: tuple[int, int, int, int], name: str) -> Pcm:
    tag, channels, rate, bits = fmt
    if tag != PCM_FORMAT:
        raise AudioError(f"{name}: WAV format tag {tag} is not PCM; record with format 'wav'")
    if channels < 1 or rate <= 0:
        raise AudioError(f"{name}: invalid fmt (channels={channels}, rate={rate})")
    if bits == 16:
        samples = array("h")
        usable = len(raw) - len(raw) % (2 * channels)
        samples.frombytes(raw[:usable])
        if sys.byteorder != "little":
            samples.byteswap()
    elif bits == 8:
        samples = array("h", ((b - 128) << 8 for b in raw[: len(raw) - len(raw) % channels]))
    else:
        raise AudioError(f"{name}: {bits}-bit samples are not supported (8 or 16)")
    if channels > 1:
        frames = len(samples) // channels
        samples = array(
            "h", (sum(samples[i * channels : (i + 1) * channels]) // channels for i in range(frames))
        )
    return Pcm(_little_endian_bytes(samples), rate)


def _little_endian_bytes(samples: array) -> bytes:
    if sys.byteorder != "little":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


@lru_cache(maxsize=16)
def _kernels(up: int, down: int) -> tuple[tuple[float, ...], ...]:
    """Per-phase FIR kernels of a Blackman-windowed sinc low-pass for an up/down ratio.

    Output sample n sits at input position n*down/up; phase p = (n*down) % up holds the taps for
    input samples floor(n*down/up) - half + 1 ... + half. The cut-off is the lower of the two
    Nyquist frequencies, so upsampling removes images and downsampling removes aliases.
    """
    cutoff = min(1.0, up / down)  # as a fraction of the input Nyquist frequency
    half = max(1, math.ceil(HALF_TAPS / cutoff))
    kernels = []
    for phase in range(up):
        offset = phase / up  # fractional input position of the output sample
        taps = []
        for k in range(-half + 1, half + 1):
            t = k - offset  # distance of input sample from the output position, in input samples
            x = t * cutoff
            sinc = 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
            w = t / half  # window argument in [-1, 1]
            window = _blackman(w)
            taps.append(cutoff * sinc * window)
        total = sum(taps)
        kernels.append(tuple(t / total for t in taps))  # unity gain at DC
    return tuple(kernels)


def _blackman(w: float) -> float:
    """Blackman window over [-1, 1]; zero outside."""
    if abs(w) >= 1:
        return 0.0
    return 0.42 + 0.5 * math.cos(math.pi * w) + 0.08 * math.cos(2 * math.pi * w)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Resample mono 16-bit audio to `rate` Hz with a windowed-sinc polyphase low-pass filter."""
    if rate <= 0:
        raise AudioError(f"target rate must be positive, got {rate}")
    if pcm.rate == rate or not pcm.samples:
        return Pcm(pcm.samples, rate)
    g = math.gcd(pcm.rate, rate)
    up, down = rate // g, pcm.rate // g
    kernels = _kernels(up, down)
    half = len(kernels[0]) // 2
    source = array("h")
    source.frombytes(pcm.samples)
    if sys.byteorder != "little":
        source.byteswap()
    count = len(source)
    # Pad so every kernel window is in range: the signal is silent outside the recording.
    padded = [0.0] * half + list(source) + [0.0] * (half + 1)
    out_count = count * up // down
    out = array("h", bytes(2 * out_count))
    # An exact identity phase (phase 0 when upsampling by an integer) is a copy, not a filter.
    identity = [
        max(range(len(kern)), key=lambda i: abs(kern[i])) if _is_impulse(kern) else -1 for kern in kernels
    ]
    for n in range(out_count):
        position = n * down
        base, phase = divmod(position, up)
        kern = kernels[phase]
        start = base + 1  # padded index of input sample base - half + 1
        tap = identity[phase]
        if tap >= 0:
            value = padded[start + tap]
        else:
            value = sum(map(mul, kern, padded[start : start + 2 * half]))
        out[n] = -32768 if value < -32768 else 32767 if value > 32767 else round(value)
    return Pcm(_little_endian_bytes(out), rate)


def _is_impulse(kernel: tuple[float, ...]) -> bool:
    peak = max(abs(t) for t in kernel)
    return abs(peak - 1.0) < 1e-9 and sum(abs(t) for t in kernel) - peak < 1e-6
