"""Reader for the real Asterisk transcripts in shared/asterisk/ (agi/*.txt, ami/*.txt).

Line format: `+<seconds> IN|OUT|META <payload>`; IN/OUT payloads are Python bytes reprs without b''.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import attrs

ENV_VAR = "IVR_ASTERISK_TRANSCRIPTS"


@attrs.frozen
class Chunk:
    at: float  # seconds since connect
    direction: str  # "IN" (Asterisk -> us), "OUT" (us -> Asterisk) or "META" (recorder note)
    data: bytes  # for META, the note encoded as UTF-8


@attrs.frozen
class Transcript:
    name: str
    chunks: tuple[Chunk, ...]

    @property
    def received(self) -> bytes:
        """Every byte Asterisk sent."""
        return b"".join(c.data for c in self.chunks if c.direction == "IN")

    @property
    def sent(self) -> bytes:
        """Every byte the recorder (our side) sent."""
        return b"".join(c.data for c in self.chunks if c.direction == "OUT")

    def notes(self) -> list[str]:
        return [c.data.decode() for c in self.chunks if c.direction == "META"]


def transcripts_root() -> Path:
    """shared/asterisk beside the checkout, unless IVR_ASTERISK_TRANSCRIPTS points elsewhere."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "asterisk"
        if candidate.is_dir():
            return candidate
    return Path("../shared/asterisk").resolve()


def parse_transcript(name: str, text: str) -> Transcript:
    chunks = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stamp, _, rest = line.partition(" ")
        direction, _, payload = rest.lstrip().partition(" ")
        if not stamp.startswith("+") or direction not in ("IN", "OUT", "META"):
            raise ValueError(f"{name}:{number}: not a transcript line: {line!r}")
        if direction == "META":
            data = payload.encode()
        else:
            data = ast.literal_eval("b'" + payload + "'")
        chunks.append(Chunk(float(stamp[1:]), direction, data))
    return Transcript(name, tuple(chunks))


def load_transcript(kind: str, name: str, root: Path | None = None) -> Transcript:
    """load_transcript("agi", "basic") reads agi/basic.txt."""
    path = (root or transcripts_root()) / kind / f"{name}.txt"
    return parse_transcript(name, path.read_text(encoding="utf-8"))


def transcript_names(kind: str, root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in ((root or transcripts_root()) / kind).glob("*.txt"))
