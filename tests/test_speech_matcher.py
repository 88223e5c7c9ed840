"""Deciding what a Kazakh or Russian caller said, on text: word forms, typos, person words, topics."""

from __future__ import annotations

import pytest

from ivr.speech.matcher import IntentClassifier, Matcher, grammar_phrases, is_operator_request
from ivr.speech.normalize_kk import kk_stem
from ivr.speech.normalize_ru import ru_keys

MAIN_MENU = [
    ("booking", {"kk": ["кезек", "кезекке жазылу"], "ru": ["запись", "очередь", "записаться на приём"]}),
    ("documents", {"kk": ["құжат"], "ru": ["готовность документов"]}),
    ("home_visit", {"kk": ["үйге шақыру"], "ru": ["выезд на дом"]}),
    ("operator", {"kk": ["оператор", "маман"], "ru": ["оператор", "специалист"]}),
]


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("операторға", "оператор"),  # dative
        ("операторы", "оператор"),  # possessive 3rd person
        ("кезекке", "кезек"),  # dative after к
        ("кезегі", "кезек"),  # possessive, г back to к
        ("құжаттарымды", "құжат"),  # plural + my + accusative
        ("мамандармен", "маман"),  # plural + instrumental
        ("кітабы", "кітап"),  # б back to п
        ("цонға", "цон"),
        ("үйден", "үйден"),  # a two-letter root is too short to strip safely
        ("маман", "маман"),  # final -н of a root is not an accusative
        ("адам", "адам"),  # final -м of a short root is not a possessive
        ("бала", "бала"),
    ],
)
def test_kazakh_stemmer_strips_agglutinative_endings(word, stem):
    assert kk_stem(word) == stem


def test_russian_word_forms_share_a_key():
    assert ru_keys("оператора") & ru_keys("оператор")
    assert ru_keys("записи") & ru_keys("запись")
    assert ru_keys("документов") & ru_keys("документ")
    assert ru_keys("люди") & ru_keys("человек")  # the lemma joins suppletive forms


@pytest.mark.parametrize(
    ("said", "language", "target"),
    [
        ("операторға", "kk", "operator"),
        ("кезекке", "kk", "booking"),
        ("менің құжаттарымды", "kk", "documents"),
        ("маманмен сөйлесу", "kk", "operator"),
        ("оператора", "ru", "operator"),
        ("записаться", "ru", "booking"),
        ("записи", "ru", "booking"),
        ("готовность моих документов", "ru", "documents"),
        ("документов готовность", "ru", "documents"),  # order does not matter
        ("можно заказать выезд на дом", "ru", "home_visit"),
    ],
)
def test_inflected_forms_reach_their_option(said, language, target):
    match = Matcher(MAIN_MENU).match(said, language)
    assert match is not None and match.target == target


@pytest.mark.parametrize(("said", "phrase"), [("аператор", "оператор"), ("зопись", "запись")])
def test_typos_still_match(said, phrase):
    match = Matcher(MAIN_MENU).match(said, "ru")
    assert match is not None and match.matched_phrase == phrase
    assert 0.6 <= match.score < 1.0


def test_a_distant_misspelling_asks_for_confirmation():
    match = Matcher(MAIN_MENU).match("зопись", "ru")
    assert match is not None and match.needs_confirmation


def test_unrelated_speech_matches_nothing():
    matcher = Matcher(MAIN_MENU)
    assert matcher.match("какая сегодня погода", "ru") is None
    assert matcher.match("", "kk") is None
    assert matcher.match("[unk]", "ru") is None


def test_two_options_at_once_are_not_guessed():
    assert Matcher(MAIN_MENU).match("запись и готовность документов", "ru") is None


def test_low_recogniser_confidence_lowers_the_score():
    sure = Matcher(MAIN_MENU).match([("оператор", 0.98)], "ru")
    unsure = Matcher(MAIN_MENU).match([("оператор", 0.7)], "ru")
    assert sure is not None and not sure.needs_confirmation
    assert unsure is not None and unsure.needs_confirmation and unsure.target == "operator"


@pytest.mark.parametrize(
    ("said", "language"),
    [
        ("операторға қосыңыз", "kk"),
        ("операторы", "kk"),
        ("маманмен сөйлескім келеді", "kk"),
        ("адаммен", "kk"),
        ("қызметкерге", "kk"),
        ("соедините с оператором", "ru"),
        ("специалиста", "ru"),
        ("позовите человека", "ru"),
        ("живого человека пожалуйста", "ru"),
        ("консультант", "ru"),
        ("аператор", "ru"),
    ],
)
def test_person_words_are_operator_requests(said, language):
    assert is_operator_request(said, language)


@pytest.mark.parametrize(
    ("said", "language"), [("кредит алу", "kk"), ("запись к врачу", "ru"), ("статус заявки", "ru")]
)
def test_other_requests_are_not_operator_requests(said, language):
    assert not is_operator_request(said, language)


def test_grammar_includes_person_words_once():
    phrases = grammar_phrases(Matcher(MAIN_MENU), "ru")
    assert phrases.count("оператор") == 1
    assert {"запись", "специалист", "человек", "живой человек"} <= set(phrases)


TOPICS = [
    ("egov", {"ru": ["портал электронного правительства", "егов", "мобильное приложение"], "kk": ["егов"]}),
    ("booking", {"ru": ["запись в цон", "очередь"], "kk": ["кезекке жазылу", "цон"]}),
    ("out_of_remit", {"ru": ["кредит", "банк", "паспорт здоровья", "ашык"], "kk": ["несие", "банк"]}),
]


@pytest.mark.parametrize(
    ("said", "language", "topic"),
    [
        ("у меня вопрос по кредиту в банке", "ru", "out_of_remit"),
        ("как записаться в цон", "ru", "booking"),
        ("не могу войти в мобильное приложение", "ru", "egov"),
        ("банктен несие алу", "kk", "out_of_remit"),
        ("цонға кезекке жазылғым келеді", "kk", "booking"),
    ],
)
def test_open_question_maps_to_a_topic(said, language, topic):
    match = IntentClassifier(TOPICS).classify(said, language)
    assert match is not None and match.target == topic


def test_open_question_off_every_topic_gives_none():
    assert IntentClassifier(TOPICS).classify("расскажите анекдот", "ru") is None


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="thresholds"):
        Matcher(MAIN_MENU, accept=0.5, confirm=0.7)
