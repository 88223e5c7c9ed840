"""`ivr check` proves every call ends: it runs the real interpreter over every way a call can go and
names, with file:line, any path that goes round without the caller's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.engine.explore import explore, problems
from ivr.menus.loader import check_menu, load_menu
from tests.menu_commands import run

HERE = Path(__file__).parent
ROOT = HERE.parent
LOOP = HERE / "menus" / "loops" / "silent_loop.yaml"
QUEUES = HERE / "menus" / "queues.conf"


@pytest.fixture(scope="module")
def menu_1414_paths():
    menu = load_menu(ROOT / "menus" / "1414.yaml")
    return menu, explore(menu)


def test_the_1414_menu_ends_every_call(menu_1414_paths) -> None:
    menu, result = menu_1414_paths
    assert result.ok, [str(p) for p in problems(menu, result)]
    # every way a call can end was met on the way
    assert {"queued", "callback", "no_operator", "after_hours", "abandoned"} <= set(result.outcomes)
    assert 0 < result.longest_unanswered <= menu.limits.max_seconds_in_ivr


def test_every_node_of_1414_is_reached_in_both_languages(menu_1414_paths) -> None:
    menu, result = menu_1414_paths
    everywhere = {(node, lang) for node in menu.nodes if node != menu.start for lang in ("kk", "ru")}
    assert result.reached >= everywhere | {(menu.start, menu.default_language)}


def test_check_reports_a_planted_loop_with_each_nodes_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", str(LOOP), "--queues-conf", str(QUEUES)) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "goes round" in line]
    assert line.startswith(f"{LOOP}:11:3: error: a caller goes round without answering: ")
    assert f"main ({LOOP}:11) -> sub ({LOOP}:18) -> main ({LOOP}:11)" in line
    assert "seen with: silence" in line


def test_the_loop_is_found_for_wrong_keys_too() -> None:
    menu = check_menu(LOOP).menu
    assert menu is not None
    result = explore(menu)
    stories = [f.story for f in result.findings if f.kind == "cycle"]
    assert stories, "the planted loop is found"
    assert not result.ok


def test_check_of_the_real_menus_prints_the_proof(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert run("check") == 0
    out = capsys.readouterr().out
    assert "1414: every call ends (" in out and "the bound is 15 min in the menus" in out


def test_no_paths_skips_the_proof(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", str(LOOP), "--queues-conf", str(QUEUES), "--no-paths") == 0


def test_limits_are_read_and_checked(tmp_path: Path) -> None:
    menu = tmp_path / "m.yaml"
    menu.write_text(
        "start: a\nlimits:\n  max_menus_without_answer: 0\n  max_minutes_in_ivr: 5\n  max_tries: 2\n"
        "nodes:\n  a: {kind: hangup}\n",
        encoding="utf-8",
    )
    result = check_menu(menu)
    messages = [f"{p.line}:{p.column} {p.message}" for p in result.errors]
    assert any(m.startswith("3:29 ") and "at least 1" in m for m in messages), messages
    assert any(m.startswith("5:3 ") and "max_tries" in m for m in messages), messages
    menu.write_text(
        "start: a\nlimits: {max_minutes_in_ivr: 5}\nnodes:\n  a: {kind: hangup}\n", encoding="utf-8"
    )
    loaded = load_menu(menu)
    assert (loaded.limits.max_menus_without_answer, loaded.limits.max_minutes_in_ivr) == (3, 5.0)


def test_a_path_that_outlasts_the_bound_is_reported(tmp_path: Path) -> None:
    # One prompt of about five minutes against a bound of one minute (plus the way out's allowance).
    long_text = "Бұл өте ұзақ хабарландыру. " * 150
    menu_file = tmp_path / "long.yaml"
    menu_file.write_text(
        "start: news\nlimits: {max_minutes_in_ivr: 1}\n"
        "keys:\n  operator: {key: '0', goto: operator}\n"
        "nodes:\n"
        f"  news: {{kind: info, say: {{kk: '{long_text}', ru: 'Длинное объявление.'}}, next: operator}}\n"
        "  operator: {kind: queue, queue: {kk: kk-general, ru: ru-general}}\n",
        encoding="utf-8",
    )
    menu = load_menu(menu_file)
    found = [p for p in problems(menu, explore(menu)) if "over the bound" in p.message]
    assert found and found[0].line == 6  # the news node, where the time goes
    assert "limits: max_minutes_in_ivr" in found[0].message


def test_a_node_of_long_silent_tries_ends_within_the_bound(tmp_path: Path) -> None:
    # ten tries of a minute's silence each: the bound is checked between tries, not only between nodes,
    # and the proof counts the node's own timeout for each silence
    menu_file = tmp_path / "slow.yaml"
    menu_file.write_text(
        "start: main\nlimits: {max_minutes_in_ivr: 5}\n"
        "keys:\n  operator: {key: '0', goto: operator}\n"
        "nodes:\n"
        "  main:\n    kind: menu\n    timeout: 60\n    retries: 10\n"
        "    say: {kk: 'Бірді басыңыз.', ru: 'Нажмите один.'}\n"
        "    options: [{key: '1', goto: operator}]\n"
        "  operator: {kind: queue, queue: {kk: kk-general, ru: ru-general}}\n",
        encoding="utf-8",
    )
    menu = load_menu(menu_file)
    result = explore(menu)
    assert result.ok, [str(p) for p in problems(menu, result)]
    assert 5 * 60 <= result.longest_unanswered <= 5 * 60 + 60 + 10  # the bound, then one try's silence


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("retries: 1000000", '"retries" must be at most 10: after 10 tries on_failure should take'),
        ("timeout: 3600", '"timeout" must be at most 60 seconds: a caller silent for a minute'),
        ("retries: yes", '"retries" must be a whole number, got yes'),
    ],
)
def test_waits_that_would_only_keep_a_silent_caller_are_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    menu_file = tmp_path / "m.yaml"
    menu_file.write_text(f"start: a\ndefaults:\n  {line}\nnodes:\n  a: {{kind: hangup}}\n", encoding="utf-8")
    [error] = check_menu(menu_file).errors
    assert (error.line, error.column) == (3, 3 + line.index(":") + 2)
    assert error.message.startswith(message), error.message


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (
            "max_minutes_in_ivr: 100000",
            '"max_minutes_in_ivr" must be at most 60 minutes: an hour in a voice menu',
        ),
        (
            "max_menus_without_answer: 50",
            '"max_menus_without_answer" must be at most 10: a caller who has not',
        ),
    ],
)
def test_limits_that_bound_nothing_are_refused(tmp_path: Path, limit: str, message: str) -> None:
    menu_file = tmp_path / "m.yaml"
    menu_file.write_text(f"start: a\nlimits:\n  {limit}\nnodes:\n  a: {{kind: hangup}}\n", encoding="utf-8")
    [error] = check_menu(menu_file).errors
    assert error.message.startswith(message), error.message
