"""Kazakh morphology as data (ivr/speech/kk_rules.yaml): every rule's own examples, and the verb
forms callers use reaching the option they name."""

from __future__ import annotations

import pytest

from ivr.speech.matcher import Matcher, content_words
from ivr.speech.normalize_kk import kk_rules, kk_stem, kk_stems, parse_rules

RULES = kk_rules().rules
EXAMPLES = [
    pytest.param(word, stem, id=f"{rule.name}:{word}") for rule in RULES for word, stem in rule.examples
]


def test_every_rule_has_examples_and_endings():
    assert len(RULES) >= 20
    for rule in RULES:
        assert rule.examples, f"rule {rule.name} has no examples to test it by"
        assert rule.endings and all(e == e.lower() for e in rule.endings), rule.name


@pytest.mark.parametrize(("word", "stem"), EXAMPLES)
def test_rule_examples(word, stem):
    assert kk_stem(word) == stem


def test_verb_rules_are_shipped():
    names = {rule.name for rule in RULES}
    assert {"polite_imperative", "desiderative", "verbal_noun", "negative", "past", "participle"} <= names


@pytest.mark.parametrize(
    ("words", "stem"),
    [
        # polite imperative and its relatives: the plain polite form, the third person, "let us"
        (["шақырыңызшы", "шақырыңыз", "шақыру", "шақырсын"], "шақыр"),
        (["қосыңызшы", "қосыңыз", "қосу", "қоссын"], "қос"),
        # desiderative (-ғым/-гім/-қым/-кім келеді), need (-у керек), past, participle of one verb
        (["жазылғым", "жазылу", "жазылуым", "жазылуға", "жазылған", "жазыламын"], "жазыл"),
        (["сөйлескім", "сөйлесу", "сөйлесуге", "сөйлесейік"], "сөйлес"),
        (["тіркегім", "тіркеу", "тіркеуге"], "тірке"),
        # negated ability: the helper verb loses its negation; the converb is its own word
        (["алмаймын", "алмадым", "алмай", "алғым", "алу", "аламын"], "ал"),
    ],
)
def test_forms_of_one_verb_share_a_stem(words, stem):
    assert {kk_stem(w) for w in words} == {stem}


@pytest.mark.parametrize("word", ["басқа", "маман", "адам", "бала", "ипотека", "дайын", "машина"])
def test_roots_that_look_inflected_are_kept(word):
    assert kk_stem(word) == word


def test_case_endings_follow_the_letter_before_them():
    # -ты is the accusative only after a voiceless consonant: паспорт-ы is "its passport".
    assert kk_stem("паспорты") == "паспорт"
    assert kk_stem("паспортты") == "паспорт"
    assert kk_stem("мәзірді") == "мәзір"
    with pytest.raises(ValueError, match="neither a letter"):
        parse_rules({"rules": [{"name": "x", "endings": ["а"], "after": "voiced"}]})


def test_endings_come_off_outside_in_only():
    # тірке-у: after the verbal noun the -ке left is part of the root, not a dative.
    assert kk_stem("тіркеу") == "тірке"
    # құжат-ы-н: the short accusative and possessive, not a habitual participle -атын.
    assert kk_stem("құжатын") == "құжат"
    # құжат-ым: a possessive after т, not the past tense -тым.
    assert kk_stem("құжатым") == "құжат"


def test_a_word_is_also_read_as_a_noun():
    # "-гім" is a desiderative in "тіркегім келеді" but "my" in "куәлігім" (куәлік + ім).
    assert kk_stem("куәлігім") != "куәлік"
    assert "куәлік" in kk_stems("куәлігім")
    assert kk_stems("тіркегім") & kk_stems("тіркеу")


def test_helper_verbs_and_fillers_carry_no_meaning():
    assert content_words("кезекке жазыла алмай жүрмін", "kk") == ["кезекке", "жазыла"]
    assert content_words("маманмен сөйлескім келеді", "kk") == ["маманмен", "сөйлескім"]
    assert content_words("эцп алу керек еді", "kk") == ["эцп"]


def test_rules_read_from_data():
    rules = parse_rules(
        {
            "rules": [
                {"name": "dative", "endings": ["ға", "ге"], "min_stem": 3, "slot": 1},
                {"name": "poss", "endings": ["м"], "after": ["а"], "min_stem": 3, "slot": 2},
                {"name": "acc", "endings": ["ты"], "after": "voiceless", "slot": 1},
            ],
            "letters": {"voiceless": "кқпст"},
            "keep": ["басқа"],
            "light": ["ал"],
        }
    )
    assert [r.name for r in rules.rules] == ["dative", "poss", "acc"]
    assert rules.rules[0].after is None  # no after: any letter
    assert rules.rules[2].fits("құжатты", "ты") and not rules.rules[2].fits("паспорты", "ты")
    assert rules.by_length[0][0] in ("ға", "ге")  # longest endings are tried first
    assert rules.rules[1].fits("анам", "м")
    assert not rules.rules[1].fits("әкем", "м")  # after "е", not one of the listed letters
    assert not rules.rules[1].fits("ам", "м")  # the stem would be shorter than min_stem
    assert rules.keep == frozenset({"басқа"}) and rules.light == frozenset({"ал"})


MENU = [
    ("home_visit", {"kk": ["үйге шақыру", "шақыру", "қызметкерді шақыру"]}),
    ("booking", {"kk": ["кезек", "кезекке жазылу"]}),
    ("egov", {"kk": ["портал", "электрондық цифрлық қолтаңба", "цифрлық қолтаңба", "құпиясөз"]}),
    ("vehicles", {"kk": ["көлікті тіркеу", "қайта тіркеу", "жүргізуші куәлігі"]}),
]


@pytest.mark.parametrize(
    ("said", "target"),
    [
        ("үйге шақырыңызшы", "home_visit"),  # polite imperative
        ("кезекке жазылғым келеді", "booking"),  # desiderative
        ("кезекке жазылу керек еді", "booking"),  # need to
        ("кезекке жазыла алмаймын", "booking"),  # negated ability
        ("порталға кіре алмай жүрмін", "egov"),
        ("цифрлық қолтаңбаның мерзімі бітіп қалды", "egov"),  # converb + helper verb
        ("көлігімді қайта тіркегім келеді", "vehicles"),
        ("жүргізуші куәлігімді ауыстыру керек", "vehicles"),
    ],
)
def test_verb_forms_reach_their_option(said, target):
    match = Matcher(MENU).match(said, "kk")
    assert match is not None and match.target == target and not match.needs_confirmation
