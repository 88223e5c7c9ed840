"""YAML scanner and parser errors in words a menu admin can act on.

PyYAML (and libyaml behind it) describe a fault by the parser state it broke in ("while scanning for
the next token found character that cannot start any token"). Admins make a handful of mistakes over
and over: a tab, a `#` meant as a key, a quote not closed, a line indented one space too many or too
few, a `{` not closed, a colon inside an unquoted text. Each is recognised here from the error and the
source lines and said plainly, pointing where the fix goes; anything else keeps the parser's words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs
import yaml

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'')
# A `#` where a value should be: after `key:`, `-`, `[`, `{` or `,` (YAML reads it as a comment).
_HASH_AS_VALUE = re.compile(r"(?:[:\-]\s+|[\[{,]\s*)(#)")
_KEY = re.compile(r"([\w-]+):\s*$")
_FLOWS = {"flow mapping": ("{", "}"), "flow sequence": ("[", "]")}


@attrs.frozen
class Explained:
    """Where to point (1-based, as editors count) and what to say."""

    line: int
    column: int
    message: str


@attrs.frozen
class _Fault:
    lines: list[str]
    line: int  # 0-based, where the parser gave up
    column: int
    context_line: int  # 0-based, where the construct it was reading began
    context_column: int
    context: str
    problem: str

    def text(self, line: int) -> str:
        return self.lines[line] if 0 <= line < len(self.lines) else ""


def explain(exc: yaml.MarkedYAMLError, text: str) -> Explained:
    mark = exc.problem_mark or exc.context_mark
    start = exc.context_mark or mark
    fault = _Fault(
        lines=text.splitlines(),
        line=mark.line if mark else 0,
        column=mark.column if mark else 0,
        context_line=start.line if start else 0,
        context_column=start.column if start else 0,
        context=exc.context or "",
        problem=exc.problem or "",
    )
    for rule in _RULES:
        found = rule(fault)
        if found is not None:
            return found
    words = " ".join(part for part in (fault.context, fault.problem) if part)
    return Explained(fault.line + 1, fault.column + 1, f"YAML syntax: {words}; check indentation and quoting")


def comment_message(key: str) -> str:
    return f'`#` starts a comment in YAML, so {key}: has no value: write {key}: "#"'


def hash_as_value(text: str) -> tuple[int, str] | None:
    """(0-based column of the `#`, the key it belongs to) when a `#` stands where a value should."""
    bare = _unquoted(text)
    match = _HASH_AS_VALUE.search(bare)
    if match is None:
        return None
    column = match.start(1)
    key = _KEY.search(bare[:column])
    return column, key.group(1) if key else "key"


def _unquoted(text: str) -> str:
    """The line with quoted texts blanked out (same length, so columns still match)."""
    return _QUOTED.sub(lambda match: " " * len(match.group()), text)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _line_above(fault: _Fault, line: int) -> int | None:
    """The nearest line above with content (not blank, not only a comment)."""
    for number in range(line - 1, -1, -1):
        stripped = fault.text(number).strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _tab(fault: _Fault) -> Explained | None:
    text = fault.text(fault.line)
    if fault.column < len(text) and text[fault.column] == "\t":
        column = fault.column
    elif "tab" in fault.problem and "\t" in text:
        column = text.index("\t")
    else:
        return None
    return Explained(
        fault.line + 1, column + 1, "a tab character: use spaces (YAML does not allow tabs to indent)"
    )


def _hash_in_flow(fault: _Fault) -> Explained | None:
    """`{key: #, ...}`: the comment swallows the rest of the line, its closing `}` included."""
    if "flow" not in fault.context:
        return None
    first = min(fault.line, fault.context_line)
    for number in range(fault.line, max(first - 3, -1), -1):
        found = hash_as_value(fault.text(number))
        if found is not None:
            return Explained(number + 1, found[0] + 1, comment_message(found[1]))
    return None


def _bad_escape(fault: _Fault) -> Explained | None:
    if "quoted scalar" not in fault.context or "escape" not in fault.problem:
        return None
    text = fault.text(fault.line)
    backslash = text.rfind("\\", 0, fault.column + 1)
    char = text[backslash + 1 : backslash + 2]
    return Explained(
        fault.line + 1,
        backslash + 1,
        f'"\\{char}" is not an escape in a "double-quoted" text: write \\\\ for a backslash, '
        "or use 'single quotes'",
    )


def _unclosed_quote(fault: _Fault) -> Explained | None:
    if "quoted scalar" in fault.context and "end of stream" in fault.problem:
        line, column = fault.context_line, fault.context_column
    else:
        # A quote left open runs on into the next lines and breaks one of them instead.
        first = min(fault.line, fault.context_line)
        line = next((n for n in range(fault.line, first - 1, -1) if _odd_quotes(fault.text(n))), -1)
        if line < 0:
            return None
        column = fault.text(line).find('"')
    quote = fault.text(line)[column : column + 1] or '"'
    return Explained(
        line + 1,
        column + 1,
        f"this quoted text is never closed: end it with {quote} on the same line "
        "(a quote inside the text: put the other kind of quotes around it)",
    )


def _odd_quotes(text: str) -> bool:
    return _unquoted(text.replace('\\"', "")).count('"') % 2 == 1


def _alias(fault: _Fault) -> Explained | None:
    sign = "*" if "alias" in fault.context else "&" if "anchor" in fault.context else ""
    if not sign:
        return None
    text = fault.text(fault.context_line)
    key = _KEY.search(text[: fault.context_column])
    name = key.group(1) if key else "key"
    what = "an alias (a reference to an &anchor)" if sign == "*" else "an anchor"
    return Explained(
        fault.context_line + 1,
        fault.context_column + 1,
        f'`{sign}` starts {what} in YAML: write {name}: "{sign}"',
    )


def _bad_start(fault: _Fault) -> Explained | None:
    char = fault.text(fault.line)[fault.column : fault.column + 1]
    if "cannot start any token" not in fault.problem or not char or char.isspace():
        return None
    return Explained(
        fault.line + 1,
        fault.column + 1,
        f'a value cannot start with "{char}" in YAML: put the value in quotes',
    )


def _unclosed_flow(fault: _Fault) -> Explained | None:
    kind = next((kind for kind in _FLOWS if kind in fault.context), None)
    if kind is None or "expected ','" not in fault.problem:
        return None
    opening, closing = _FLOWS[kind]
    return Explained(
        fault.context_line + 1,
        fault.context_column + 1,
        f'this "{opening}" is not closed before line {fault.line + 1}: end it with "{closing}", '
        "with a comma between entries",
    )


def _colon_in_value(fault: _Fault) -> Explained | None:
    if "mapping values are not allowed" not in fault.problem:
        return None
    text = fault.text(fault.line)
    above = _line_above(fault, fault.line)
    opens_block = above is not None and _unquoted(fault.text(above)).split(" #", 1)[0].rstrip().endswith(":")
    if above is not None and not opens_block and _indent(text) > _indent(fault.text(above)):
        return Explained(
            fault.line + 1,
            _indent(text) + 1,
            f"this line is indented deeper than line {above + 1}, so YAML reads it as the rest of that "
            f"line's value: start it in column {_indent(fault.text(above)) + 1}, like the key above",
        )
    return Explained(
        fault.line + 1,
        fault.column + 1,
        '": " inside a value: put the whole value in quotes, e.g. key: "text: more text"',
    )


def _indentation(fault: _Fault) -> Explained | None:
    if "block" not in fault.context or not ("expected key" in fault.problem or "block end" in fault.problem):
        return None
    for number in (fault.line, _line_above(fault, fault.line)):
        item = fault.text(number or 0).lstrip() if number is not None else ""
        if item.startswith("-") and item[1:2] not in ("", " "):
            return Explained(number + 1, _indent(fault.text(number)) + 1, 'put a space after "-": - key: ...')
    text = fault.text(fault.line)
    column = _indent(text) + 1
    above = _line_above(fault, fault.line)
    if above is None:
        return None
    key_column = _key_column(fault.text(above))
    if text.lstrip().startswith("- ") and key_column == column:
        return Explained(
            fault.line + 1,
            column,
            'a list item ("- ...") among keys: put the list under a key of its own (key: on one line, '
            "the - items indented below it), or indent this line like the item it belongs to",
        )
    return Explained(
        fault.line + 1,
        column,
        f"bad indentation: this line starts in column {column}, the key on line {above + 1} in column "
        f"{key_column}; keys of one mapping start in the same column: indent with spaces to match",
    )


def _key_column(text: str) -> int:
    """1-based column where the line's key starts (after a "- " list marker)."""
    stripped = text.lstrip(" ")
    marker = len(stripped) - len(stripped[1:].lstrip(" ")) if stripped.startswith("- ") else 0
    return _indent(text) + marker + 1


# Most specific first: a tab or a stray `#` also upsets the indentation or bracket checks further down.
_RULES: tuple[Callable[[_Fault], Explained | None], ...] = (
    _tab,
    _hash_in_flow,
    _bad_escape,
    _unclosed_quote,
    _alias,
    _bad_start,
    _unclosed_flow,
    _colon_in_value,
    _indentation,
)
