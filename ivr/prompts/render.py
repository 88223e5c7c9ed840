"""One unit of build work, runnable in a worker process: speak a text, or convert a human recording."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import attrs

from ivr.prompts.audio import (
    NARROWBAND_RATE,
    WIDEBAND_RATE,
    AudioError,
    convert,
    file_sha256,
    source_rate,
)
from ivr.prompts.synth import SynthError, VoiceSettings, synthesize


@attrs.frozen
class RenderJob:
    """Produce `wav` (8 kHz) and, when `wav16` is set, the 16 kHz copy, from a text or a source file."""

    key: str  # "kk/1414/main", for messages
    wav: Path
    wav16: Path | None
    text: str | None = None
    voice: VoiceSettings | None = None
    source: Path | None = None  # an admin's recording (then text and voice are unused)


@attrs.frozen
class RenderResult:
    key: str
    wav_sha: str = ""
    wav16_sha: str | None = None
    error: str = ""


def render(job: RenderJob) -> RenderResult:
    """Never raises for a bad text or file: the error comes back in the result, for the report."""
    try:
        if job.source is not None:
            return _convert_recording(job, job.source)
        return _speak(job)
    except (SynthError, AudioError, OSError) as exc:
        return RenderResult(job.key, error=str(exc))


def _speak(job: RenderJob) -> RenderResult:
    assert job.text is not None and job.voice is not None
    with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
        raw = Path(tmp) / "speech.wav"
        synthesize(job.text, job.voice, raw)
        convert(raw, job.wav, NARROWBAND_RATE, normalize=True)
        wav16_sha = None
        if job.wav16 is not None:
            convert(raw, job.wav16, WIDEBAND_RATE, normalize=True)
            wav16_sha = file_sha256(job.wav16)
    return RenderResult(job.key, file_sha256(job.wav), wav16_sha)


def _convert_recording(job: RenderJob, source: Path) -> RenderResult:
    """Both formats or neither: each is converted beside its place first and only then put there, so a
    failure half-way never leaves the new recording in one format and the old audio in the other."""
    targets = [(job.wav, NARROWBAND_RATE)]
    # Upsampling an 8 kHz recording adds nothing a wideband channel could use: no 16 kHz copy then.
    if job.wav16 is not None and source_rate(source) >= WIDEBAND_RATE:
        targets.append((job.wav16, WIDEBAND_RATE))
    staged = [
        (target, target.with_name(f".{target.name}.{os.getpid()}.new"), rate) for target, rate in targets
    ]
    try:
        for _, temp, rate in staged:
            convert(source, temp, rate)
        for target, temp, _ in staged:
            os.replace(temp, target)
    finally:
        for _, temp, _ in staged:
            temp.unlink(missing_ok=True)
    wav16_sha = file_sha256(job.wav16) if job.wav16 is not None and len(targets) > 1 else None
    return RenderResult(job.key, file_sha256(job.wav), wav16_sha)
