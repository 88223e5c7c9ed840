"""Deciding what the caller said: text against a node's phrases, in Kazakh or Russian.

Pure Python, no Vosk: the input is recognised text (or typed text from `ivr simulate`).
Each phrase is reduced to its content words; each content word scores against the best word
the caller said: 1.0 for the same word form family (Russian stem or lemma, Kazakh stem),
0.9 when one stem extends the other (noun and verb of one root: запись / записаться), else a
rapidfuzz similarity for near misses (аператор, зопись) above a floor. A phrase scores the
mean over its content words, so word order does not matter and "живой человек" half-matches
"человек". Fillers ("мне бы", "маған ... керек еді") and Kazakh helper verbs ("алмаймын",
"келеді") are dropped on both sides.

Two rules decide between options that score alike:
- a word two options share decides nothing between them: an option that also heard a word the
  other did not ("приложение ашык": Ashyq, not the eGov app) wins; when each heard a word of its
  own, the caller said two things and nobody guesses;
- a person word ("оператор", "маман", "человек") means the operator, whether or not a verb of
  talking or calling comes with it ("маманды шақырыңызшы"), unless a word of the option's topic
  was heard too ("поговорить со специалистом по записи") or the option's own phrase is about a
  person ("вызвать сотрудника"). The option is then not matched, and the caller's request for a
  person is taken by `is_operator_request`, as the interpreter asks it next.
The rules are written for admins in menus/README.md ("How speech is matched").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

import attrs
from rapidfuzz import fuzz

from ivr.speech.normalize_kk import is_light, kk_rules, kk_stem, kk_stems
from ivr.speech.normalize_ru import fold, morph_analyzer, ru_keys, ru_lemma, ru_stem

Target = TypeVar("Target")

UNKNOWN_MARKERS = re.compile(r"\[unk\]|<unk>", re.IGNORECASE)
WORD = re.compile(r"\w+", re.UNICODE)

# Fillers: words that say how a caller asks, not what for. Dropped from phrases and from what was heard
# (unless nothing else is left, so "да" can still be an answer).
STOPWORDS: dict[str, frozenset[str]] = {
    "ru": frozenset(
        "в во на с со и а но по к ко о об у за для из от до при про мне меня мной мой моя мое мои "
        "моего моей моих мою я вы вас вам ваш он она они его ее их себе себя свой свою "
        "хочу хочется хотел хотела хотелось хотим хотели бы нужно нужен нужна нужны надо "
        "пожалуйста как можно могу ли это этот эта вот да ну же там тут так уже тоже "
        "что чтобы где когда какой какая какое какие каким куда "
        "скажите подскажите здравствуйте алло девушка есть будет был была было".split()
    ),
    "kk": frozenset(
        "мен сен сіз және да де бен пен маған саған сізге менің сенің сіздің керек қалай бар ба бе "
        "ма ме па пе ғой өтінемін өтінем осы сол бұл ал ия иә туралы бойынша үшін ғана қашан "
        "қайда қандай не неге мына енді әлі екен еді едім жоқ сәлеметсіз сәлем алло".split()
    ),
}

FUZZY_FLOOR = 0.8  # below this a near miss counts as a different word
FUZZY_MIN_LENGTH = 4  # short words are too easily confused to match by spelling
# A recogniser only writes words it knows, so a near miss between short words is usually another word
# (басқа / баспа, кезек / керек): words under this length need a closer spelling.
FUZZY_SHORT = 6
FUZZY_SHORT_FLOOR = 0.85
PREFIX_MIN = 5  # shared stem prefix length for noun/verb pairs of one root
PREFIX_SCORE = 0.9

# Words for a person, in the forms callers say them most: at a menu the restricted grammar holds
# these forms, and a form it lacks cannot be heard there at all.
PERSON_PHRASES: dict[str, tuple[str, ...]] = {
    "kk": (
        "оператор", "маман", "адам", "тірі адам", "кеңесші", "қызметкер", "менеджер",
        "операторға", "операторды", "оператормен", "маманға", "маманды", "маманмен", "адамға",
        "адаммен", "кеңесшімен", "қызметкермен",
    ),
    "ru": (
        "оператор", "специалист", "человек", "живой человек", "консультант", "сотрудник",
        "менеджер", "диспетчер", "оператора", "оператором", "оператору", "специалиста",
        "специалистом", "человека", "человеком", "консультанта", "сотрудника", "сотрудником",
    ),
}  # fmt: skip
# Verbs of talking, calling and connecting: with a person word they ask for the operator.
TALK_VERBS: dict[str, tuple[str, ...]] = {
    "kk": ("сөйлесу", "шақыру", "қосу", "жалғау", "байланысу", "байланыстыру", "хабарласу", "қоңырау"),
    "ru": (
        "поговорить", "говорить", "разговаривать", "пообщаться", "соединить", "позвать", "звать",
        "связать", "связаться", "переключить", "позвонить", "дать",
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
        return WordForm(folded, kk_stems(folded) | {folded}, kk_stem(folded))
    return _identity_form(folded)


def _written_words(text: str) -> list[str]:
    """The words of a text as written, without Vosk's out-of-grammar markers."""
    return WORD.findall(UNKNOWN_MARKERS.sub(" ", text))


def tokenize(text: str) -> list[str]:
    """Lower-case words of a text, without Vosk's out-of-grammar markers."""
    return [fold(w) for w in _written_words(text)]


def _is_filler(word: str, language: str) -> bool:
    return word in STOPWORDS.get(language, frozenset()) or (language == "kk" and is_light(word))


def content_words(text: str, language: str) -> list[str]:
    """The words that carry meaning (all of them when there are no others: "да" is an answer)."""
    words = tokenize(text)
    content = [w for w in words if not _is_filler(w, language)]
    return content or words


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@lru_cache(maxsize=1 << 16)  # callers repeat the same words all day; a menu's words are few
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
        shortest = min(len(a), len(b))
        if shortest >= FUZZY_MIN_LENGTH:
            ratio = fuzz.ratio(a, b) / 100
            if ratio >= (FUZZY_FLOOR if shortest >= FUZZY_SHORT else FUZZY_SHORT_FLOOR):
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
    content = [(w, c) for w, c in pairs if not _is_filler(w, language)]
    return [(word_form(w, language), confidence) for w, confidence in content or pairs]


USED_MIN = FUZZY_FLOOR  # a heard word this similar to a phrase word counts as heard for that phrase


def _phrase_score(phrase: _Phrase, heard: Heard) -> tuple[float, frozenset[int]]:
    """Mean over the phrase's content words of the best similarity heard, weighted by confidence,
    and which heard words (by position) the phrase used.

    Weighting by the recogniser's confidence matters with a restricted grammar: the decoder can
    only emit grammar words, so stray sounds come out as a grammar word with low confidence.
    """
    if not phrase.words or not heard:
        return 0.0, frozenset()
    total = 0.0
    used = set()
    for expected in phrase.words:
        score, similarity, index = max(
            (similarity * confidence, similarity, i)
            for i, (form, confidence) in enumerate(heard)
            for similarity in (word_similarity(form, expected),)
        )
        total += score
        if similarity >= USED_MIN:  # which word it was, however sure the recogniser was of it
            used.add(index)
    return total / len(phrase.words), frozenset(used)


@attrs.frozen
class _Scored(Generic[Target]):
    score: float
    phrase: _Phrase[Target]
    used: frozenset[int]  # heard words the best phrase took
    clear: int  # phrases of the target heard clearly


def _best_per_target(phrases: Sequence[_Phrase[Target]], heard: Heard) -> list[_Scored[Target]]:
    """The best phrase per target, highest score first (more heard words first among equals)."""
    best: dict[int, _Scored[Target]] = {}
    targets: list[Target] = []
    for phrase in phrases:
        score, used = _phrase_score(phrase, heard)
        if phrase.target not in targets:
            targets.append(phrase.target)
        key = targets.index(phrase.target)
        entry = best.get(key)
        clear = (entry.clear if entry else 0) + (score >= 0.85)
        if entry is None or (score, len(used)) > (entry.score, len(entry.used)):
            best[key] = _Scored(score, phrase, used, clear)
        else:
            best[key] = attrs.evolve(entry, clear=clear)
    return sorted(best.values(), key=lambda e: (e.score, len(e.used)), reverse=True)


def _decide(ranked: Sequence[_Scored[Target]], floor: float, margin: float) -> _Scored[Target] | None:
    """The leader, unless a runner-up within `margin` heard a word the leader did not use: then the
    caller named two things. A runner-up that only shares the leader's words decides nothing."""
    if not ranked or ranked[0].score < floor:
        return None
    leader = ranked[0]
    for other in ranked[1:]:
        if other.score < max(floor, leader.score - margin):
            break
        if not other.used <= leader.used or other.used == leader.used:
            return None
    return leader


@lru_cache(maxsize=8)
def _role_words(language: str) -> tuple[tuple[WordForm, ...], tuple[WordForm, ...]]:
    """Person words and talk verbs of a language, as comparison forms."""
    persons = {w for p in PERSON_PHRASES.get(language, ()) for w in content_words(p, language)}
    return (
        tuple(word_form(w, language) for w in sorted(persons)),
        tuple(word_form(w, language) for w in TALK_VERBS.get(language, ())),
    )


def _is_one_of(form: WordForm, forms: Sequence[WordForm]) -> bool:
    return any(word_similarity(form, f) >= 0.85 for f in forms)


def _asks_for_a_person(leader: _Scored, heard: Heard, language: str) -> bool:
    """A person word was heard, and the leading option took nothing but person words and talk verbs
    (no word of its topic) and is not itself about a person: the caller wants the operator."""
    persons, verbs = _role_words(language)
    if not any(_is_one_of(form, persons) for form, _ in heard):
        return False
    if any(_is_one_of(word, persons) for word in leader.phrase.words):
        return False  # "вызвать сотрудника", "маманмен сөйлесу": the option is the person
    return all(_is_one_of(heard[i][0], persons + verbs) for i in leader.used)


class Matcher(Generic[Target]):
    """Matches what the caller said to one of a node's options.

    options: (target, {language: [phrase, ...]}) per option. A score at or above `accept` is
    taken; between `confirm` and `accept` it is taken after the caller confirms; below, None.
    A runner-up within `ambiguity_margin` that heard a word of its own gives None: the caller said
    two things. One that heard only words the leader also took does not count.
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
        return [
            (e.score, e.phrase.text, e.phrase.target)
            for e in _best_per_target(self._phrases.get(language, ()), heard)
        ]

    def match(self, said: Said, language: str) -> Match[Target] | None:
        """The option the caller named, or None (nothing close enough, two options alike, or a
        request for a person that no option is about)."""
        heard = heard_words(said, language)
        ranked = _best_per_target(self._phrases.get(language, ()), heard)
        leader = _decide(ranked, self.confirm, self.ambiguity_margin)
        if leader is None or _asks_for_a_person(leader, heard, language):
            return None
        return Match(
            leader.phrase.target, round(leader.score, 3), leader.phrase.text, leader.score < self.accept
        )


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
    higher than one heard once. The interpreter takes any topic this returns (an open question
    has no confirmation step), so a close runner-up with words of its own gives None: the caller
    is asked again rather than sent to a wrong topic.
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
            (attrs.evolve(e, score=min(1.0, e.score + 0.05 * max(0, e.clear - 1))) for e in per_target),
            key=lambda e: (e.score, len(e.used)),
            reverse=True,
        )
        leader = _decide(ranked, self.threshold, self.margin)
        if leader is None or _asks_for_a_person(leader, heard, language):
            return None
        return Match(
            leader.phrase.target, round(leader.score, 3), leader.phrase.text, leader.score < self.accept
        )


def load_matching_dictionaries() -> None:
    """Load what matching words needs (the Kazakh ending rules, a YAML file; pymorphy3's Russian
    dictionaries) now, at start and off the event loop, rather than when the first caller speaks."""
    kk_rules()
    morph_analyzer()


# Menus repeat phrases (shared option lists): a 2,000-node menu's phrases checked in 0.07 s, not 0.09.
@lru_cache(maxsize=65536)
def phrase_key(text: str, language: str) -> tuple[str, ...]:
    """What the matcher sees of a phrase: its content words' lemmas (Russian) or stems (Kazakh),
    sorted (the matcher ignores word order). Phrases with one key are one phrase to the matcher
    ("запись" and "записи", "кезек" and "кезекке"). Snowball's stems are not used: it splits запись
    (зап) from записи (запис)."""
    words = [_word_key(word, language) for word in _written_words(text)]  # as content_words, per word
    content = {key for key, filler in words if not filler}
    return tuple(sorted(content or {key for key, _ in words}))  # all words when all are fillers


# Phrases share most of their words ("пункт 1", "пункт 12 3"): folding, the filler test and the lemma
# once per word took a 2,000-node menu's phrase checks from 324 to 258 million instructions.
@lru_cache(maxsize=65536)
def _word_key(word: str, language: str) -> tuple[str, bool]:
    """One word of a phrase as phrase_key sees it: its lemma or stem, and whether it is a filler."""
    word = fold(word)
    if language == "ru":
        key = ru_lemma(word)
    elif language == "kk":
        key = kk_stem(word)
    else:
        key = word
    return key, _is_filler(word, language)


def grammar_phrases(
    matcher: Matcher, language: str, include_person_words: bool = True, menu_wide: Iterable[str] = ()
) -> list[str]:
    """The restricted grammar for a node: its phrases, the menu-wide phrases it also decides on
    (repeat, back, language, top, the operator's), and, so a person can be asked for anywhere, the
    person words. A word missing here cannot be recognised at all at this node."""
    phrases = matcher.phrases(language)
    extra = [*menu_wide, *(PERSON_PHRASES.get(language, ()) if include_person_words else ())]
    phrases += [p for p in dict.fromkeys(extra) if p not in phrases]
    return phrases
