"""`ivr graph`: the 1414 menu readable on a screen, menu-wide returns in a legend, one branch on demand."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from ivr.menus import ValidatorOptions, load_menu
from ivr.menus.graph import GraphError, branch, render, to_dot
from tests.menu_commands import run

ROOT = Path(__file__).parent.parent
MENU = load_menu(
    ROOT / "menus" / "1414.yaml", ValidatorOptions(queues_conf=ROOT / "asterisk-conf" / "queues.conf")
)
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="((?:[^"\\]|\\.)*)", style=(\w+)\];$', re.M)


def edges(source: str) -> list[tuple[str, str, str, str]]:
    return EDGE.findall(source)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (the IHDR chunk right after the signature)."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_the_1414_picture_fits_a_couple_of_screens(tmp_path: Path, language: str) -> None:
    width, height = png_size(render(to_dot(MENU, language), tmp_path / "1414.png"))
    # It was 4,421 x 2,254 px, with every return drawn; the ten services side by side set the width.
    assert width <= 3000 and height <= 1800, (width, height)


def test_returns_are_not_edges_from_every_node() -> None:
    source = to_dot(MENU, "kk")
    drawn = edges(source)
    into_top = [origin for origin, target, _, _ in drawn if target == MENU.top]
    assert into_top == ["greeting"]  # the one way forward into the main menu; no "main menu" edges
    assert not [edge for edge in drawn if edge[1] == MENU.operator and "tries" in edge[2]]
    assert "__back" not in source
    # Instead each answer node says it in one line, and the legend says once where "top" is.
    label = re.search(r'"egov_portal" \[label="([^"]*)"', source)
    assert label is not None and "↩ 1 → top · after 3 tries → top" in label.group(1)
    assert source.count("__legend [") == 1
    assert source.count(f"to the top ({MENU.top})") == 1
    # Ways forward stay edges: keys with their first words, failures dashed.
    assert ("main", "booking", "2\\n«кезек, …»", "solid") in drawn
    assert ("main", "ask_topic", "after 3 tries", "dashed") in drawn


def test_from_a_node_draws_its_branch_only() -> None:
    assert branch(MENU, "vehicles") == {
        "vehicles": 0,
        "vehicle_registration": 1,
        "driving_licence": 1,
        "queue_vehicles": 2,
        "operator": 3,
    }
    source = to_dot(MENU, "ru", "vehicles", depth=1)
    drawn = {(origin, target) for origin, target, _, _ in edges(source)}
    assert drawn == {
        ("vehicles", "vehicle_registration"),
        ("vehicles", "driving_licence"),
        ("vehicle_registration", "queue_vehicles"),
        ("driving_licence", "queue_vehicles"),
    }
    # The node beyond the depth is a dashed stub, not the whole node; nothing else of the menu.
    assert re.search(r'"queue_vehicles" \[label="queue_vehicles …", shape=box, style="dashed', source)
    assert '"main"' not in source and "__start" not in source
    assert "from vehicles, 1 steps" in source


def test_graph_command_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    output = tmp_path / "egov.dot"
    assert run("graph", "1414", "--from", "egov", "--depth", "1", "-o", str(output)) == 0
    assert capsys.readouterr().out == f"wrote {output} (4 of 26 nodes, kk)\n"
    source = output.read_text(encoding="utf-8")
    assert {origin for origin, _, _, _ in edges(source)} == {
        "egov",
        "egov_portal",
        "egov_app",
        "egov_telegram",
    }
    assert '[label="queue_egov …"' in source
    assert run("graph", "1414", "--from", "egvo", "-o", str(output)) == 1
    assert 'no node "egvo" (did you mean "egov"?)' in capsys.readouterr().err
    with pytest.raises(GraphError, match="--depth must be 0 or more"):
        to_dot(MENU, "kk", depth=-1)
