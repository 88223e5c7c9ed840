"""Ambiguity on purpose: shared words, person words with verbs of talking, fillers, short near misses."""

from __future__ import annotations

import pytest

from ivr.speech.matcher import IntentClassifier, Matcher, is_operator_request, word_form, word_similarity

MAIN = [
    ("egov", {"ru": ["приложение", "портал", "эцп"], "kk": ["қосымша", "портал", "эцп"]}),
    ("home_visit", {"ru": ["выезд на дом", "вызвать сотрудника"], "kk": ["үйге шақыру", "шақыру"]}),
    ("ashyq", {"ru": ["приложение ашык", "ашык"], "kk": ["ашық қосымшасы", "ашық"]}),
    ("booking", {"ru": ["запись", "очередь"], "kk": ["кезек", "кезекке жазылу"]}),
    ("documents", {"ru": ["статус заявки", "готовность документов"], "kk": ["құжат дайын ба"]}),
]


@pytest.mark.parametrize(
    ("said", "language", "target"),
    [
        ("приложение ашык не работает", "ru", "ashyq"),  # "приложение" is shared; "ашык" decides
        ("ашық қосымшасы істемейді", "kk", "ashyq"),
        ("не могу войти в приложение", "ru", "egov"),  # only the shared word, and only egov has it alone
        ("мобильді қосымшаға кіре алмаймын", "kk", "egov"),
    ],
)
def test_a_shared_word_decides_nothing_between_the_options_sharing_it(said, language, target):
    for decide in (Matcher(MAIN).match, IntentClassifier(MAIN).classify):
        match = decide(said, language)
        assert match is not None and match.target == target, (decide, match)


@pytest.mark.parametrize(
    ("said", "language"),
    [("запись и статус заявки", "ru"), ("кезек пен эцп", "kk"), ("портал или очередь", "ru")],
)
def test_two_options_each_with_a_word_of_their_own_are_not_guessed(said, language):
    assert Matcher(MAIN).match(said, language) is None
    assert IntentClassifier(MAIN).classify(said, language) is None


@pytest.mark.parametrize(
    ("said", "language"),
    [
        ("операторды шақырыңызшы", "kk"),  # "шақыру" is also a home-visit phrase
        ("маманды шақырыңыз", "kk"),
        ("маған адаммен сөйлесу керек", "kk"),
        ("позовите оператора на линию", "ru"),
        ("позовите сотрудника", "ru"),
    ],
)
def test_a_person_word_with_a_verb_of_calling_is_the_operator(said, language):
    assert Matcher(MAIN).match(said, language) is None  # no option: the operator rule takes it
    assert IntentClassifier(MAIN).classify(said, language) is None
    assert is_operator_request(said, language)


@pytest.mark.parametrize(
    ("said", "language", "target"),
    [
        ("поговорить со специалистом по записи", "ru", "booking"),  # a topic word is present
        ("маманмен эцп туралы сөйлескім келеді", "kk", "egov"),
        ("вызвать сотрудника", "ru", "home_visit"),  # the option's own phrase names the person
        ("қызметкерді үйге шақыру", "kk", "home_visit"),
    ],
)
def test_a_topic_word_beside_the_person_word_keeps_the_option(said, language, target):
    match = Matcher(MAIN).match(said, language)
    assert match is not None and match.target == target


def test_fillers_the_caller_says_match_nothing():
    # "керек" (need) is one letter from "кезек" (queue): a filler must not reach the queue.
    assert Matcher(MAIN).match("маған керек еді", "kk") is None
    assert IntentClassifier(MAIN).classify("маған керек еді", "kk") is None


def test_a_short_near_miss_is_another_word():
    assert word_similarity(word_form("басқа", "kk"), word_form("баспана", "kk")) == 0.0
    assert word_similarity(word_form("керек", "kk"), word_form("кезек", "kk")) == 0.0
    assert word_similarity(word_form("аператор", "ru"), word_form("оператор", "ru")) >= 0.8
