"""Every validation problem names file:line:column and says how to fix it."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from ivr.menus import MenuError, MenuProblem, ValidatorOptions, asterisk_queue_names, check_menu, load_menu
from ivr.texts import PromptText

HERE = Path(__file__).parent
BAD = HERE / "menus" / "bad"
OPTIONS = ValidatorOptions(queues_conf=HERE / "menus" / "queues.conf")


def problems_of(name: str, options: ValidatorOptions = OPTIONS) -> list[MenuProblem]:
    return check_menu(BAD / name, options).problems


def assert_problem(
    problems: list[MenuProblem], file: str, line: int, column: int, text: str, severity: str = "error"
) -> None:
    for problem in problems:
        if (
            Path(problem.path).name == file
            and (problem.line, problem.column, problem.severity) == (line, column, severity)
            and text in problem.message
        ):
            return
    listing = "\n".join(str(p) for p in problems)
    pytest.fail(f"no {severity} at {file}:{line}:{column} containing {text!r}; got:\n{listing}")


def test_yaml_syntax_error_points_at_the_fault() -> None:
    problems = problems_of("syntax.yaml")
    assert len(problems) == 1
    assert_problem(problems, "syntax.yaml", 5, 10, 'this "{" is not closed before line 6: end it with "}"')
    assert problems[0].excerpt == '    say: {kk: "Бір", ru: "Один"'


def test_unknown_keys_suggest_the_closest_known_key() -> None:
    problems = problems_of("typo_keys.yaml")
    assert_problem(
        problems,
        "typo_keys.yaml",
        2,
        1,
        'unknown key "defualts" at the top of a menu (did you mean "defaults"?)',
    )
    assert_problem(
        problems,
        "typo_keys.yaml",
        8,
        5,
        'unknown key "optoins" in node "main" (kind menu) (did you mean "options"?)',
    )
    assert_problem(problems, "typo_keys.yaml", 5, 3, 'node "main" (kind menu) needs "options:"')


def test_a_key_of_another_kind_says_which_kind_uses_it() -> None:
    problems = problems_of("typo_keys.yaml")
    assert_problem(
        problems,
        "typo_keys.yaml",
        15,
        5,
        'unknown key "options" in node "note" (kind info); it belongs to kind menu, question',
    )


def test_unknown_kind_is_named_with_a_suggestion() -> None:
    assert_problem(
        problems_of("typo_keys.yaml"), "typo_keys.yaml", 17, 11, 'unknown kind "manu" (did you mean "menu"?)'
    )


def test_every_text_needs_both_languages_and_no_empty_text() -> None:
    problems = problems_of("texts.yaml")
    assert_problem(problems, "texts.yaml", 3, 10, 'text "sorry" has no Russian text; add ru: ...')
    assert_problem(problems, "texts.yaml", 7, 15, 'node "main" say: the kk text is empty')
    assert_problem(problems, "texts.yaml", 9, 51, 'unknown language "en"; use kk and ru')


def test_unknown_shared_text_is_reported_with_a_suggestion() -> None:
    assert_problem(
        problems_of("texts.yaml"),
        "texts.yaml",
        8,
        14,
        '"sory" is not a text id from texts: (did you mean "sorry"?)',
    )


def test_targets_must_exist() -> None:
    problems = problems_of("targets.yaml")
    assert_problem(
        problems, "targets.yaml", 7, 26, 'leads to "mian", which is not a node (did you mean "main"?)'
    )
    assert_problem(problems, "targets.yaml", 9, 17, 'leads to "operatr", which is not a node')


def test_loop_without_an_exit_is_an_error() -> None:
    assert_problem(
        problems_of("targets.yaml"), "targets.yaml", 10, 3, "loop without an exit: loop_a -> loop_b -> loop_a"
    )


def test_unreachable_node_is_a_warning() -> None:
    assert_problem(
        problems_of("targets.yaml"),
        "targets.yaml",
        17,
        3,
        'node "forgotten" cannot be reached',
        severity="warning",
    )


def test_dtmf_keys_valid_unique_and_clear_of_menu_wide_keys() -> None:
    problems = problems_of("keys.yaml")
    assert_problem(problems, "keys.yaml", 11, 15, "key 'A' is not a DTMF key; use 0-9, * or #")
    assert_problem(problems, "keys.yaml", 13, 9, 'key "1" is already used at line 12')
    assert_problem(problems, "keys.yaml", 14, 9, 'key "*" is the menu-wide repeat key (keys.repeat)')
    assert_problem(problems, "keys.yaml", 15, 9, 'key "12" and key "1" start alike')
    assert_problem(problems, "keys.yaml", 16, 9, 'main", 6th option needs a key: this node takes DTMF only')


def test_an_option_may_repeat_the_operator_key_when_it_leads_to_the_operator() -> None:
    # keys.yaml option 2 is "1 -> operator": no complaint; all_kinds.yaml lists "0 -> operator" cleanly
    problems = check_menu(HERE / "menus" / "all_kinds.yaml", OPTIONS).problems
    assert problems == []


def test_queue_names_must_be_defined_in_queues_conf() -> None:
    assert_problem(
        problems_of("keys.yaml"),
        "keys.yaml",
        19,
        12,
        'queue "ru-nowhere" (ru) is not defined in',
        severity="error",
    )
    assert asterisk_queue_names(HERE / "menus" / "queues.conf") == {
        "kk-general",
        "ru-general",
        "kk-booking",
        "ru-booking",
    }


def test_missing_queues_conf_skips_the_check_with_a_warning(tmp_path: Path) -> None:
    problems = problems_of("keys.yaml", ValidatorOptions(queues_conf=tmp_path / "queues.conf"))
    assert not any("ru-nowhere" in p.message for p in problems)
    assert_problem(
        problems, "keys.yaml", 1, 1, "queue names not checked against Asterisk", severity="warning"
    )


def test_timeouts_positive_retries_at_least_one_inputs_known() -> None:
    problems = problems_of("numbers.yaml")
    assert_problem(problems, "numbers.yaml", 5, 21, 'input "keypad" is unknown; use dtmf, speech')
    assert_problem(problems, "numbers.yaml", 6, 14, '"timeout" must be at least 1 second, got 0')
    assert_problem(problems, "numbers.yaml", 7, 26, '"inter_digit_timeout" must be positive, got -1')
    assert_problem(problems, "numbers.yaml", 8, 14, '"retries" must be at least 1, got 0')


def test_speech_only_option_needs_phrases_in_both_languages() -> None:
    assert_problem(problems_of("numbers.yaml"), "numbers.yaml", 11, 9, "1st option has no ru phrases")


def test_hours_topics_ids_and_duplicates() -> None:
    problems = problems_of("misc.yaml")
    assert_problem(problems, "misc.yaml", 4, 13, 'unknown time zone "Asia/Almati"')
    assert_problem(problems, "misc.yaml", 5, 15, "close before they open")
    assert_problem(problems, "misc.yaml", 5, 30, '"sunday" is not a weekday (did you mean "sun"?)')
    assert_problem(problems, "misc.yaml", 6, 14, "holiday 2026-13-01: there is no such day in the calendar")
    assert_problem(problems, "misc.yaml", 15, 3, 'key "main" appears twice in this mapping')
    assert_problem(  # on the topic: line of the second "main", the one YAML keeps
        problems, "misc.yaml", 17, 12, 'topic "generl", not listed in topics: (did you mean "general"?)'
    )
    assert_problem(problems, "misc.yaml", 18, 3, 'node id "Bad-Id" must start with a-z')


def test_include_clashes_and_missing_fragments_name_both_files() -> None:
    problems = problems_of("include_clash.yaml")
    assert_problem(problems, "_clash.yaml", 2, 3, 'node "main" is already defined at')
    assert "include_clash.yaml:4:3" in next(p.message for p in problems if "already defined" in p.message)
    assert_problem(problems, "include_clash.yaml", 2, 24, "_missing.yaml not found")


def test_load_menu_raises_with_every_problem() -> None:
    with pytest.raises(MenuError) as caught:
        load_menu(BAD / "keys.yaml", OPTIONS)
    assert len(caught.value.errors) == 6
    assert str(caught.value).splitlines()[0].startswith(f"{BAD / 'keys.yaml'}:11:15: error:")


def _write_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)


def test_prompt_hook_problems_point_at_the_node(tmp_path: Path) -> None:
    # A real check the prompts package could supply: the recorded file must exist.
    prompts = tmp_path / "prompts"
    menu = load_menu(HERE / "menus" / "all_kinds.yaml", OPTIONS)
    for text in menu.prompt_texts():
        if text.name != "all_kinds/main-short" or text.language != "ru":
            _write_wav(prompts / text.language / f"{text.name}.wav")

    def recorded(texts: list[PromptText]) -> list[str]:
        return [
            f"{t.language}/{t.name}.wav is missing"
            for t in texts
            if not (prompts / t.language / f"{t.name}.wav").exists()
        ]

    problems = check_menu(
        HERE / "menus" / "all_kinds.yaml", ValidatorOptions(OPTIONS.queues_conf, recorded)
    ).problems
    assert [str(p) for p in problems] == [
        f"{HERE / 'menus' / 'all_kinds.yaml'}:34:3: error: prompt audio: ru/all_kinds/main-short.wav is missing"
    ]


def test_vocabulary_hook_flags_unknown_words() -> None:
    known = {
        "ru": {"запись", "очередь", "назад", "оператор", "русский", "вернуться", "сначала", "заново", "еще"}
    }
    options = ValidatorOptions(OPTIONS.queues_conf, None, lambda lang: known.get(lang))
    problems = check_menu(HERE / "menus" / "all_kinds.yaml", options).problems
    assert [p.message for p in problems] == []  # every ru word known; kk has no model (None): skipped
    known["ru"].discard("очередь")
    problems = check_menu(HERE / "menus" / "all_kinds.yaml", options).problems
    assert_problem(
        problems,
        "all_kinds.yaml",
        45,
        9,
        'ru phrase "очередь": очередь not in the ru speech model',
        "warning",
    )
