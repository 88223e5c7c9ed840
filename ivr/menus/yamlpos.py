"""YAML to plain Python values that remember where each key and value stood in the file.

libyaml's parser hands us events that carry their start line/column; we build the values from them
ourselves so that every mapping knows the line/column of each key and each value, and errors can
name file:line:column. Building from events rather than from yaml.compose()'s node tree skips the
Python calls the composer makes per node (resolver hooks, Node objects): composing a 2,000-node menu
took 0.60 s CPU, its events 0.19 s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import yaml
from yaml.composer import ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from ivr.menus.yamlerrors import explain

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"  # the `=` key, read as text (as PyYAML's SafeLoader does)
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5-10x faster
# Three Python frames per level of nesting: deeper files get an error, not a RecursionError (a menu
# nests 5-10 levels; libyaml itself stops at 1,000).
MAX_DEPTH = 200
_new_tuple = tuple.__new__  # Position(...) by hand: its generated __new__ is a Python call, 100,000 times


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


def _position(file: str, mark: Any) -> Position:
    """The Position of a libyaml mark (0-based line and column); a Position is kept as it is."""
    if type(mark) is Position:
        return mark
    return _new_tuple(Position, (file, mark.line + 1, mark.column + 1))


# The parser records where mappings, lists, keys, values and items start as libyaml's marks (objects
# it makes anyway); the Positions are made on first use of pos, key_pos, value_pos or item_pos, or one
# at a time by value_position and item_position. Positions serve error messages: of a 2,000-node
# menu's 90,000 the loader asks for 17,000, and making them all while parsing cost check_menu some
# 190 million instructions.


class _Placed:
    """`pos` of a parsed mapping or list: made from its mark on first use."""

    __slots__ = ()
    _pos: Position | None
    file: str
    mark: Any

    @property
    def pos(self) -> Position:
        if self._pos is None:
            self._pos = _position(self.file, self.mark)
        return self._pos

    @pos.setter
    def pos(self, position: Position) -> None:
        self._pos = position


class LocDict(_Placed, dict):
    """A dict with `pos` (the mapping itself), `key_pos[key]` and `value_pos[key]`."""

    __slots__ = ("_key_pos", "_pos", "_value_pos", "file", "key_marks", "mark", "value_marks")

    @property
    def key_pos(self) -> dict[Any, Position]:
        if self._key_pos is None:
            self._key_pos = {key: _position(self.file, mark) for key, mark in self.key_marks.items()}
        return self._key_pos

    @key_pos.setter
    def key_pos(self, positions: dict[Any, Position]) -> None:
        self._key_pos = positions

    @property
    def value_pos(self) -> dict[Any, Position]:
        if self._value_pos is None:
            self._value_pos = {key: _position(self.file, mark) for key, mark in self.value_marks.items()}
        return self._value_pos

    @value_pos.setter
    def value_pos(self, positions: dict[Any, Position]) -> None:
        self._value_pos = positions

    def value_position(self, key: Any) -> Position:
        """value_pos[key], without making the positions of the mapping's other values."""
        if self._value_pos is not None:
            return self._value_pos[key]
        return _position(self.file, self.value_marks[key])


class LocList(_Placed, list):
    """A list with `pos` and `item_pos[i]`."""

    __slots__ = ("_item_pos", "_pos", "file", "item_marks", "mark")

    @property
    def item_pos(self) -> list[Position]:
        if self._item_pos is None:
            self._item_pos = [_position(self.file, mark) for mark in self.item_marks]
        return self._item_pos

    @item_pos.setter
    def item_pos(self, positions: list[Position]) -> None:
        self._item_pos = positions

    def item_position(self, index: int) -> Position:
        """item_pos[index], without making the positions of the other items."""
        if self._item_pos is not None:
            return self._item_pos[index]
        return _position(self.file, self.item_marks[index])


_LOCATED = (LocDict, LocList)  # a tuple: `LocDict | LocList` would make a new union at every use


@attrs.frozen
class Duplicate:
    """A key written twice in one mapping: YAML keeps only the later value."""

    key: Any
    pos: Position  # where it is repeated
    first: Position  # where it came first


@attrs.frozen
class YamlDocument:
    data: Any  # None for an empty file
    duplicates: tuple[Duplicate, ...]  # in the order met, every mapping of the file


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; raises YamlSyntaxError with the position of the fault."""
    loader = _Loader(text)
    try:
        builder = _Builder(loader, file)
        return YamlDocument(builder.document(), tuple(builder.duplicates))
    except yaml.MarkedYAMLError as exc:
        found = explain(exc, text)
        lines = text.splitlines()
        line_text = lines[found.line - 1] if 0 < found.line <= len(lines) else ""
        raise YamlSyntaxError(Position(file, found.line, found.column), found.message, line_text) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Position(file, 1, 1), f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()


class _EveryCharacter:
    """The first characters resolvers apply to, when one applies to any (none of PyYAML's does)."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERY_CHARACTER = _EveryCharacter()


class _Builder:
    """Values from the parser's events, read depth first; the same values yaml.compose() would give."""

    def __init__(self, loader: Any, file: str) -> None:
        self.loader = loader
        self.next_event = loader.get_event
        self.file = file
        self.anchors: dict[str, Any] = {}  # anchor -> its value, once complete
        self.anchor_marks: dict[str, Any] = {}  # anchor -> where it was set
        self.anchor_texts: dict[str, str] = {}  # anchor of a scalar -> the scalar as written
        self.duplicates: list[Duplicate] = []
        # A fault PyYAML would find only once the whole file parsed (a list as a key, a bad merge):
        # raised at the end, so that a syntax error further down is still the one reported.
        self.late_error: Exception | None = None
        self.resolved_first = loader.yaml_implicit_resolvers  # first characters of int, bool, null...
        if None in self.resolved_first:  # a resolver for any first character: no shortcut
            self.resolved_first = _EVERY_CHARACTER
        self.plain_tags: dict[str, str] = {}  # plain word -> its tag: keys and ids repeat all over a menu
        self.depth = 0  # mappings and lists open

    def document(self) -> Any:
        self.next_event()  # stream start
        if isinstance(self.next_event(), StreamEndEvent):  # or document start
            return None
        first = self.next_event()
        value = self.value(first)
        self.next_event()  # document end
        event = self.next_event()
        if not isinstance(event, StreamEndEvent):
            raise ComposerError(
                "expected a single document in the stream",
                first.start_mark,
                "but found another document",
                event.start_mark,
            )
        if self.late_error is not None:
            raise self.late_error
        return value

    def position(self, event: Any) -> Position:
        mark = event.start_mark
        if type(event) is AliasEvent:  # where the anchored value is written, as yaml.compose() has it
            mark = self.anchor_marks.get(event.anchor, mark)
        return _new_tuple(Position, (self.file, mark.line + 1, mark.column + 1))

    def is_text(self, event: Any) -> bool:
        """A scalar that is just text: no anchor, no tag, not a word YAML reads as a number, yes or ~.
        Nearly every scalar of a menu; the fast path of mapping() and sequence()."""
        if type(event) is not ScalarEvent or event.anchor is not None or event.tag is not None:
            return False
        if not event.implicit[0] or event.value[:1] not in self.resolved_first:
            return True  # quoted, or a plain word no implicit type can start with
        tag = self.plain_tags.get(event.value)
        if tag is None:
            tag = self.plain_tags[event.value] = self.tag(event)
        return tag == _STR

    def value_at(self, event: Any) -> tuple[Any, Any]:
        """The value that starts with this event, not plain text (see is_text), and where: a mark, or a
        Position (an alias of a scalar is placed at its anchor)."""
        value = self.value(event)
        return value, value.mark if isinstance(value, _LOCATED) else self.position(event)

    def value(self, event: Any) -> Any:
        kind = type(event)
        if kind is AliasEvent:
            return self.alias(event)
        anchor = event.anchor
        if anchor is not None:
            self.set_anchor(anchor, event)
        if kind is ScalarEvent:
            value = self.scalar(event)
        else:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise YamlSyntaxError(
                    self.position(event),
                    f"nested more than {MAX_DEPTH} levels deep: check the brackets and the indentation",
                )
            value = self.mapping(event) if kind is MappingStartEvent else self.sequence(event)
            self.depth -= 1
        if anchor is not None:
            self.anchors[anchor] = value
        return value

    def set_anchor(self, anchor: str, event: Any) -> None:
        if anchor in self.anchor_marks:
            raise ComposerError(
                "found duplicate anchor; first occurrence",
                self.anchor_marks[anchor],
                "second occurrence",
                event.start_mark,
            )
        self.anchor_marks[anchor] = event.start_mark
        if type(event) is ScalarEvent:
            self.anchor_texts[anchor] = event.value

    def alias(self, event: AliasEvent) -> Any:
        if event.anchor not in self.anchor_marks:
            raise ComposerError(None, None, "found undefined alias", event.start_mark)
        if event.anchor not in self.anchors:  # inside its own anchor: the value would contain itself
            raise ComposerError(None, None, "found an alias inside the node it refers to", event.start_mark)
        return self.anchors[event.anchor]  # the same value again (it is never modified)

    def tag(self, event: ScalarEvent) -> str:
        """The scalar's type tag, as PyYAML's resolver gives it (plain words may be numbers, yes, ~)."""
        tag = event.tag
        if tag is not None and tag != "!":
            return tag
        value = event.value
        if event.implicit[0] and value[:1] in self.resolved_first:
            return self.loader.resolve(yaml.ScalarNode, value, event.implicit)
        return _STR

    def scalar(self, event: ScalarEvent, tag: str | None = None) -> Any:
        tag = tag or self.tag(event)
        if tag == _STR:
            return event.value  # the common case, without the constructor's bookkeeping
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError):
            # e.g. 2026-13-01 looks like a date but is not one: keep the text for the checks
            return event.value

    def key(self, event: Any) -> Any:
        """A mapping key: a plain word (numbers and yes/no as written), or None for `~`."""
        if type(event) is ScalarEvent:
            tag = self.tag(event)
            key = event.value if tag == _VALUE else self.scalar(event, tag)
            if event.anchor is not None:
                self.set_anchor(event.anchor, event)
                self.anchors[event.anchor] = key
            written = event.value
        else:
            key = self.value(event)
            written = self.anchor_texts.get(event.anchor, "") if type(event) is AliasEvent else ""
        if isinstance(key, int | float | bool):
            return written  # keys like 1: or yes: are read as text: menu keys are written the way they look
        if key is not None and not isinstance(key, str):
            self.late_error = self.late_error or YamlSyntaxError(
                self.position(event), "a mapping key must be a plain word"
            )
            return object()  # a stand-in until the error is raised
        return key

    def mapping(self, start: MappingStartEvent) -> LocDict:
        result = LocDict()
        result.file, result.mark, result._pos = self.file, start.start_mark, None
        result._key_pos, result._value_pos = None, None
        result.key_marks, result.value_marks = key_marks, value_marks = {}, {}
        merged: list[LocDict] = []  # what `<<: *anchor` merge keys bring in
        next_event, is_text, value_at = self.next_event, self.is_text, self.value_at
        while type(event := next_event()) is not MappingEndEvent:
            if is_text(event):  # plain text, nearly every key and value: inline, no position() call
                key, key_mark = event.value, event.start_mark
            elif type(event) is ScalarEvent and event.value == "<<" and self.tag(event) == _MERGE:
                merged += self.merge(next_event(), start)
                continue
            else:
                key, key_mark = self.key(event), self.position(event)
            if is_text(event := next_event()):
                value, value_mark = event.value, event.start_mark
            else:
                value, value_mark = value_at(event)
            if key in result:
                first = _position(self.file, key_marks[key])
                self.duplicates.append(Duplicate(key, _position(self.file, key_mark), first))
            result[key] = value
            key_marks[key] = key_mark
            value_marks[key] = value_mark
        if merged:
            self.merge_into(result, merged)
        return result

    def merge_into(self, result: LocDict, merged: list[LocDict]) -> None:
        """Merged entries come first, the first mapping merged that has a key gives it; own ones win."""
        own = [(key, value, result.key_pos[key], result.value_pos[key]) for key, value in result.items()]
        result.clear()
        for source in merged:
            for key, value in source.items():
                if key not in result:
                    self.put(result, key, value, source.key_pos[key], source.value_pos[key])
        for key, value, key_pos, value_pos in own:
            self.put(result, key, value, key_pos, value_pos)

    def put(self, result: LocDict, key: Any, value: Any, key_pos: Position, value_pos: Position) -> None:
        if key in result:
            self.duplicates.append(Duplicate(key, key_pos, result.key_pos[key]))
        result[key] = value
        result.key_pos[key] = key_pos
        result.value_pos[key] = value_pos

    def merge(self, event: Any, start: MappingStartEvent) -> list[LocDict]:
        """The mappings a `<<:` merges: one, or a list of them (PyYAML's messages when not)."""
        value, pos = self.value(event), self.position(event)
        if isinstance(value, LocDict):
            return [value]
        if not isinstance(value, LocList):
            expected = "a mapping or list of mappings"
        else:
            wrong = next((i for i, item in enumerate(value) if not isinstance(item, LocDict)), None)
            if wrong is None:
                return list(value)
            expected, value, pos = "a mapping", value[wrong], value.item_pos[wrong]
        found = {LocDict: "mapping", LocList: "sequence"}.get(type(value), "scalar")
        self.late_error = self.late_error or ComposerError(
            "while constructing a mapping",
            start.start_mark,
            f"expected {expected} for merging, but found {found}",
            Mark(self.file, 0, pos.line - 1, pos.column - 1, None, None),
        )
        return []

    def sequence(self, start: SequenceStartEvent) -> LocList:
        items = LocList()
        items.file, items.mark, items._pos = self.file, start.start_mark, None
        items._item_pos, items.item_marks = None, []
        marks = items.item_marks
        next_event, is_text, value_at = self.next_event, self.is_text, self.value_at
        while type(event := next_event()) is not SequenceEndEvent:
            if is_text(event):  # as in mapping()
                items.append(event.value)
                marks.append(event.start_mark)
            else:
                value, mark = value_at(event)
                items.append(value)
                marks.append(mark)
        return items
