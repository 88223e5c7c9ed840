"""Numbers and minutes as Asterisk sound names, checked by the words those sounds speak."""

from __future__ import annotations

import pytest

from ivr.prompts.catalog import QUEUE_SOUNDS, asterisk_sound_texts
from ivr.prompts.numbers import minutes_phrase, russian_plural, say_number_prompts

WORDS = {lang: {t.name: t.text for t in asterisk_sound_texts(lang)} for lang in ("kk", "ru")}


def spoken(sounds: list[str], language: str) -> str:
    return " ".join(WORDS[language][sound] for sound in sounds)


@pytest.mark.parametrize(
    ("minutes", "words"),
    [
        (1, "одна минута"),
        (2, "две минуты"),
        (4, "четыре минуты"),
        (5, "пять минут"),
        (11, "одиннадцать минут"),
        (12, "двенадцать минут"),
        (21, "двадцать одна минута"),
        (22, "двадцать две минуты"),
        (25, "двадцать пять минут"),
        (111, "сто одиннадцать минут"),
        (0, "ноль минут"),
    ],
)
def test_russian_minutes_agree_with_the_number(minutes: int, words: str) -> None:
    assert spoken(minutes_phrase(minutes, "ru"), "ru") == words


@pytest.mark.parametrize(("minutes", "words"), [(1, "бір минут"), (5, "бес минут"), (21, "жиырма бір минут")])
def test_kazakh_minutes_keep_the_noun_singular(minutes: int, words: str) -> None:
    assert spoken(minutes_phrase(minutes, "kk"), "kk") == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (7, "семь"),
        (40, "сорок"),
        (215, "двести пятнадцать"),
        (1000, "одна тысяча"),
        (2000, "две тысячи"),
        (5000, "пять тысяч"),
        (11000, "одиннадцать тысяч"),
        (21000, "двадцать одна тысяча"),
        (1999, "одна тысяча девятьсот девяносто девять"),
        (1_000_000, "один миллион"),
        (2_000_000, "два миллиона"),
        (5_300_001, "пять миллионов триста тысяч один"),
        (-3, "минус три"),
    ],
)
def test_russian_numbers(n: int, words: str) -> None:
    assert spoken(say_number_prompts(n, "ru"), "ru") == words


def test_russian_gender_changes_only_one_and_two() -> None:
    assert spoken(say_number_prompts(1, "ru", gender="f"), "ru") == "одна"
    assert spoken(say_number_prompts(2, "ru", gender="n"), "ru") == "два"
    assert say_number_prompts(2, "ru", gender="n") == ["digits/2n"]  # the file app_queue's "n" asks for
    assert spoken(say_number_prompts(3, "ru", gender="f"), "ru") == "три"


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "нөл"),
        (13, "он үш"),
        (100, "жүз"),
        (221, "екі жүз жиырма бір"),
        (1414, "бір мың төрт жүз он төрт"),
        (2_500_000, "екі миллион бес жүз мың"),
        (3_000_000_000 // 2, "бір миллиард бес жүз миллион"),
    ],
)
def test_kazakh_numbers(n: int, words: str) -> None:
    assert spoken(say_number_prompts(n, "kk"), "kk") == words


def test_every_number_up_to_a_hundred_thousand_uses_only_catalogued_sounds() -> None:
    for language in ("kk", "ru"):
        for n in range(100_001):
            for sound in say_number_prompts(n, language):
                assert sound in WORDS[language], (language, n, sound)


def test_russian_plural_forms() -> None:
    assert [russian_plural(n) for n in (1, 2, 5, 11, 14, 21, 101, 112, 1000)] == [
        "one", "few", "many", "many", "many", "one", "one", "many", "many",
    ]  # fmt: skip


def test_bad_numbers_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="kk and ru"):
        say_number_prompts(5, "en")
    with pytest.raises(ValueError, match="up to"):
        say_number_prompts(1_000_000_000, "ru")
    with pytest.raises(TypeError):
        say_number_prompts(True, "ru")
    with pytest.raises(ValueError, match="gender"):
        say_number_prompts(1, "ru", gender="x")
    with pytest.raises(ValueError, match="negative"):
        minutes_phrase(-1, "kk")


def test_catalog_has_every_sound_app_queue_plays_by_default() -> None:
    # The defaults app_queue.c sets (Asterisk 22): each must exist in both languages.
    defaults = {
        "queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-holdtime", "queue-minutes",
        "queue-minute", "queue-seconds", "queue-thankyou", "queue-reporthold", "queue-periodic-announce",
        "queue-quantity1", "queue-quantity2",
    }  # fmt: skip
    for language in ("kk", "ru"):
        assert set(QUEUE_SOUNDS[language]) == defaults
        names = {t.name for t in asterisk_sound_texts(language)}
        assert {"digits/star", "digits/pound", "digits/minus", "digits/thousand"} <= names
    assert {"digits/1f", "digits/2f", "digits/1n", "digits/2n", "digits/900", "digits/thousands-i"} <= set(
        WORDS["ru"]
    )
    assert {"digits/hundred", "digits/billion"} <= set(WORDS["kk"])
