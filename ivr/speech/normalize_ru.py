"""Russian word forms: Snowball stems plus pymorphy3 dictionary lemmas.

Snowball alone joins "запись", "записи" and "записаться" (all "запис") but not "люди" and
"человек"; pymorphy3's lemma joins those but not a noun with its verb. A word is described by
both keys and two words match when any key is shared. The MorphAnalyzer takes about a second
and ~15 MB to load, so it is loaded once per process, on first use.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import snowballstemmer

_stemmer_local = threading.local()  # Snowball stemmers keep state; one per thread
_morph_lock = threading.Lock()
_morph: Any = None


def _stemmer() -> Any:
    stemmer = getattr(_stemmer_local, "stemmer", None)
    if stemmer is None:
        stemmer = _stemmer_local.stemmer = snowballstemmer.stemmer("russian")
    return stemmer


def morph_analyzer() -> Any:
    """The process-wide pymorphy3 MorphAnalyzer (Russian dictionaries)."""
    global _morph
    with _morph_lock:
        if _morph is None:
            import pymorphy3

            _morph = pymorphy3.MorphAnalyzer(lang="ru")
        return _morph


def fold(word: str) -> str:
    """Lower case with ё as е, as recognisers and callers' spellings disagree on it."""
    return word.lower().replace("ё", "е")


@lru_cache(maxsize=65536)
def ru_stem(word: str) -> str:
    return _stemmer().stemWord(fold(word))


@lru_cache(maxsize=65536)
def ru_lemma(word: str) -> str:
    word = fold(word)
    if word.isascii() and word.isdigit():
        return word  # what pymorphy3 says of a number (NUMB), without its 80,000 instructions a word
    parses = morph_analyzer().parse(word)
    return fold(parses[0].normal_form) if parses else word


def ru_keys(word: str) -> frozenset[str]:
    return frozenset((ru_stem(word), ru_lemma(word)))
