"""Deciding what the caller said: text against a node's phrases, in Kazakh or Russian.

Pure Python, no Vosk: the input is recognised text (or typed text from `ivr simulate`).
Each phrase is reduced to its content words; each content word scores against the best word
the caller said: 1.0 for the same word form family (Russian stem or lemma, Kazakh stem),
0.9 when one stem extends the other (noun and verb of one root: запись / записаться), else a
rapidfuzz similarity for near misses (аператор, зопись) above a floor. A phrase scores the
mean over its content words, so word order does not matter and "живой человек" half-matches
"человек". Two different options scoring alike mean the caller said two things; no guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

import attrs
from rapidfuzz import fuzz

from ivr.speech.normalize_kk import kk_stem
from ivr.speech.normalize_ru import fold, ru_keys, ru_stem

Target = TypeVar("Target")

UNKNOWN_MARKERS = re.compile(r"\[unk\]|<unk>", re.IGNORECASE)
WORD = re.compile(r"\w+", re.UNICODE)

STOPWORDS: dict[str, frozenset[str]] = {
    "ru": frozenset(
        "в во на с со и а но по к ко о об у за для из от до мне меня меня мой моя мои я вы вас "
        "хочу хотел хотела хотелось нужно нужен нужна надо пожалуйста как можно бы ли это "
        "мне-бы вот да ну же там тут".split()
    ),
    "kk": frozenset(
        "мен сен сіз және да де бен пен маған саған сізге керек қалай бар ба бе ма ме па пе "
        "ғой өтінемін өтінем осы сол бұл ал ия иә".split()
    ),
}

FUZZY_FLOOR = 0.75  # below this a near miss counts as a different word
FUZZY_MIN_LENGTH = 4  # short words are too easily confused to match by spelling
PREFIX_MIN = 5  # shared stem prefix length for noun/verb pairs of one root
PREFIX_SCORE = 0.9

PERSON_PHRASES: dict[str, tuple[str, ...]] = {
    "kk": ("оператор", "маман", "адам", "тірі адам", "кеңесші", "қызметкер", "менеджер"),
    "ru": (
        "оператор", "специалист", "человек", "живой человек", "консультант", "сотрудник",
        "менеджер", "диспетчер",
    ),
}  # fmt: skip


@attrs.frozen
class WordForm:
    text: str
    keys: frozenset[str]  # forms that count as the same word
    stem: str  # what fuzzy comparison and prefix matching use


def _identity_form(word: str) -> WordForm:
    word = fold(word)
    return WordForm(word, frozenset((word,)), word)


@lru_cache(maxsize=65536)
def word_form(word: str, language: str) -> WordForm:
    """The comparison keys of one word in a language (kk, ru; other languages compare as written)."""
    folded = fold(word)
    if language == "ru":
        return WordForm(folded, ru_keys(folded) | {folded}, ru_stem(folded))
    if language == "kk":
        stem = kk_stem(folded)
        return WordForm(folded, frozenset((stem, folded)), stem)
    return _identity_form(folded)


def tokenize(text: str) -> list[str]:
    """Lower-case words of a text, without Vosk's out-of-grammar markers."""
    return [fold(w) for w in WORD.findall(UNKNOWN_MARKERS.sub(" ", text))]


def content_words(text: str, language: str) -> list[str]:
    words = tokenize(text)
    stop = STOPWORDS.get(language, frozenset())
    content = [w for w in words if w not in stop]
    return content or words


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def word_similarity(said: WordForm, expected: WordForm) -> float:
    """1.0 same word family, 0.9 one root, else a fuzzy score at or above FUZZY_FLOOR, else 0."""
    if said.keys & expected.keys:
        return 1.0
    best = 0.0
    for a in said.keys | {said.stem}:
        for b in expected.keys | {expected.stem}:
            prefix = _common_prefix(a, b)
            if prefix >= PREFIX_MIN and prefix >= 0.75 * min(len(a), len(b)):
                best = max(best, PREFIX_SCORE)
    for a, b in ((said.stem, expected.stem), (said.text, expected.text)):
        if min(len(a), len(b)) >= FUZZY_MIN_LENGTH:
            ratio = fuzz.ratio(a, b) / 100
            if ratio >= FUZZY_FLOOR:
                best = max(best, ratio)
    return best


@attrs.frozen
class Match(Generic[Target]):
    target: Target
    score: float  # 0..1
    matched_phrase: str
    needs_confirmation: bool


@attrs.frozen
class _Phrase(Generic[Target]):
    target: Target
    text: str
    words: tuple[WordForm, ...]


class _Recognised(Protocol):
    """What the matcher needs of ivr.speech.recognizer.Recognition."""

    text: str

    @property
    def words(self) -> Sequence[Any]: ...


# What a caller said: typed or recognised text, (word, confidence) pairs, or a Recognition.
Said = str | Sequence[tuple[str, float]] | _Recognised
Heard = list[tuple[WordForm, float]]


def heard_words(said: Said, language: str) -> Heard:
    """The said words with their comparison forms and the recogniser's confidence in each (1.0 for text)."""
    if isinstance(said, str):
        pairs: list[tuple[str, float]] = [(w, 1.0) for w in tokenize(said)]
    elif hasattr(said, "words") and hasattr(said, "text"):
        pairs = [(w, float(word.confidence)) for word in said.words for w in tokenize(word.word)]
        if not said.words:
            pairs = [(w, 1.0) for w in tokenize(said.text)]
    else:
        pairs = [(w, float(c)) for word, c in said for w in tokenize(word)]
    return [(word_form(w, language), confidence) for w, confidence in pairs]


def _phrase_score(phrase: _Phrase, heard: Heard) -> float:
    """Mean over the phrase's content words of the best similarity heard, weighted by confidence.

    Weighting by the recogniser's confidence matters with a restricted grammar: the decoder can
    only emit grammar words, so stray sounds come out as a grammar word with low confidence.
    """
    if not phrase.words or not heard:
        return 0.0
    total = sum(
        max(word_similarity(form, w) * confidence for form, confidence in heard) for w in phrase.words
    )
    return total / len(phrase.words)


def _best_per_target(
    phrases: Sequence[_Phrase[Target]], heard: Heard
) -> list[tuple[float, _Phrase[Target], int]]:
    """(best score, best phrase, phrases clearly heard) per target, highest score first."""
    best: dict[int, list] = {}
    targets: list[Target] = []
    for phrase in phrases:
        score = _phrase_score(phrase, heard)
        if phrase.target not in targets:
            targets.append(phrase.target)
        entry = best.setdefault(targets.index(phrase.target), [0.0, phrase, 0])
        if score > entry[0]:
            entry[0], entry[1] = score, phrase
        if score >= 0.85:
            entry[2] += 1
    return sorted((tuple(entry) for entry in best.values()), key=lambda item: item[0], reverse=True)


class Matcher(Generic[Target]):
    """Matches what the caller said to one of a node's options.

    options: (target, {language: [phrase, ...]}) per option. A score at or above `accept` is
    taken; between `confirm` and `accept` it is taken after the caller confirms; below, None.
    Two targets within `ambiguity_margin` of each other give None: the caller said two things.
    """

    def __init__(
        self,
        options: Iterable[tuple[Target, Mapping[str, Sequence[str]]]],
        accept: float = 0.85,
        confirm: float = 0.6,
        ambiguity_margin: float = 0.1,
    ) -> None:
        if not 0 < confirm <= accept <= 1:
            raise ValueError(f"thresholds must satisfy 0 < confirm <= accept <= 1, got {confirm}, {accept}")
        self.accept = accept
        self.confirm = confirm
        self.ambiguity_margin = ambiguity_margin
        self._phrases: dict[str, list[_Phrase[Target]]] = {}
        for target, by_language in options:
            for language, phrases in by_language.items():
                for text in phrases:
                    words = tuple(word_form(w, language) for w in content_words(text, language))
                    if words:
                        self._phrases.setdefault(language, []).append(_Phrase(target, text, words))

    def phrases(self, language: str) -> list[str]:
        """Every phrase of a language, for the recogniser's restricted grammar."""
        return list(dict.fromkeys(p.text for p in self._phrases.get(language, ())))

    def ranked(self, said: Said, language: str) -> list[tuple[float, str, Target]]:
        """(score, best phrase, target) for every target, highest first."""
        heard = heard_words(said, language)
        return [(s, p.text, p.target) for s, p, _ in _best_per_target(self._phrases.get(language, ()), heard)]

    def match(self, said: Said, language: str) -> Match[Target] | None:
        """The option the caller named, or None (nothing close enough, or two options alike)."""
        heard = heard_words(said, language)
        ranked = _best_per_target(self._phrases.get(language, ()), heard)
        if not ranked or ranked[0][0] < self.confirm:
            return None
        score, phrase, _ = ranked[0]
        if len(ranked) > 1 and ranked[1][0] >= max(self.confirm, score - self.ambiguity_margin):
            return None
        return Match(phrase.target, round(score, 3), phrase.text, score < self.accept)


@lru_cache(maxsize=8)
def _person_matcher(language: str) -> Matcher[str]:
    return Matcher([("operator", {language: PERSON_PHRASES.get(language, ())})], accept=0.85, confirm=0.85)


def is_operator_request(said: Said, language: str) -> bool:
    """True when the caller asks for a person (оператор, маман, специалиста, живого человека, ...)."""
    # Each person word is a phrase of its own, so "живой человек" is met by "человек" alone.
    return _person_matcher(language).match(said, language) is not None


class IntentClassifier(Generic[Target]):
    """Maps free-form speech to the best of a menu's topics (out-of-remit ones included).

    Topics are matched like options, but a topic whose several phrases are heard scores a little
    higher than one heard once, and a close runner-up asks for confirmation instead of refusing.
    """

    def __init__(
        self,
        topics: Iterable[tuple[Target, Mapping[str, Sequence[str]]]],
        threshold: float = 0.6,
        accept: float = 0.85,
        margin: float = 0.1,
    ) -> None:
        self._matcher: Matcher[Target] = Matcher(topics, accept=max(accept, threshold), confirm=threshold)
        self.threshold = threshold
        self.accept = accept
        self.margin = margin

    def classify(self, said: Said, language: str) -> Match[Target] | None:
        heard = heard_words(said, language)
        per_target = _best_per_target(self._matcher._phrases.get(language, ()), heard)
        ranked = sorted(
            ((min(1.0, best + 0.05 * max(0, clear - 1)), phrase) for best, phrase, clear in per_target),
            key=lambda item: item[0],
            reverse=True,
        )
        if not ranked or ranked[0][0] < self.threshold:
            return None
        score, phrase = ranked[0]
        close = len(ranked) > 1 and ranked[1][0] >= score - self.margin
        return Match(phrase.target, round(score, 3), phrase.text, close or score < self.accept)


def grammar_phrases(matcher: Matcher, language: str, include_person_words: bool = True) -> list[str]:
    """The restricted grammar for a node: its phrases and, so a person can be asked for anywhere,
    the person words."""
    phrases = matcher.phrases(language)
    if include_person_words:
        phrases += [p for p in PERSON_PHRASES.get(language, ()) if p not in phrases]
    return phrases
