"""Telephone WAV reading and resampling, on generated signals (no Vosk)."""

from __future__ import annotations

import math
import struct
from array import array

import pytest

from ivr.speech.audio import AudioError, Pcm, parse_wav, resample


def tone(frequency: float, rate: int, seconds: float, amplitude: int = 8000) -> Pcm:
    count = int(rate * seconds)
    samples = array(
        "h", (int(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count))
    )
    return Pcm(samples.tobytes(), rate)


def level(pcm: Pcm, frequency: float) -> float:
    """Amplitude of one frequency (a single DFT bin)."""
    samples = array("h")
    samples.frombytes(pcm.samples)
    w = 2 * math.pi * frequency / pcm.rate
    re = sum(v * math.cos(w * i) for i, v in enumerate(samples))
    im = sum(v * math.sin(w * i) for i, v in enumerate(samples))
    return 2 * math.hypot(re, im) / len(samples)


def wav_bytes(
    samples: bytes, rate: int = 8000, channels: int = 1, bits: int = 16, data_size: int | None = None
) -> bytes:
    block = channels * bits // 8
    size = len(samples) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", size) + samples
    )  # fmt: skip


def test_reads_mono_16_bit_as_asterisk_writes_it():
    pcm = tone(440, 8000, 0.1)
    parsed = parse_wav(wav_bytes(pcm.samples))
    assert parsed == pcm and parsed.seconds == pytest.approx(0.1)


def test_header_only_file_is_empty_audio():
    assert parse_wav(wav_bytes(b"")).samples == b""


def test_unfinalised_header_takes_the_bytes_present():
    samples = tone(440, 8000, 0.05).samples
    assert parse_wav(wav_bytes(samples, data_size=0)).samples == samples  # sizes never written
    cut = wav_bytes(samples, data_size=len(samples))[: 44 + 101]  # truncated mid-sample
    assert parse_wav(cut).samples == samples[:100]


def test_stereo_and_8_bit_become_mono_16_bit():
    stereo = array("h", [1000, 3000, -2000, -4000]).tobytes()
    assert array("h", parse_wav(wav_bytes(stereo, channels=2)).samples).tolist() == [2000, -3000]
    assert array("h", parse_wav(wav_bytes(bytes([128, 255, 0]), bits=8)).samples).tolist() == [
        0,
        127 << 8,
        -128 << 8,
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"OggS" + bytes(40), "not a RIFF/WAVE"),
        (b"RIFF" + bytes(4) + b"WAVE", "no fmt chunk"),
        (wav_bytes(b"", bits=24), "24-bit"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(AudioError, match=message):
        parse_wav(data)


def test_upsampling_keeps_the_tone_and_removes_its_image():
    narrow = tone(1000, 8000, 0.5)
    wide = resample(narrow, 16000)
    assert wide.rate == 16000 and len(wide.samples) == 2 * len(narrow.samples)
    assert level(wide, 1000) == pytest.approx(8000, rel=0.01)
    # Zero-stuffing would put an image at 8000 - 1000 = 7 kHz, inside the models' 20-7600 Hz band.
    assert level(wide, 7000) < 8000 * 10 ** (-50 / 20)


def test_downsampling_removes_what_would_alias():
    wide = tone(7000, 22050, 0.3)  # below 16 kHz's Nyquist: passes
    assert level(resample(wide, 16000), 7000) > 6000
    too_high = tone(9000, 22050, 0.3)
    # 9 kHz would fold to 16000 - 9000 = 7 kHz.
    assert level(resample(too_high, 16000), 7000) < 8000 * 10 ** (-40 / 20)


def test_same_rate_and_empty_audio_pass_through():
    pcm = tone(300, 16000, 0.01)
    assert resample(pcm, 16000) == pcm
    assert resample(Pcm(b"", 8000), 16000) == Pcm(b"", 16000)
    with pytest.raises(AudioError):
        resample(pcm, 0)
