"""prompts/<lang>/.manifest.json: what the build made, so it can tell its own files from an admin's.

A file is the build's own only while its bytes hash to what the manifest recorded when the build wrote
it (or while the entry is marked pending: the build was writing it when it was interrupted). Anything else under prompts/<lang>/ (a file never recorded, or one whose hash changed because a
person replaced it) is a human recording: kept, converted if needed, never overwritten or deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

MANIFEST_NAME = ".manifest.json"
FORMAT_VERSION = 1

GENERATED = "generated"
HUMAN = "human"


class ManifestError(ValueError):
    """The manifest file is unreadable; the message names it."""


@attrs.frozen
class Entry:
    kind: str = attrs.field(validator=attrs.validators.in_((GENERATED, HUMAN)))
    wav_sha: str = ""  # empty while pending
    wav16_sha: str | None = None
    key: str = ""  # content hash of text + voice + synth version (generated files only)
    text: str = ""  # kept for people reading the manifest and for `--check` messages
    source: str = ""  # human: where the original recording was kept, relative to prompts/<lang>/
    # Written before the build starts on the file and cleared when it is done: after a crash in
    # between, whatever is at the path is the build's half-finished work, not a person's recording.
    pending: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v not in ("", None, False)}


@attrs.define
class Manifest:
    path: Path
    entries: dict[str, Entry] = attrs.field(factory=dict)

    @classmethod
    def load(cls, language_dir: Path) -> Manifest:
        path = language_dir / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: unreadable ({exc}); delete it to rebuild every prompt") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ManifestError(f"{path}: unknown manifest version; delete it to rebuild every prompt")
        try:
            entries = {name: Entry(**fields) for name, fields in data.get("entries", {}).items()}
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: bad entry ({exc})") from None
        return cls(path, entries)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": FORMAT_VERSION,
            "entries": {name: self.entries[name].to_json() for name in sorted(self.entries)},
        }
        temp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, self.path)
