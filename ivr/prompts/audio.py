"""Audio files on disk: the formats Asterisk plays natively, conversion with sox, inspection, hashing.

Asterisk's format_wav reads two kinds of RIFF file: `.wav` (8 kHz mono 16-bit signed PCM, slin) and
`.wav16` (16 kHz, slin16). Anything else in a `.wav` file fails to play, so every file the build leaves
behind is in one of those two shapes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import wave
from pathlib import Path

import attrs

NARROWBAND_RATE = 8000
WIDEBAND_RATE = 16000
NARROWBAND_EXT = ".wav"
WIDEBAND_EXT = ".wav16"

# Extensions an admin's recording may arrive in, besides .wav (sox reads all of them here; .sln/.ul/.al
# and .gsm are Asterisk's own raw formats, which sox knows the rate of).
HUMAN_SOURCE_EXTS = (
    ".mp3",
    ".flac",
    ".ogg",
    ".oga",
    ".aif",
    ".aiff",
    ".au",
    ".snd",
    ".gsm",
    ".sln",
    ".ul",
    ".al",
    ".amr",
    ".w64",
    ".wv",
    ".caf",
)

_SOX_TIMEOUT = 120.0


class AudioError(RuntimeError):
    """sox is missing, or could not read or write a file; the message names the file."""


@attrs.frozen
class WavInfo:
    rate: int
    channels: int
    sample_width: int  # bytes
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    @property
    def is_narrowband_native(self) -> bool:
        return self.rate == NARROWBAND_RATE and self.channels == 1 and self.sample_width == 2


def sox_path() -> str | None:
    return shutil.which("sox")


def read_wav_info(path: Path) -> WavInfo | None:
    """The header of a PCM RIFF/WAVE file, or None when it is not one (mp3 renamed .wav, float WAV, ...)."""
    try:
        with wave.open(str(path), "rb") as wav:
            return WavInfo(wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes())
    except (wave.Error, EOFError, OSError):
        return None


def source_rate(path: Path) -> int:
    """Sample rate of any file sox can read (soxi -r)."""
    info = read_wav_info(path) if path.suffix == NARROWBAND_EXT else None
    if info is not None:
        return info.rate
    out = _run_sox(["sox", "--i", "-r", str(path)], path)
    try:
        return int(out.strip())
    except ValueError:
        raise AudioError(f"{path}: sox reports no sample rate ({out.strip()!r})") from None


def convert(source: Path, target: Path, rate: int, *, normalize: bool = False) -> None:
    """Write `target` as RIFF 16-bit mono PCM at `rate`, atomically (temp file, then rename).

    `normalize` brings the peak to -3 dBFS: used for synthesised speech so every generated prompt has
    the same level; an admin's recording keeps the level it was recorded at.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    effects = ["rate", "-h", str(rate)]
    if normalize:
        effects += ["gain", "-n", "-3"]
    # -D: no dither, so the same input gives the same bytes (the manifest compares hashes).
    command = ["sox", "-D", str(source), "-t", "wav", "-e", "signed-integer", "-b", "16", "-c", "1"]
    command += [str(temp), *effects]
    try:
        _run_sox(command, source)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_sox(command: list[str], subject: Path) -> str:
    if sox_path() is None:
        raise AudioError("sox is not installed (Debian: apt-get install sox libsox-fmt-all)")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_SOX_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{subject}: sox took longer than {_SOX_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise AudioError(f"{subject}: sox failed: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout
