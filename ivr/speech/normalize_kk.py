"""A suffix-stripping normaliser for Kazakh, which Snowball does not cover.

Kazakh is agglutinative: "құжаттарымды" is құжат + тар (plural) + ым (my) + ды (accusative).
Matching a caller's words against a menu's base forms needs those endings off. The stripper
removes known endings from the end of the word, longest first, repeatedly, while the stem stays
long enough; one-letter endings only come off where the grammar puts them (a possessive -м/-ң
after a vowel, the accusative -н after the possessive -ы/-і, a dative -а/-е or a possessive
-ы/-і after a consonant) so that words such as "маман" or "адам" keep their last letter.
Voiced stem-final consonants return to their dictionary form (кітабы -> кітаб -> кітап).
"""

from __future__ import annotations

VOWELS = frozenset("аәеёиоөуұүыіэюя")

PLURAL = ("лар", "лер", "дар", "дер", "тар", "тер")
POSSESSIVE = (
    "ымыз", "іміз", "мыз", "міз",  # our
    "ыңыз", "іңіз", "ңыз", "ңіз",  # your (polite)
    "ың", "ің", "ым", "ім", "сы", "сі",
)  # fmt: skip
CASES = (
    "нан", "нен", "дан", "ден", "тан", "тен",  # ablative
    "нда", "нде",  # locative after a possessive
    "ның", "нің", "дың", "дің", "тың", "тің",  # genitive
    "мен", "бен", "пен",  # instrumental
    "ға", "ге", "қа", "ке", "на", "не",  # dative
    "ны", "ні", "ды", "ді", "ты", "ті",  # accusative
    "да", "де", "та", "те",  # locative
)  # fmt: skip
# Longest first, so "дан" is tried before "да" and "ыңыз" before "ың".
MULTI_LETTER_SUFFIXES = tuple(sorted(set(PLURAL + POSSESSIVE + CASES), key=len, reverse=True))
AFTER_VOWEL = ("м", "ң")  # possessive my/your after a vowel: әке-м, әке-ң
AFTER_CONSONANT = ("ы", "і", "а", "е")  # possessive his/her, dative after possessive 1st/2nd
AFTER_POSSESSIVE = ("н",)  # accusative after -ы/-і: үй-і-н

MIN_STEM = 3  # letters left after stripping a multi-letter ending
MIN_STEM_SINGLE = 4  # letters left after a one-letter ending (which is far more often part of the root)
DEVOICE = {"б": "п", "г": "к", "ғ": "қ"}


def _strip_once(word: str) -> str | None:
    for suffix in MULTI_LETTER_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    if len(word) - 1 < MIN_STEM_SINGLE:
        return None
    stem, last = word[:-1], word[-1]
    before = stem[-1]
    if last in AFTER_VOWEL and before in VOWELS:
        return stem
    if last in AFTER_CONSONANT and before not in VOWELS:
        return stem
    if last in AFTER_POSSESSIVE and before in ("ы", "і"):
        return stem
    return None


def kk_stem(word: str) -> str:
    """The stem of one lower-case Kazakh word: endings stripped, final consonant devoiced."""
    word = word.lower()
    stripped = False
    while (shorter := _strip_once(word)) is not None:
        word = shorter
        stripped = True
    if stripped and word[-1] in DEVOICE:
        word = word[:-1] + DEVOICE[word[-1]]
    return word
