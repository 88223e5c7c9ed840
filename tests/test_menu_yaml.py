"""The YAML reader under the menus: values with the position of every key and value, built from
libyaml's events. What PyYAML itself would read, anchors, aliases and merge keys included."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from ivr.menus.yamlpos import LocDict, LocList, Position, YamlSyntaxError, parse_yaml


def at(line: int, column: int) -> Position:
    return Position("m.yaml", line, column)


def test_values_and_their_positions() -> None:
    data = parse_yaml("a: 1\nb:\n  - x\n  - {c: 'd'}\n", "m.yaml").data
    assert data == {"a": 1, "b": ["x", {"c": "d"}]}
    assert isinstance(data, LocDict) and isinstance(data["b"], LocList)
    assert (data.pos, data.key_pos["b"], data.value_pos["b"]) == (at(1, 1), at(2, 1), at(3, 3))
    assert data["b"].item_pos == [at(3, 5), at(4, 5)]
    assert data["b"][1].value_pos["c"] == at(4, 9)


def test_one_position_at_a_time() -> None:
    """value_position and item_position give what value_pos and item_pos give, before and after
    those are made (positions are made from libyaml's marks on first use)."""
    data = parse_yaml("a: 1\nb: [x, {c: d}]\n", "m.yaml").data
    items = data["b"]
    assert (data.value_position("a"), items.item_position(1)) == (at(1, 4), at(2, 8))
    assert items[1].pos == at(2, 8) and isinstance(items[1].pos, Position)
    assert data.value_pos == {"a": at(1, 4), "b": at(2, 4)} and items.item_pos == [at(2, 5), at(2, 8)]
    assert (data.value_position("b"), items.item_position(0)) == (at(2, 4), at(2, 5))


SAMPLE = """\
start: main
count: 3
ratio: 1.5
yes_no: yes
nothing: ~
empty:
quoted: "1"
day: 2026-01-01
tagged: !!str 12
1: one
=: equals
words: [оператор, маман, "a: b"]
"""


def test_the_same_values_as_pyyaml_and_keys_as_written() -> None:
    data = parse_yaml(SAMPLE, "m.yaml").data
    expected = yaml.safe_load(SAMPLE)
    expected["1"], expected["="] = expected.pop(1), expected.pop("=")
    assert data == expected
    assert data["day"] == dt.date(2026, 1, 1)
    assert list(parse_yaml("yes: 1\n1.50: 2\n", "m.yaml").data) == ["yes", "1.50"]
    # PyYAML fails on a date that is not one; the checks want the text, to say what is wrong with it.
    assert parse_yaml("day: 2026-13-01\n", "m.yaml").data == {"day": "2026-13-01"}


def test_an_alias_is_the_anchored_value_where_it_is_written() -> None:
    data = parse_yaml("a: &opts [x, y]\nb: *opts\n", "m.yaml").data
    assert data["b"] == ["x", "y"]
    assert data.value_pos["b"] == data.value_pos["a"] == at(1, 4)


def test_merge_keys_first_listed_wins_own_keys_are_duplicates() -> None:
    source = "a: &a {x: 1, long: 1}\nb: &b {x: 2, long: 2, y: 2}\nm:\n  <<: [*a, *b]\n  z: 3\n  y: 4\n"
    document = parse_yaml(source, "m.yaml")
    assert document.data["m"] == {"x": 1, "long": 1, "y": 4, "z": 3}
    assert document.data["m"].key_pos["x"] == at(1, 8)
    assert [(d.key, d.pos, d.first) for d in document.duplicates] == [("y", at(6, 3), at(2, 23))]


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        ("a: &x 1\nb: &x 2\n", 1, 4, "`&` starts an anchor in YAML"),
        ("a: *nowhere\n", 1, 4, "found undefined alias"),
        ("a: &r [*r]\n", 1, 8, "found an alias inside the node it refers to"),
        ("--- a\n--- b\n", 2, 1, "expected a single document"),
        ("m: {<<: 1}\n", 1, 9, "expected a mapping or list of mappings for merging, but found scalar"),
        ("m: {<<: [1]}\n", 1, 10, "expected a mapping for merging, but found scalar"),
        ("? [a]\n: 1\n", 1, 3, "a mapping key must be a plain word"),
    ],
)
def test_what_pyyaml_refuses_is_refused_with_its_place(
    source: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(source, "m.yaml")
    assert (caught.value.position.line, caught.value.position.column) == (line, column)
    assert words in caught.value.message


def test_a_syntax_error_further_down_wins_over_a_bad_key() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml('? [a]\n: 1\nb: "open\n', "m.yaml")
    assert "never closed" in caught.value.message


def test_duplicates_inside_a_repeated_key_are_all_reported() -> None:
    document = parse_yaml("n:\n  a: {k: 1, k: 2}\n  a: {}\n", "m.yaml")
    assert sorted((d.key, d.pos.line) for d in document.duplicates) == [("a", 3), ("k", 2)]


@pytest.mark.parametrize(
    "source",
    [
        "a: " + "[" * 900 + "x" + "]" * 900 + "\n",
        "".join("  " * level + f"k{level}:\n" for level in range(900)) + "  " * 900 + "x\n",
    ],
)
def test_a_file_nested_too_deep_is_an_error_not_a_crash(source: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(source, "m.yaml")
    assert "nested more than 200 levels deep" in caught.value.message


def test_an_empty_file_is_none() -> None:
    assert parse_yaml("# only a comment\n", "m.yaml").data is None
