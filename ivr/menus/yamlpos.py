"""YAML to plain Python values that remember where each key and value stood in the file.

yaml.compose() keeps a start mark on every node; we convert the node tree ourselves so that every
mapping knows the line/column of each key and each value, and errors can name file:line:column.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import yaml

from ivr.menus.yamlerrors import explain

_STR = "tag:yaml.org,2002:str"
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5-10x faster


class Position(NamedTuple):
    """1-based line and column in a file, as editors show them (a tuple: cheap to make by the 100,000)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class YamlSyntaxError(ValueError):
    """`line_text`: the source line at `position`, to quote under the message."""

    def __init__(self, position: Position, message: str, line_text: str = "") -> None:
        super().__init__(f"{position}: {message}")
        self.position = position
        self.message = message
        self.line_text = line_text


class LocDict(dict):
    """A dict with `pos` (the mapping itself), `key_pos[key]` and `value_pos[key]`."""

    pos: Position
    key_pos: dict[Any, Position]
    value_pos: dict[Any, Position]
    duplicates: list[tuple[Any, Position, Position]]  # key, where it is repeated, where it came first


class LocList(list):
    """A list with `pos` and `item_pos[i]`."""

    pos: Position
    item_pos: list[Position]


def _position(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str, file: str) -> Any:
    """Parse one YAML document; raises YamlSyntaxError with the position of the fault."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _convert(loader, root, file)
    except yaml.MarkedYAMLError as exc:
        found = explain(exc, text)
        lines = text.splitlines()
        line_text = lines[found.line - 1] if 0 < found.line <= len(lines) else ""
        raise YamlSyntaxError(Position(file, found.line, found.column), found.message, line_text) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Position(file, 1, 1), f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()


def _convert(loader: Any, node: yaml.Node, file: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result = LocDict()
        result.pos = _position(file, node)
        result.key_pos, result.value_pos, result.duplicates = {}, {}, []
        for key_node, value_node in node.value:
            key = _convert(loader, key_node, file)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise YamlSyntaxError(_position(file, key_node), "a mapping key must be a plain word")
            if isinstance(key, int | float | bool):
                # Keys like 1: or yes: are read as text: menu keys are written the way they look.
                key = key_node.value
            if key in result:
                result.duplicates.append((key, _position(file, key_node), result.key_pos[key]))
            result[key] = _convert(loader, value_node, file)
            result.key_pos[key] = _position(file, key_node)
            result.value_pos[key] = _position(file, value_node)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = LocList()
        items.pos = _position(file, node)
        items.item_pos = []
        for item in node.value:
            items.append(_convert(loader, item, file))
            items.item_pos.append(_position(file, item))
        return items
    if node.tag == _STR:
        return node.value  # the common case, without the constructor's bookkeeping
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, yaml.YAMLError):
        return node.value  # e.g. 2026-13-01 looks like a date but is not one: keep the text for the checks
