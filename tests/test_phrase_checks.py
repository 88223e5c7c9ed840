"""`ivr check` on phrases: the same phrase in two options of a node once word forms are reduced."""

from __future__ import annotations

from pathlib import Path

from ivr.menus import check_menu
from ivr.speech.matcher import phrase_key

MENU = """\
start: main
keys:
  operator: {key: "0", goto: operator}
nodes:
  main:
    kind: menu
    say: {kk: "Бір немесе екі.", ru: "Один или два."}
    options:
      - {key: "1", goto: booking, phrases: {kk: [кезек, құжат], ru: [запись, документы]}}
      - {key: "2", goto: documents, phrases: {kk: [кезекке, құжаттар], ru: [записи, документ готов]}}
  booking: {kind: hangup, say: {kk: "Кезек.", ru: "Запись."}}
  documents: {kind: hangup, say: {kk: "Құжат.", ru: "Документы."}}
  operator: {kind: hangup, say: {kk: "Оператор.", ru: "Оператор."}}
"""


def test_phrase_key_reduces_word_forms_and_fillers():
    assert phrase_key("записи", "ru") == phrase_key("запись", "ru")
    assert phrase_key("мне бы запись в цон", "ru") == phrase_key("цон запись", "ru")
    assert phrase_key("кезекке", "kk") == phrase_key("кезек", "kk")
    assert phrase_key("құжаттар", "kk") == phrase_key("құжат", "kk")
    assert phrase_key("документ готов", "ru") != phrase_key("документы", "ru")


def test_phrase_key_of_numbers_and_fillers_only():
    """Numbers are their own lemma, as pymorphy3 reads them (ru_lemma no longer asks it); a phrase
    of fillers alone keeps them all."""
    from ivr.speech.normalize_ru import morph_analyzer

    for number in ("0", "7", "042", "1998", "123456789012"):
        assert phrase_key(f"пункт {number}", "ru") == tuple(sorted({"пункт", number}))
        assert morph_analyzer().parse(number)[0].normal_form == number
    assert phrase_key("да", "ru") == ("да",)
    assert phrase_key("мне бы", "ru") == phrase_key("бы мне", "ru") != ()


def test_a_phrase_of_two_options_in_other_forms_is_a_warning(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text(MENU, encoding="utf-8")
    problems = check_menu(path).problems
    duplicates = [p for p in problems if "in another form" in p.message]
    assert all(p.severity == "warning" for p in duplicates)
    said = sorted(p.message.split('"')[3] for p in duplicates)
    assert said == ["записи", "кезекке", "құжаттар"]  # "документ готов" is more than "документы"
    first = next(p for p in duplicates if '"записи"' in p.message)
    assert first.line == 10 and 'is "запись" of the 1st' in first.message


def test_the_1414_menu_has_no_such_phrase():
    root = Path(__file__).resolve().parent.parent
    problems = check_menu(root / "menus" / "1414.yaml").problems
    assert [p.message for p in problems if "in another form" in p.message] == []
