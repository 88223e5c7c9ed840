"""The words a Vosk model can recognise, read from its files without loading the model.

Big Vosk models ship graph/words.txt. Small ones (vosk-model-small-ru/kz, the Korean package)
do not: their words are the symbol table embedded in graph/Gr.fst, an OpenFst file whose header
is followed by the input symbol table. Reading that table costs a fraction of a second and a
few megabytes, against 1.8 s and 540 MB for loading the model itself, so `ivr check` can use it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from ivr.config import SpeechSettings

FST_MAGIC = 2125659606
SYMBOL_TABLE_MAGIC = 2125658996
HAS_ISYMBOLS = 1
HAS_OSYMBOLS = 2
# Symbols that are part of the graph's machinery, not words a caller can say.
NON_WORDS = frozenset({"<eps>", "!SIL", "<s>", "</s>", "#0", "<UNK>", "<unk>", "[unk]"})


class VocabularyError(ValueError):
    """A model file exists but cannot be read as a vocabulary."""


def model_vocabulary(model_dir: str | Path) -> set[str] | None:
    """Words of the model in `model_dir`, or None when the directory holds no readable word list."""
    return set(_cached_vocabulary(str(Path(model_dir).resolve())) or ()) or None


@lru_cache(maxsize=8)
def _cached_vocabulary(model_dir: str) -> frozenset[str] | None:
    graph = Path(model_dir) / "graph"
    words_txt = graph / "words.txt"
    if words_txt.is_file():
        return frozenset(_words_from_text(words_txt))
    for name in ("Gr.fst", "HCLG.fst"):
        fst = graph / name
        if fst.is_file():
            with fst.open("rb") as stream:
                symbols = read_fst_symbols(stream, str(fst))
            if symbols is not None:
                return frozenset(s for s in symbols if s not in NON_WORDS)
    return None


def _words_from_text(path: Path) -> set[str]:
    words = set()
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            word = line.split(" ", 1)[0].strip()
            if word and word not in NON_WORDS:
                words.add(word)
    return words


def read_fst_symbols(stream: BinaryIO, name: str = "<fst>") -> list[str] | None:
    """The input symbol table of an OpenFst binary file, or None when it carries none."""

    def read(fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        chunk = stream.read(size)
        if len(chunk) != size:
            raise VocabularyError(f"{name}: file ends inside the FST header")
        return struct.unpack(fmt, chunk)

    def read_string() -> bytes:
        (length,) = read("<i")
        if length < 0 or length > 1 << 20:
            raise VocabularyError(f"{name}: implausible string length {length} in FST header")
        chunk = stream.read(length)
        if len(chunk) != length:
            raise VocabularyError(f"{name}: file ends inside the FST header")
        return chunk

    (magic,) = read("<i")
    if magic != FST_MAGIC:
        raise VocabularyError(f"{name}: not an OpenFst binary file (magic {magic})")
    read_string()  # fst type ("ngram", "const", "vector")
    read_string()  # arc type
    _version, flags = read("<ii")
    read("<Qqqq")  # properties, start state, number of states, number of arcs
    if not flags & (HAS_ISYMBOLS | HAS_OSYMBOLS):
        return None
    (table_magic,) = read("<i")
    if table_magic != SYMBOL_TABLE_MAGIC:
        raise VocabularyError(f"{name}: symbol table has a bad magic number {table_magic}")
    read_string()  # table name
    _available_key, size = read("<qq")
    symbols = []
    for _ in range(size):
        symbols.append(read_string().decode("utf-8", errors="replace"))
        read("<q")
    return symbols


def vocabulary_for(settings: SpeechSettings) -> Callable[[str], set[str] | None]:
    """language -> the configured model's words, or None when the language has no readable model."""

    def lookup(language: str) -> set[str] | None:
        model_dir = settings.models.get(language)
        if not model_dir or not Path(model_dir).is_dir():
            return None
        try:
            return model_vocabulary(model_dir)
        except (OSError, VocabularyError):
            return None

    return lookup


def unknown_words(phrase: str, vocabulary: set[str]) -> list[str]:
    """Words of a phrase the model cannot recognise (compared in lower case, as the grammar is)."""
    return [word for word in phrase.lower().split() if word not in vocabulary]
