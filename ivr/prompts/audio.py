"""Audio files on disk: the formats Asterisk plays natively, conversion with sox, inspection, hashing.

Asterisk's format_wav reads two kinds of RIFF file: `.wav` (8 kHz mono 16-bit signed PCM, slin) and
`.wav16` (16 kHz, slin16). Anything else in a `.wav` file fails to play, so every file the build leaves
behind is in one of those two shapes.
"""

from __future__ import annotations

import array
import hashlib
import math
import os
import re
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

# Every ending a recording may have, .wav included: a name's own `.wav` is what Asterisk plays, any
# other of these (`.mp3`, or `.WAV` from a Windows tool) is converted into it.
RECORDING_EXTS = (NARROWBAND_EXT, *HUMAN_SOURCE_EXTS)

# A recording whose loudest sample stays below this is silence (a muted microphone, an empty take):
# callers would hear nothing where the prompt should speak. Speech peaks around -6 to -1 dBFS, and even
# a quiet take above -25.
SILENT_BELOW_DBFS = -40.0
# A header may promise more sound than the file holds (a copy that stopped half-way): below this share
# of it, and at least this far short, the recording is cut. The slack is for formats whose length sox
# estimates rather than reads.
_CUT_SHORT_SHARE = 0.9
_CUT_SHORT_SECONDS = 0.1
# An MP3 (or any format without a length in its header) copied half-way reads as a whole, shorter file.
# What tells it is the text: a recording that would have to be spoken at over three times an ordinary
# pace (`needs`, below) cannot hold all of it. A third is far beyond the briskest speaker (about twice an
# ordinary pace, still understood), so a good take is never refused for it.
TOO_SHORT_SHARE = 1 / 3

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


def recording_fault(path: Path, needs: float = 0.0) -> str | None:
    """What makes an admin's recording unfit to play, or None when it is sound audio.

    `needs`: the seconds its text takes said at an ordinary pace (0: not known); a recording under
    TOO_SHORT_SHARE of that is refused as cut short.
    The answer completes a sentence that starts with the file's name: "... is not audio sox can read
    (sox: WAVE: RIFF header not found)". AudioError when sox is missing (nothing can be told then).
    """
    if path.stat().st_size == 0:
        return "is an empty file (0 bytes)"
    info = _sox(["sox", "--i", "-D", str(path)], path)
    if info.returncode != 0:
        return f"is not audio sox can read (sox: {_sox_reason(info.stderr, path)})"
    decoded = _sox(["sox", "-D", str(path), "-t", "raw", *_PCM_8K_MONO, "-"], path, binary=True)
    if decoded.returncode != 0:
        return (
            f"is not audio sox can read (sox: {_sox_reason(decoded.stderr.decode(errors='replace'), path)})"
        )
    samples = array.array("h", decoded.stdout[: len(decoded.stdout) // 2 * 2])
    if not samples:
        return "holds no sound (a header with no audio after it)"
    held = len(samples) / NARROWBAND_RATE
    return _cut_short(_float_or_zero(info.stdout), held) or _too_short(held, needs) or _silent(samples)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


# sox's output options for what the phone line carries: 16-bit signed mono at 8 kHz.
_PCM_8K_MONO = ("-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(NARROWBAND_RATE))


def _cut_short(declared: float, held: float) -> str | None:
    if declared - held > _CUT_SHORT_SECONDS and held < _CUT_SHORT_SHARE * declared:
        return (
            f"is cut short: its header promises {declared:.1f} s of sound, the file holds {held:.2f} s "
            "(a copy that did not finish?)"
        )
    return None


def _too_short(held: float, needs: float) -> str | None:
    if held < TOO_SHORT_SHARE * needs:
        return (
            f"is far too short for its text: {held:.2f} s of sound, where saying the text takes some "
            f"{needs:.1f} s at an ordinary pace, {TOO_SHORT_SHARE * needs:.1f} s even at three times that "
            "(cut short by a copy that did not finish? an MP3 records no length to check it by)"
        )
    return None


def _silent(samples: array.array) -> str | None:
    peak = max(max(samples), -min(samples))
    if peak == 0:
        return "is silent (every sample is zero; a muted microphone?)"
    level = 20 * math.log10(peak / 32768)
    if level < SILENT_BELOW_DBFS:
        return f"is silent (its loudest sound is at {level:.0f} dBFS; a muted microphone?)"
    return None


def _float_or_zero(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        return 0.0


def _sox_reason(stderr: str, path: Path) -> str:
    """sox's complaint in a few words, without "sox FAIL formats:" and the file's path (the message names
    the file already); a bare "can't open input file" gets the warning that said why, if there was one."""
    said: dict[str, list[str]] = {"FAIL": [], "WARN": []}
    for line in stderr.splitlines():
        found = re.match(r"sox (FAIL|WARN) [\w-]+: (.*)", line.strip())
        if found is not None:
            words = found[2].replace(f" `{path}'", "").replace(f"`{path}'", "").strip().rstrip(":")
            said[found[1]].append(words.strip())
    if not said["FAIL"]:
        return "no reason given"
    reason = said["FAIL"][-1]
    if ":" not in reason and said["WARN"]:
        reason = f"{reason}: {said['WARN'][-1]}"
    return reason


def _sox(command: list[str], subject: Path, *, binary: bool = False) -> subprocess.CompletedProcess:
    """Run sox and hand back what it did; AudioError only when it is missing or does not finish."""
    if sox_path() is None:
        raise AudioError("sox is not installed (Debian: apt-get install sox libsox-fmt-all)")
    try:
        return subprocess.run(
            command, capture_output=True, text=not binary, timeout=_SOX_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise AudioError(f"{subject}: sox took longer than {_SOX_TIMEOUT:.0f} s") from None


def _run_sox(command: list[str], subject: Path) -> str:
    done = _sox(command, subject)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise AudioError(f"{subject}: sox failed: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout
