"""The phrase test set through the engine's own decision at the 1414 main menu and open question.

Targets (issue 15): at least 95% decided right, at most 1% sent to a wrong branch; "not sure, press a
key" is never counted as wrong. `bench/bench_intents.py` prints the same figures with a confusion table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ivr.menus.loader import load_menu
from ivr.testing.phrase_bench import UNSURE, Outcome, Tally, load_phrases, phrases_from, report, run

ROOT = Path(__file__).resolve().parent.parent
PHRASES = load_phrases(ROOT / "tests" / "speech_phrases" / "1414.yaml")
PLACES = ("main", "ask_topic")
ACTIONS = ("operator", "repeat", "back", "top", "language")


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return run(load_menu(ROOT / "menus" / "1414.yaml"), PHRASES)


def test_the_set_is_large_and_covers_every_topic_and_action():
    assert len(PHRASES) >= 300
    assert len({(p.text, p.language) for p in PHRASES}) == len(PHRASES), "a phrase is listed twice"
    per_group = Counter((p.group, p.language) for p in PHRASES)
    groups = {p.group for p in PHRASES}
    for group in groups:
        assert per_group[(group, "kk")] >= 1 and per_group[(group, "ru")] >= 1, group
    expected = {p.expected[place] for p in PHRASES for place in PLACES}
    menu = load_menu(ROOT / "menus" / "1414.yaml")
    main_targets = {o.target.node for o in menu.nodes["main"].options if o.target.node != menu.operator}
    ask_targets = {o.target.node for o in menu.nodes["ask_topic"].options}
    assert main_targets | ask_targets | set(ACTIONS) | {UNSURE} <= expected
    assert all(set(p.expected) == set(PLACES) for p in PHRASES)


def test_targets_are_met(outcomes):
    total = Tally.of(outcomes)
    figures = report(outcomes)
    assert total.accuracy >= 0.95, figures
    assert total.wrong_rate <= 0.01, figures


@pytest.mark.parametrize("language", ["kk", "ru"])
@pytest.mark.parametrize("place", PLACES)
def test_each_language_at_each_place_stays_near_the_targets(outcomes, language, place):
    part = Tally.of([o for o in outcomes if o.phrase.language == language and o.place == place])
    assert part.accuracy >= 0.93 and part.wrong_rate <= 0.02, report(outcomes)


def test_the_decision_is_the_interpreters():
    # A repeated word is the interpreter's sign of a forced restricted-grammar result: not trusted.
    menu = load_menu(ROOT / "menus" / "1414.yaml")
    said = {"booking": {"expect": {"main": "booking"}, "ru": ["запись", "запись запись"]}}
    once, twice = run(menu, phrases_from({"groups": said}))
    assert (once.decided, twice.decided) == ("booking", UNSURE)


def test_menu_wide_phrases_are_in_a_menus_restricted_grammar():
    # A restricted recogniser hears only the grammar's words: "повторите" must be one at a menu.
    menu = load_menu(ROOT / "menus" / "1414.yaml")
    said = {
        "repeat": {"expect": {"main": "repeat"}, "kk": ["қайталаңыз"], "ru": ["повторите"]},
        "back": {"expect": {"main": "back"}, "kk": ["артқа"], "ru": ["назад"]},
        "top": {"expect": {"main": "top"}, "kk": ["басты мәзір"], "ru": ["главное меню"]},
        "language": {"expect": {"main": "language"}, "kk": ["орысша"], "ru": ["по-казахски"]},
        "operator": {"expect": {"main": "operator"}, "kk": ["операторға"], "ru": ["оператора"]},
    }
    outcomes = run(menu, phrases_from({"groups": said}), grammar_only=True)
    assert [o.phrase.text for o in outcomes if not o.right] == []


def test_a_restricted_recogniser_hearing_unk_for_unlisted_forms_sends_nobody_astray():
    # The pessimistic view of a menu's restricted grammar: fewer decisions, never a wrong branch.
    outcomes = run(load_menu(ROOT / "menus" / "1414.yaml"), PHRASES, grammar_only=True)
    total = Tally.of(outcomes)
    assert total.wrong_rate <= 0.01 and total.accuracy >= 0.9, report(outcomes)
