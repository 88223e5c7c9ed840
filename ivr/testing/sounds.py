"""What Asterisk would find on disk for a sound the engine plays, for `ivr testcall` on the engine's own
machine: the file in the channel's language folder (`<prompts>/<language>/<name>.<format>`, then
`<prompts>/<name>.<format>` as Asterisk falls back to the default language), how long it is, and
whether it is a person's recording (the prompt manifest says).

A sound with no file Asterisk can open is missing: STREAM FILE answers `200 result=-1` and Playback
sets PLAYBACKSTATUS=FAILED, and the caller hears nothing there. A `.wav` that is no 8 kHz mono 16-bit
WAV is one Asterisk refuses (format_wav: "Unexpected frequency mismatch", or no RIFF header); it then
plays another format of the same sound if there is one.
"""

from __future__ import annotations

import wave
from pathlib import Path

import attrs

from ivr.prompts.manifest import HUMAN, Manifest, ManifestError

RATE = 8000  # samples a second on the line: endpos counts these
# Formats Asterisk plays, narrowband first as it prefers them on an 8 kHz line, with their bytes per
# 8 kHz sample (sln16: two 16 kHz samples of 2 bytes; 0: read from the WAV header).
_FORMATS = (("wav", 0), ("sln", 2), ("ulaw", 1), ("alaw", 1), ("gsm", 33 / 160), ("wav16", 0), ("sln16", 4))


@attrs.frozen
class SoundFile:
    path: Path
    samples: int  # at 8 kHz, as Asterisk's endpos counts them
    recording: bool = False  # a person's recording, not synthesised
    recorded_for: str = ""  # the text the recording was made for, when the manifest kept it


class SoundsOnDisk:
    """Sounds looked up under one prompts folder, as the Asterisk sharing it would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._manifests: dict[Path, Manifest | None] = {}
        # One look on disk per sound and language: the fake Asterisk asks for its length as it plays
        # it, and the transcript for its file afterwards.
        self._found: dict[tuple[str, str], SoundFile | None] = {}

    def find(self, name: str, language: str) -> SoundFile | None:
        key = (name, language)
        if key not in self._found:
            self._found[key] = self._look(name, language)
        return self._found[key]

    def _look(self, name: str, language: str) -> SoundFile | None:
        for folder in (self.root / language, self.root):
            for extension, bytes_a_sample in _FORMATS:
                path = folder / f"{name}.{extension}"
                samples = _samples(path, bytes_a_sample)
                if samples is not None:
                    return self._described(path, folder, name, samples)
        return None

    def samples(self, name: str, language: str) -> int | None:
        """Its length as STREAM FILE's endpos counts it, or None: missing (FakeCall's prompt_samples)."""
        found = self.find(name, language)
        return found.samples if found is not None else None

    def describe(self, name: str, language: str) -> str:
        """Which file plays, for a transcript: its path, and whether a person recorded it."""
        found = self.find(name, language)
        if found is None:
            return f"no file Asterisk can play under {self.root / language}/: the caller hears nothing"
        where = f"{found.path}, {found.samples / RATE:.1f} s"
        if not found.recording:
            return where
        made_for = f": made for «{found.recorded_for}»" if found.recorded_for else ""
        return f"{where}, a person's recording{made_for}"

    def _described(self, path: Path, folder: Path, name: str, samples: int) -> SoundFile:
        manifest = self._manifest(folder)
        entry = manifest.entries.get(name) if manifest is not None else None
        if entry is None or entry.kind != HUMAN:
            return SoundFile(path, samples)
        return SoundFile(path, samples, recording=True, recorded_for=entry.text)

    def _manifest(self, folder: Path) -> Manifest | None:
        if folder not in self._manifests:
            try:
                self._manifests[folder] = Manifest.load(folder)
            except (ManifestError, OSError):
                self._manifests[folder] = None
        return self._manifests[folder]


def _samples(path: Path, bytes_a_sample: float) -> int | None:
    """Its length in 8 kHz samples, or None when Asterisk could not play it (absent, or a broken WAV)."""
    if not path.is_file():
        return None
    if bytes_a_sample:
        return int(path.stat().st_size / bytes_a_sample)
    try:
        with wave.open(str(path)) as audio:
            rate, channels, width, frames = (
                audio.getframerate(),
                audio.getnchannels(),
                audio.getsampwidth(),
                audio.getnframes(),
            )
    except (wave.Error, EOFError, OSError):
        return None
    wanted = 16000 if path.suffix == ".wav16" else RATE
    if (rate, channels, width) != (wanted, 1, 2):
        return None  # format_wav refuses it
    return frames * RATE // rate
