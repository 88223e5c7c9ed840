"""Messages an admin can act on: the mistakes admins make, said plainly, on the line they made them.

Each test edits a copy of the shipped 1414 menu the way an admin slips, then reads what `ivr check`
(check_menu) says: the place, the words, and the quoted line with a caret under the fault.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from ivr.menus import MenuProblem, ValidatorOptions, check_menu
from ivr.menus.library import MenuLibrary
from ivr.menus.yamlpos import YamlSyntaxError, parse_yaml
from tests.menu_commands import run

ROOT = Path(__file__).parent.parent
MENU = ROOT / "menus" / "1414.yaml"
OPTIONS = ValidatorOptions(queues_conf=ROOT / "asterisk-conf" / "queues.conf")


def edited(tmp_path: Path, line: int, old: str, new: str) -> Path:
    """A copy of the 1414 menu with `old` replaced by `new` on one (1-based) line."""
    lines = MENU.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], f"line {line} is {lines[line - 1]!r}"
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path = tmp_path / "1414.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def line_of(text: str) -> int:
    """The 1-based line of the shipped menu holding `text` (so the tests follow the menu's edits)."""
    lines = MENU.read_text(encoding="utf-8").split("\n")
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def only_error(path: Path) -> MenuProblem:
    errors = check_menu(path, OPTIONS).errors
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def test_a_tab_is_named_with_the_line_and_a_caret(tmp_path: Path) -> None:
    line = line_of("    topic: egov")
    problem = only_error(edited(tmp_path, line, "    topic", "\ttopic"))
    assert (problem.line, problem.column) == (line, 1)
    assert problem.message == "a tab character: use spaces (YAML does not allow tabs to indent)"
    assert str(problem).splitlines()[1:] == ["    →topic: egov", "    ^"]


def test_hash_key_read_as_a_comment_says_so_at_the_hash(tmp_path: Path) -> None:
    line = line_of('key: "#"')
    problem = only_error(edited(tmp_path, line, 'key: "#"', "key: #"))
    assert (problem.line, problem.column) == (line, 10)
    assert problem.message == '`#` starts a comment in YAML, so key: has no value: write key: "#"'
    assert "None" not in problem.message
    assert str(problem).splitlines()[1:] == ["        key: #", "             ^"]


def test_hash_as_an_option_key_and_in_a_flow_mapping(tmp_path: Path) -> None:
    line = line_of('      - key: "1"')
    problem = only_error(edited(tmp_path, line, 'key: "1"', "key: #   # the first option"))
    assert (problem.line, problem.column, problem.message.split(",")[0]) == (
        line,
        14,
        "`#` starts a comment in YAML",
    )
    # In {...} the comment also swallows the closing brace: a syntax error, still explained.
    menu = tmp_path / "flow.yaml"
    menu.write_text("start: a\nkeys:\n  back: {key: #}\nnodes:\n  a: {kind: hangup}\n", encoding="utf-8")
    problem = only_error(menu)
    assert (problem.line, problem.column) == (3, 15)
    assert 'write key: "#"' in problem.message


def test_an_empty_key_is_called_empty_not_none(tmp_path: Path) -> None:
    line = line_of('      - key: "2"')
    problem = only_error(edited(tmp_path, line, 'key: "2"', "key:"))
    assert (problem.line, problem.message.split(";")[0]) == (line, 'node "welcome", 2nd choice: key is empty')


def test_a_topic_typo_points_at_the_topic_line(tmp_path: Path) -> None:
    line = line_of("    topic: booking")
    problem = only_error(edited(tmp_path, line, "topic: booking", "topic: bokking"))
    assert (problem.line, problem.column) == (line, 12)
    assert 'has topic "bokking", not listed in topics: (did you mean "booking"?)' in problem.message


def test_topic_names_are_read_and_a_missing_language_is_named(tmp_path: Path) -> None:
    menu = check_menu(MENU, OPTIONS).menu
    assert menu is not None and menu.topics[:3] == ("general", "egov", "booking")
    assert (menu.topic_names["booking"].kk, menu.topic_names["booking"].ru) == (
        "ХҚКО-ға жазылу",
        "Запись в ЦОН",
    )

    line = line_of("  booking: {kk: ")
    problem = only_error(edited(tmp_path, line, ", ru: Запись в ЦОН}", "}"))
    assert (problem.line, problem.message) == (line, 'topic "booking" has no Russian name; add ru: ...')

    nameless = check_menu(edited(tmp_path, line, "{kk: ХҚКО-ға жазылу, ru: Запись в ЦОН}", ""), OPTIONS)
    assert nameless.errors == [] and nameless.menu is not None
    assert "booking" in nameless.menu.topics and "booking" not in nameless.menu.topic_names


def test_topics_mixing_a_list_and_names_is_one_error_that_says_how_to_write_them(tmp_path: Path) -> None:
    lines = MENU.read_text(encoding="utf-8").split("\n")
    start = line_of("topics:")
    lines[start] = "  - general"  # the first entry as a plain id, the others still with names
    for number in range(start + 1, start + 11):
        lines[number] = "  - " + lines[number].strip()
    path = tmp_path / "1414.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    errors = check_menu(path, OPTIONS).errors
    assert {e.line for e in errors} == set(range(start + 2, start + 12))  # one per named entry, nothing else
    assert errors[0].message.startswith('topic "egov" is written with names inside a list: write topics:')


def test_a_topic_no_node_has_is_a_warning_at_its_line(tmp_path: Path) -> None:
    menu = edited(tmp_path, line_of("    topic: ashyq"), "topic: ashyq", "topic: other")
    warnings = [w for w in check_menu(menu, OPTIONS).warnings if "no node has it" in w.message]
    assert [(w.line, w.message.split(":")[0]) for w in warnings] == [
        (line_of("  ashyq: {kk:"), 'topic "ashyq" is listed in topics')
    ]


def test_overlapping_opening_hours_are_an_error_on_the_later_period(tmp_path: Path) -> None:
    # once a traceback from `ivr check`, and an engine that would not start again
    line = line_of('tue: "09:00-18:00"')
    problem = only_error(edited(tmp_path, line, '"09:00-18:00"', '["09:00-13:00", "12:00-18:00"]'))
    assert (problem.line, problem.column) == (line, 26)
    assert (
        problem.message
        == "opening hours '12:00-18:00' overlap '09:00-13:00'; a day's periods must not overlap"
    )


def test_a_holiday_that_is_not_in_the_calendar_says_so(tmp_path: Path) -> None:
    line = line_of("- 2026-01-01")
    problem = only_error(edited(tmp_path, line, "2026-01-01", "2026-02-30"))
    assert problem.message == "holiday 2026-02-30: there is no such day in the calendar"


def test_other_hours_without_their_own_closed_message_are_warned_about(tmp_path: Path) -> None:
    # callers would hear "Monday to Friday, 09:00-18:00" on a Saturday the centre now opens
    line = line_of("sat: closed")
    result = check_menu(edited(tmp_path, line, "closed", '"10:00-14:00"'), OPTIONS)
    assert result.errors == []
    [warning] = [w for w in result.warnings if "closed message" in w.message]
    assert warning.line == line_of("  week:")
    assert "add closed_message: {kk: ..., ru: ...} under hours:" in warning.message
    menu = tmp_path / "1414.yaml"
    text = menu.read_text(encoding="utf-8").replace(
        "  week:\n", '  closed_message: {kk: "Сенбі 10-14.", ru: "Суббота 10-14."}\n  week:\n', 1
    )
    menu.write_text(text, encoding="utf-8")
    result = check_menu(menu, OPTIONS)
    assert result.errors == [] and not [w for w in result.warnings if "closed message" in w.message]
    assert [p.sound for p in result.menu.hours.closed_message] == ["1414/hours-closed"]


@pytest.mark.parametrize("content", ["", "# the new menu goes here\n\n"])
def test_an_empty_menu_file_is_an_error_not_a_menu_of_no_nodes(tmp_path: Path, content: str) -> None:
    menu = tmp_path / "1414.yaml"
    menu.write_text(content, encoding="utf-8")
    problem = only_error(menu)
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "the file is empty: a menu needs start: and nodes: (menus/README.md shows one)"


def test_a_file_saved_in_windows_1251_names_the_line_and_column_of_the_first_such_letter(
    tmp_path: Path,
) -> None:
    line = line_of("Запись в ЦОН — два.")
    menu = tmp_path / "1414.yaml"
    text = MENU.read_text(encoding="utf-8")
    at = text.index("Запись в ЦОН — два.")
    menu.write_bytes(text[:at].encode("utf-8") + "Запись".encode("cp1251") + text[at + 6 :].encode("utf-8"))
    problem = only_error(menu)
    column = at - text.rindex("\n", 0, at)
    assert (problem.line, problem.column) == (line, column)
    assert problem.message.startswith("byte 0xc7 is not UTF-8: the file was saved in another encoding")


def test_an_unquoted_key_yaml_reads_as_another_number_is_an_error(tmp_path: Path) -> None:
    # key: 010 is octal 8 to YAML: callers would have to press 8
    line = line_of('      - key: "1"')
    problem = only_error(edited(tmp_path, line, 'key: "1"', "key: 010"))
    assert (problem.line, problem.column) == (line, 14)
    assert (
        problem.message
        == 'node "welcome", 1st choice: key 010 is read by YAML as the number 8; quote it: key: "010"'
    )


def test_a_key_starting_like_a_menu_wide_key_is_an_error(tmp_path: Path) -> None:
    # "08" beside the operator's "0": pressing 0 would wait for a second key before the operator
    line = line_of('      - key: "6"')
    errors = check_menu(edited(tmp_path, line, 'key: "6"', 'key: "08"'), OPTIONS).errors
    assert any(
        e.line == line
        and e.message.startswith(
            'node "main", 6th option: key "08" and the menu-wide operator key "0" start alike'
        )
        for e in errors
    ), [str(e) for e in errors]


def test_a_start_typo_points_at_the_start_line(tmp_path: Path) -> None:
    line = line_of("start: welcome")
    problem = only_error(edited(tmp_path, line, "start: welcome", "start: welcom"))
    assert (problem.line, problem.column) == (line, 8)
    assert 'start: "welcom" is not a node (did you mean "welcome"?)' in problem.message


@pytest.mark.parametrize(
    ("source", "line", "column", "words", "quoted"),
    [
        (
            'start: a\nnodes:\n  a:\n    kind: hangup\n    say: {kk: "Сау, ru: "Пока"}\n',
            5,
            15,
            "this quoted text is never closed",
            '    say: {kk: "Сау, ru: "Пока"}',
        ),
        (
            'start: a\nnodes:\n  a:\n    say: "Сау\n',
            4,
            10,
            "this quoted text is never closed",
            '    say: "Сау',
        ),
        (
            "start: a\nnodes:\n  a:\n    kind: hangup\n   topic: x\n",
            5,
            4,
            "bad indentation: this line starts in column 4, the key on line 4 in column 5",
            "   topic: x",
        ),
        (
            "start: a\nnodes:\n  a:\n    kind: hangup\n      topic: x\n",
            5,
            7,
            "indented deeper than line 4",
            "      topic: x",
        ),
        (
            "start: a\nnodes:\n  a: {kind: hangup\n  b: {kind: hangup}\n",
            3,
            6,
            'this "{" is not closed before line 4: end it with "}"',
            "  a: {kind: hangup",
        ),
        ("start: a\nkeys:\n  repeat:\n    key: *\n", 4, 10, "`*` starts an alias", "    key: *"),
        ("start: a\ntop: a: b\n", 2, 7, '": " inside a value: put the whole value in quotes', "top: a: b"),
        (
            "start: a\nnodes:\n  a:\n    options:\n    -key: x\n    - key: y\n",
            5,
            5,
            'a space after "-"',
            "    -key: x",
        ),
    ],
)
def test_yaml_syntax_in_plain_words(source: str, line: int, column: int, words: str, quoted: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(source, "m.yaml")
    error = caught.value
    assert (error.position.line, error.position.column) == (line, column), error.message
    assert words in error.message
    assert error.line_text == quoted
    assert "while scanning" not in error.message and "while parsing" not in error.message


def test_a_key_written_twice_names_both_lines(tmp_path: Path) -> None:
    menu = tmp_path / "m.yaml"
    menu.write_text("start: a\nnodes:\n  a: {kind: hangup}\nstart: a\n", encoding="utf-8")
    problem = only_error(menu)
    assert (problem.line, problem.column) == (4, 1)
    assert 'key "start" appears twice in this mapping (first on line 1)' in problem.message


# --- ivr check from any directory --------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's menus and Asterisk configuration; prompts linked, not copied."""
    shutil.copytree(ROOT / "menus", tmp_path / "menus")
    shutil.copytree(ROOT / "asterisk-conf", tmp_path / "asterisk-conf")
    (tmp_path / "prompts").symlink_to(ROOT / "prompts", target_is_directory=True)
    return tmp_path


def test_check_inside_the_menus_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project / "menus")
    assert run("check") == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1].startswith("OK: 1 menu, ")
    assert "warning" not in out.out  # queues.conf and prompts/ found beside the menus directory
    monkeypatch.chdir(project)
    assert run("check") == 0


def test_a_fragment_no_menu_includes_is_named_not_silently_skipped(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "menus" / "_faq.yaml").write_text("texts:\n\tbroken: yes\n", encoding="utf-8")
    monkeypatch.chdir(project)
    assert run("check", "--no-paths") == 0
    out = capsys.readouterr().out
    assert (
        "menus/_faq.yaml:1:1: warning: fragment _faq.yaml is included by no menu, so it is neither "
        "checked nor used; add it to a menu's include: list, or remove it"
    ) in out


def test_check_where_there_are_no_menus_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("check") == 1
    err = capsys.readouterr().err
    assert "menus/ (menus_dir) does not exist in" in err and "ivr check PATH" in err


# --- the docs and the reload ----------------------------------------------------------------------


def test_an_edit_reaches_the_library_within_a_second_as_both_readmes_say(project: Path) -> None:
    for readme in (ROOT / "README.md", ROOT / "menus" / "README.md"):
        text = " ".join(readme.read_text(encoding="utf-8").split())
        assert "within a second" in text and "within 2 s" not in text, readme

    async def scenario() -> float:
        library = MenuLibrary(project / "menus", OPTIONS)
        library.reload()
        before = library.get("1414")
        watcher = asyncio.create_task(library.watch(0.5))  # the engine's interval (ivr/engine/app.py)
        try:
            await asyncio.sleep(0.05)
            path = project / "menus" / "1414.yaml"
            path.write_text(path.read_text(encoding="utf-8").replace("retries: 3", "retries: 4"), "utf-8")
            edited_at = time.monotonic()
            while library.get("1414") is before:
                await asyncio.sleep(0.02)
            return time.monotonic() - edited_at
        finally:
            watcher.cancel()

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) < 1.0
