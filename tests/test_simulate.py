"""`ivr simulate`: the real interpreter runs menus/1414.yaml, answered by typed lines, shown as text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.engine.simulate import (
    FixedHours,
    SimulationResult,
    Typed,
    parse_line,
    scripted_lines,
    simulate,
)
from ivr.menus.loader import load_menu
from ivr.menus.model import Menu
from ivr.menus.validator import ValidatorOptions

ROOT = Path(__file__).parent.parent
MENU_1414 = load_menu(
    ROOT / "menus" / "1414.yaml", ValidatorOptions(queues_conf=ROOT / "asterisk-conf" / "queues.conf")
)
ALL_KINDS = load_menu(
    ROOT / "tests" / "menus" / "all_kinds.yaml",
    ValidatorOptions(queues_conf=ROOT / "tests" / "menus" / "queues.conf"),
)


async def call(
    lines: list[str], menu: Menu = MENU_1414, operators_at_work: bool = True, **options: object
) -> tuple[SimulationResult, list[str]]:
    shown: list[str] = []
    result = await simulate(
        menu,
        scripted_lines(lines, shown.append),
        shown.append,
        hours=FixedHours(operators_at_work),
        **options,  # type: ignore[arg-type]
    )
    return result, shown


def said(node: str, language: str, menu: Menu = MENU_1414, index: int = 0) -> str:
    """The line the simulator shows for a node's prompt: node, sound, language and the menu's text."""
    prompt = menu.nodes[node].say[index]
    return f"[{node}] {prompt.sound} ({language}): {prompt.texts.get(language)}"


async def test_russian_caller_reaches_the_booking_queue_by_keys() -> None:
    result, shown = await call(["2", "2", "2"])
    assert said("welcome", "kk") in shown  # the greeting is said in both languages, Kazakh first
    assert shown.index(said("welcome", "kk")) < shown.index(said("welcome", "ru"))
    assert "→ language ru (by dtmf)" in shown
    assert said("main", "ru") in shown
    assert shown[shown.index(said("main", "ru")) + 1] == "[main] keys or words> 2"
    assert "→ booking (chosen at main by dtmf)" in shown
    assert "→ queue_booking (chosen at booking by dtmf)" in shown
    assert "→ queue ru-booking (priority 0, timeout 900 s)" in shown
    assert result.visited == ("welcome", "greeting", "main", "booking", "queue_booking")
    assert (result.outcome, result.language, result.topic, result.queue) == (
        "queued",
        "ru",
        "booking",
        "ru-booking",
    )
    assert result.hangup_by == "operator"
    assert shown[-2] == "call ended: queued; language ru; topic booking; hung up by operator"


async def test_russian_caller_reaches_the_booking_queue_by_words() -> None:
    result, shown = await call(["2", "запись", "бронь пропала"])
    assert "   heard «запись» (confidence 1.00)" in shown
    assert "→ booking (chosen at main by speech)" in shown
    assert "→ queue_booking (chosen at booking by speech)" in shown
    assert result.queue == "ru-booking"
    assert result.visited[-2:] == ("booking", "queue_booking")


async def test_a_word_form_the_menu_does_not_list_still_matches_and_is_pointed_out() -> None:
    result, shown = await call(["2", "say хочу записаться", "hangup"])
    assert "→ booking (chosen at main by speech)" in shown
    assert any(line.startswith("   note: «хочу» not among this node's phrases") for line in shown)
    assert result.hangup_by == "caller"


async def test_kazakh_caller_hears_kazakh_texts_and_books_in_kazakh() -> None:
    result, shown = await call(["1", "кезек", "2"])
    assert "→ language kk (by dtmf)" in shown
    assert said("greeting", "kk") in shown
    assert said("main", "kk") in shown
    assert said("booking", "kk") in shown
    after_welcome = shown[shown.index("→ language kk (by dtmf)") :]
    assert not any("(ru): " in line for line in after_welcome)
    assert "→ queue kk-booking (priority 0, timeout 900 s)" in shown
    assert (result.language, result.queue) == ("kk", "kk-booking")


async def test_silence_everywhere_ends_with_the_operator() -> None:
    result, shown = await call(["2", "", "", "", "", ""])
    assert shown.count("   silence at main") == 3
    assert "   main: no valid answer after its retries" in shown
    assert shown.count("   silence at ask_topic") == 2
    assert "   ask_topic: no valid answer after its retries" in shown
    assert said("main", "ru") in shown
    assert (
        "[main] 1414/main-short (ru): Нажмите номер раздела или назовите тему. Прослушать меню ещё раз — звёздочка."
        in shown
    )
    assert "→ queue ru-general (priority 0, timeout 900 s)" in shown
    assert result.visited == ("welcome", "greeting", "main", "ask_topic", "operator")
    assert (result.outcome, result.queue) == ("queued", "ru-general")


async def test_end_of_input_hangs_up() -> None:
    result, shown = await call(["2"])
    assert shown[-5:-2] == [
        said("main", "ru"),
        "[main] keys or words> (end of input)",
        "   caller hangs up (end of input)",
    ]
    assert (result.outcome, result.hangup_by, result.queue) == ("abandoned", "caller", None)
    assert result.visited == ("welcome", "greeting", "main")


async def test_lang_option_answers_the_language_choice() -> None:
    result, shown = await call(["hangup"], language="ru")
    assert "[welcome] keys or words> lang ru   (--lang)" in shown
    assert "→ language ru (by dtmf)" in shown
    assert result.language == "ru"


async def test_lang_command_switches_language_with_the_menus_own_key() -> None:
    result, shown = await call(["2", "lang kk", "lang kk", "кезек", "1"])
    assert "→ language (menu-wide, at main by dtmf)" in shown  # key 9 pressed for the admin
    assert "→ language kk (by dtmf)" in shown
    assert said("main", "kk") in shown
    assert "   the call is already in kk" in shown
    assert "→ booking (chosen at main by speech)" in shown
    assert "→ top (chosen at booking by dtmf)" in shown
    assert result.language == "kk"


async def test_keys_typed_ahead_interrupt_the_prompts_that_take_them() -> None:
    # 1 at main (egov), 2 during egov's prompt (the app), * during the answer (say it again).
    result, shown = await call(["2", "12*", "hangup"])
    assert "→ egov (chosen at main by dtmf)" in shown
    assert "   key 2 interrupts the prompt" in shown
    assert "→ egov_app (chosen at egov by dtmf during the prompt)" in shown
    assert "→ repeat (menu-wide, at egov_app by dtmf during the prompt)" in shown
    assert result.visited == ("welcome", "greeting", "main", "egov", "egov_app", "egov_app")


async def test_closed_hours_offer_a_callback_that_is_stored() -> None:
    result, shown = await call(["1", "0", "1", "1"], operators_at_work=False)
    assert "→ operator (chosen at main by dtmf)" in shown
    assert "→ operators are not working now (queue kk-general)" in shown
    number = next(line for line in shown if line.startswith("[operator] ivr/callback-number-is&"))
    assert number.endswith(
        "(kk): Сізге мына нөмірге қоңырау шаламыз: жеті жеті нөл бір бір екі үш төрт бес алты жеті"
    )
    assert "→ callback request #1 stored for queue kk-general" in shown
    assert "→ engine hangs up" in shown
    assert (result.outcome, result.hangup_by, result.queue) == ("callback", "engine", None)


async def test_a_queue_nobody_answers_falls_back_to_the_general_line() -> None:
    result, shown = await call(["2", "2", "2", "2", "2"], queue_outcome="timeout")
    assert "→ queue ru-booking (priority 0, timeout 900 s)" in shown
    assert "   queue result: TIMEOUT" in shown
    assert "→ queue ru-general (priority 0, timeout 900 s)" in shown
    # "2" at each callback offer: stay on the line; after the last queue, an apology and a hang-up
    assert any(line.startswith("[operator] ivr/operators-busy (ru): Извините, сейчас все") for line in shown)
    assert result.outcome == "no_operator" and result.hangup_by == "engine"
    assert result.visited[-2:] == ("queue_booking", "operator")


async def test_transfer_is_shown_and_leaves_the_engine() -> None:
    result, shown = await call(["2", "31"], menu=ALL_KINDS)
    assert "→ transfer to +77172000000 (context from-ivr)" in shown
    assert (result.outcome, result.transfer, result.hangup_by) == ("transferred", "+77172000000", None)


async def test_keys_only_prompt_does_not_hear_words() -> None:
    result, shown = await call(["2", "запись", "hangup"], speech=False)
    assert "[main] keys> запись" in shown
    assert "   keys only here: words are not heard (counts as silence)" in shown
    assert "   silence at main" in shown
    assert result.hangup_by == "caller"


@pytest.mark.parametrize(
    ("line", "typed"),
    [
        ("12#", Typed("keys", "12#")),
        (" 1 2 ", Typed("keys", "12")),
        ("", Typed("silence")),
        ("запись в ЦОН", Typed("words", "запись в ЦОН")),
        ("say 2", Typed("words", "2")),
        ("lang KK", Typed("lang", "kk")),
        ("hangup", Typed("hangup", "typed")),
        (None, Typed("hangup", "end of input")),
        ("help", Typed("help")),
    ],
)
def test_parse_line(line: str | None, typed: Typed) -> None:
    assert parse_line(line) == typed


def test_command_line_runs_a_call_from_piped_input() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "ivr", "simulate", "1414", "--lang", "kk", "--open"],
        input="кезек\n2\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "ivr simulate: menu 1414 (menus/1414.yaml); operators open (--open); speech: typed words"
    )
    assert "[main] keys or words> кезек" in lines
    assert "→ queue kk-booking (priority 0, timeout 900 s)" in lines
    assert lines[-1] == "path: welcome → greeting → main → booking → queue_booking"
    assert "warning" not in done.stderr


def test_command_line_names_a_missing_menu() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ivr", "simulate", "no-such-menu"],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no menu 'no-such-menu' (looked for menus/no-such-menu.yaml)" in done.stderr


async def test_callback_to_another_number_typed_with_hash() -> None:
    result, shown = await call(["2", "0", "1", "2", "87001234567#", "1"], operators_at_work=False)
    assert "[operator] keys, end with #> 87001234567#" in shown
    confirmed = [line for line in shown if line.startswith("[operator] ivr/callback-number-is&")]
    assert confirmed[-1].endswith(
        "(ru): Мы перезвоним вам на номер: семь семь ноль ноль один два три четыре пять шесть семь"
    )
    assert "→ callback request #1 stored for queue ru-general" in shown
    assert result.outcome == "callback"


async def test_an_options_own_phrase_with_a_person_word_reaches_the_topic_specialist() -> None:
    # "поговорить со специалистом" holds a word for a person, but it is the booking node's own
    # option: the booking desk, not the general operator line.
    result, _ = await call(["2", "запись", "поговорить со специалистом"])
    assert result.queue == "ru-booking"


async def test_a_person_word_alone_still_reaches_the_operator_from_a_topic() -> None:
    result, _ = await call(["2", "запись", "оператор"])
    assert result.queue == "ru-general"


async def test_the_language_is_chosen_by_saying_it() -> None:
    result, shown = await call(["русский", "0"])
    assert "→ language ru (by speech)" in shown
    assert result.language == "ru"
