"""Asterisk's own sound names, worded in Kazakh and Russian, so SayNumber, SayDigits and app_queue's
announcements speak the caller's language once CHANNEL(language) is set.

Names are those app_queue.c sets as defaults (queue-youarenext, queue-thereare, ...) and those say.c
looks up (see numbers.py). The wording is chosen so each file stays grammatical whatever number
app_queue puts beside it: "Ваш номер в очереди: N" rather than an ordinal that would have to agree.
Asterisk cannot make "минута/минуты/минут" agree (it plays queue-minute only for exactly 1); the engine's
own announcements use numbers.minutes_phrase, which does. app_queue in Asterisk 22 no longer plays
queue-less-than, and a Kazakh "less than N" needs a suffix on the number itself, so it is not generated.
"""

from __future__ import annotations

from ivr.prompts.numbers import number_sound_texts
from ivr.texts import PromptText

QUEUE_SOUNDS: dict[str, dict[str, str]] = {
    "kk": {
        "queue-youarenext": "Сіздің қоңырауыңыз кезекте бірінші. Сізге келесі бос оператор жауап береді.",
        "queue-thereare": "Сіздің кезектегі нөміріңіз",
        "queue-callswaiting": "Оператордың жауабын күтіңіз.",
        "queue-holdtime": "Күтудің болжамды уақыты",
        "queue-minute": "минут",
        "queue-minutes": "минут",
        "queue-seconds": "секунд",
        "queue-thankyou": "Күткеніңізге рахмет.",
        "queue-reporthold": "Күту уақыты",
        "queue-periodic-announce": "Барлық операторлар қазір бос емес. Келесі бос операторды күтіңіз.",
        "queue-quantity1": "Кезекте күтіп тұрғандар саны мынадан көп:",
        "queue-quantity2": "Күте тұрыңыз.",
    },
    "ru": {
        "queue-youarenext": "Ваш звонок первый в очереди. Вам ответит следующий освободившийся оператор.",
        "queue-thereare": "Ваш номер в очереди",
        "queue-callswaiting": "Пожалуйста, ожидайте ответа оператора.",
        "queue-holdtime": "Примерное время ожидания",
        "queue-minute": "минута",
        "queue-minutes": "минут",
        "queue-seconds": "секунд",
        "queue-thankyou": "Спасибо за ожидание.",
        "queue-reporthold": "Время ожидания",
        "queue-periodic-announce": (
            "Все операторы сейчас заняты. Пожалуйста, ожидайте ответа следующего освободившегося оператора."
        ),
        "queue-quantity1": "Количество звонков в очереди превышает",
        "queue-quantity2": "Пожалуйста, ожидайте.",
    },
}

# SayDigits (ast_get_digit_str) also plays these for '*', '#' and '-'.
SYMBOL_SOUNDS: dict[str, dict[str, str]] = {
    "kk": {"digits/star": "жұлдызша", "digits/pound": "тор белгісі", "digits/minus": "минус"},
    "ru": {"digits/star": "звёздочка", "digits/pound": "решётка", "digits/minus": "минус"},
}


def asterisk_sound_texts(language: str) -> list[PromptText]:
    """Number, symbol and queue-announcement sounds for one language, in a stable order."""
    if language not in QUEUE_SOUNDS:
        raise ValueError(f"language {language!r}: Asterisk sounds are worded for kk and ru")
    texts = number_sound_texts(language) | SYMBOL_SOUNDS[language] | QUEUE_SOUNDS[language]
    return [PromptText(name, language, text) for name, text in texts.items()]
