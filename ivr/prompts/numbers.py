"""Numbers as sequences of sound names, in the digits/ layout Asterisk's SayNumber uses.

Russian follows ast_say_number_full_ru (main/say.c): digits/0..19, digits/20..90, digits/100..900,
digits/1f and 2f (feminine, before "тысяча"), 1n and 2n (neuter, app_queue's "n" option), thousand /
thousands-i / thousands, million / million-a / millions. Kazakh has no say.c rules, so Asterisk speaks
it by the generic (English) rules: digits/0..19, digits/20..90, digits/N + digits/hundred, thousand,
million, billion. Kazakh cardinals compose the same way ("екі жүз жиырма бір" = 221), and a noun after a
numeral stays singular ("бес минут"), so those files read naturally. The engine's own sequences use the
same files; for Kazakh it says 100-199 as "жүз ..." rather than the generic "бір жүз ...".
"""

from __future__ import annotations

from collections.abc import Callable

RU_GENDERS = ("m", "f", "n")

KK_WORDS = {
    0: "нөл", 1: "бір", 2: "екі", 3: "үш", 4: "төрт", 5: "бес", 6: "алты", 7: "жеті", 8: "сегіз",
    9: "тоғыз", 10: "он", 11: "он бір", 12: "он екі", 13: "он үш", 14: "он төрт", 15: "он бес",
    16: "он алты", 17: "он жеті", 18: "он сегіз", 19: "он тоғыз", 20: "жиырма", 30: "отыз",
    40: "қырық", 50: "елу", 60: "алпыс", 70: "жетпіс", 80: "сексен", 90: "тоқсан",
}  # fmt: skip
KK_SCALE_WORDS = {"hundred": "жүз", "thousand": "мың", "million": "миллион", "billion": "миллиард"}

RU_WORDS = {
    0: "ноль", 1: "один", 2: "два", 3: "три", 4: "четыре", 5: "пять", 6: "шесть", 7: "семь",
    8: "восемь", 9: "девять", 10: "десять", 11: "одиннадцать", 12: "двенадцать", 13: "тринадцать",
    14: "четырнадцать", 15: "пятнадцать", 16: "шестнадцать", 17: "семнадцать", 18: "восемнадцать",
    19: "девятнадцать", 20: "двадцать", 30: "тридцать", 40: "сорок", 50: "пятьдесят",
    60: "шестьдесят", 70: "семьдесят", 80: "восемьдесят", 90: "девяносто", 100: "сто",
    200: "двести", 300: "триста", 400: "четыреста", 500: "пятьсот", 600: "шестьсот",
    700: "семьсот", 800: "восемьсот", 900: "девятьсот",
}  # fmt: skip
RU_GENDERED_WORDS = {"1f": "одна", "2f": "две", "1n": "одно", "2n": "два"}
RU_SCALE_WORDS = {
    "thousand": "тысяча", "thousands-i": "тысячи", "thousands": "тысяч",
    "million": "миллион", "million-a": "миллиона", "millions": "миллионов",
}  # fmt: skip

# Sound names of "minute" after a number, by the number's plural form.
RU_MINUTE_SOUNDS = {"one": "ivr/minute-one", "few": "ivr/minute-few", "many": "ivr/minute-many"}
RU_MINUTE_WORDS = {"one": "минута", "few": "минуты", "many": "минут"}
KK_MINUTE_SOUND = "ivr/minute"
KK_MINUTE_WORD = "минут"

_RU_LIMIT = 1_000_000_000  # say.c's Russian rules stop below a milliard
_KK_LIMIT = 2**31 - 1  # Asterisk's int


def russian_plural(n: int) -> str:
    """'one' (1, 21, 101 минута), 'few' (2-4, 22-24 минуты), 'many' (0, 5-20, 25 минут)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


def say_number_prompts(n: int, language: str, gender: str = "m") -> list[str]:
    """The digits/ sound names that speak `n` in `language`, in order (for STREAM FILE one by one).

    `gender` (Russian only) agrees "one"/"two" with the noun that follows: "f" for минута, "n" neuter.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected an int, got {type(n).__name__} {n!r}")
    if language == "ru":
        if gender not in RU_GENDERS:
            raise ValueError(f"gender {gender!r}: expected one of {', '.join(RU_GENDERS)}")
        if abs(n) >= _RU_LIMIT:
            raise ValueError(f"{n}: Russian numbers are spoken up to {_RU_LIMIT - 1}")
        return _signed(n, lambda value: _russian(value, gender))
    if language == "kk":
        if abs(n) > _KK_LIMIT:
            raise ValueError(f"{n}: numbers are spoken up to {_KK_LIMIT}")
        return _signed(n, _kazakh)
    raise ValueError(f"language {language!r}: numbers are spoken in kk and ru")


def minutes_phrase(n: int, language: str) -> list[str]:
    """Sound names for "<n> minutes" with the noun agreeing: 1 минута, 2 минуты, 5 минут, 21 минута."""
    if n < 0:
        raise ValueError(f"{n}: a number of minutes cannot be negative")
    if language == "ru":
        return [*say_number_prompts(n, "ru", gender="f"), RU_MINUTE_SOUNDS[russian_plural(n)]]
    if language == "kk":
        return [*say_number_prompts(n, "kk"), KK_MINUTE_SOUND]
    raise ValueError(f"language {language!r}: numbers are spoken in kk and ru")


def number_sound_texts(language: str) -> dict[str, str]:
    """Every digits/ sound the rules above (and Asterisk's) can ask for, with the words to speak."""
    if language == "ru":
        texts = {f"digits/{n}": word for n, word in RU_WORDS.items()}
        texts |= {f"digits/{name}": word for name, word in RU_GENDERED_WORDS.items()}
        texts |= {f"digits/{name}": word for name, word in RU_SCALE_WORDS.items()}
        texts |= {sound: RU_MINUTE_WORDS[form] for form, sound in RU_MINUTE_SOUNDS.items()}
        return texts
    if language == "kk":
        texts = {f"digits/{n}": word for n, word in KK_WORDS.items()}
        texts |= {f"digits/{name}": word for name, word in KK_SCALE_WORDS.items()}
        texts[KK_MINUTE_SOUND] = KK_MINUTE_WORD
        return texts
    raise ValueError(f"language {language!r}: numbers are spoken in kk and ru")


def _signed(n: int, speak: Callable[[int], list[str]]) -> list[str]:
    if n < 0:
        return ["digits/minus", *speak(-n)]
    if n == 0:
        return ["digits/0"]
    return speak(n)


def _russian(n: int, gender: str) -> list[str]:
    sounds: list[str] = []
    if n >= 1_000_000:
        millions, n = divmod(n, 1_000_000)
        form = {"one": "million", "few": "million-a", "many": "millions"}[russian_plural(millions)]
        sounds += [*_russian(millions, "m"), f"digits/{form}"]
    if n >= 1000:
        thousands, n = divmod(n, 1000)
        form = {"one": "thousand", "few": "thousands-i", "many": "thousands"}[russian_plural(thousands)]
        sounds += [*_russian(thousands, "f"), f"digits/{form}"]
    if n >= 100:
        sounds.append(f"digits/{n - n % 100}")
        n %= 100
    if n >= 20:
        sounds.append(f"digits/{n - n % 10}")
        n %= 10
    if n:
        suffix = gender if n in (1, 2) and gender != "m" else ""
        sounds.append(f"digits/{n}{suffix}")
    return sounds


def _kazakh(n: int) -> list[str]:
    sounds: list[str] = []
    for scale, size in (("billion", 1_000_000_000), ("million", 1_000_000), ("thousand", 1000)):
        if n >= size:
            count, n = divmod(n, size)
            sounds += [*_kazakh(count), f"digits/{scale}"]
    if n >= 100:
        hundreds, n = divmod(n, 100)
        sounds += ["digits/hundred"] if hundreds == 1 else [f"digits/{hundreds}", "digits/hundred"]
    if n >= 20:
        sounds.append(f"digits/{n - n % 10}")
        n %= 10
    if n:
        sounds.append(f"digits/{n}")
    return sounds
