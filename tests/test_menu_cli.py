"""`ivr check` and `ivr graph` as an admin runs them."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.menus.graph import GraphError, render, to_dot
from ivr.menus.loader import load_menu
from ivr.testing.engine_fixtures import private_prompts
from tests.menu_commands import run

HERE = Path(__file__).parent
ROOT = HERE.parent


def test_check_real_menus_dir_ok(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert run("check") == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("OK: 1 menu, ")


def test_check_bad_file_prints_positions_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    bad = HERE / "menus" / "bad" / "targets.yaml"
    assert run("check", str(bad), "--queues-conf", str(HERE / "menus" / "queues.conf")) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert f'{bad}:7:26: error: node "main" leads to "mian"' in lines[0]
    errors_then_warnings = [line.split(": ")[1] for line in lines if line]
    assert errors_then_warnings == sorted(errors_then_warnings)  # errors first, warnings apart
    assert "FAILED: 3 errors" in out.err


def test_check_strict_fails_on_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    menu = tmp_path / "m.yaml"
    menu.write_text("start: a\nnodes:\n  a: {kind: hangup}\n  b: {kind: hangup}\n", encoding="utf-8")
    assert run("check", str(menu)) == 0
    assert "OK: 1 menu, 2 nodes, 1 warning" in capsys.readouterr().out
    assert run("check", str(menu), "--strict") == 1


def test_a_refused_recording_is_a_warning_not_an_error(
    tmp_path: Path, project_prompts: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine takes the menu and callers hear the synthesised text: a CI `ivr check` must not block
    # unrelated menu edits for it (`ivr prompts build --check` still exits 1 until the admin acts).
    shutil.copytree(ROOT / "menus", tmp_path / "menus")
    shutil.copytree(ROOT / "asterisk-conf", tmp_path / "asterisk-conf")
    welcome = private_prompts(tmp_path) / "ru" / "1414" / "welcome.wav"
    welcome.unlink()  # a link into the repository's prompts: the file there stays as it is
    welcome.write_text("<html>Not found</html>", encoding="utf-8")  # a failed download
    monkeypatch.chdir(tmp_path)
    assert run("check", "--no-paths") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "menus/1414.yaml:108:3: warning: prompt audio: recording refused: prompts/ru/1414/welcome.wav is not "
        "audio sox can read"
    )
    assert out[-1].startswith("OK: 1 menu, ") and out[-1].endswith(", 1 warning")
    assert run("check", "--no-paths", "--strict") == 1


def test_graph_svg_with_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    output = tmp_path / "1414.svg"
    assert run("graph", "1414", "-o", str(output), "--lang", "ru") == 0
    root = ET.parse(output).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "booking" in text and "ask_topic" in text
    assert "«запись, …»" in text  # a key's first speech words on its edge
    titles = {t.text for t in root.iter() if t.tag.endswith("title")}
    assert "main&#45;&gt;booking" in titles or "main->booking" in titles


def test_graph_png_and_kazakh_labels(tmp_path: Path) -> None:
    menu = load_menu(ROOT / "menus" / "1414.yaml")
    source = to_dot(menu, "kk")
    assert "«кезек, …»" in source
    output = render(source, tmp_path / "g.png")
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_without_dot_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shutil.which("dot") is not None
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphError, match="graphviz 'dot' was not found"):
        render("digraph g {}", tmp_path / "g.svg")
    with pytest.raises(GraphError, match="unknown picture format"):
        render("digraph g {}", tmp_path / "g.jpeg")
