"""Problems found in a menu file, each with the place an admin must look."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs

from ivr.menus.yamlpos import Position


@attrs.frozen(order=True)
class MenuProblem:
    path: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" | "warning"
    # The offending source line, quoted under the message with a caret at the column: for mistakes
    # (YAML syntax, a `#` read as a comment) that the admin must see in the text itself to understand.
    excerpt: str = attrs.field(default="", order=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        head = f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"
        return head + quote_line(self.excerpt, self.column) if self.excerpt else head


def quote_line(line: str, column: int) -> str:
    """The line indented under a message, a caret under `column` (1-based); tabs shown as "→"."""
    shown = line.rstrip("\r\n").replace("\t", "→")  # one column each, so the caret stays aligned
    return f"\n    {shown}\n    {' ' * max(column - 1, 0)}^"


class MenuError(Exception):
    """A menu could not be loaded; `problems` holds every problem found (warnings included)."""

    def __init__(self, problems: Iterable[MenuProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.severity != "error", p.path, p.line, p.column))
        errors = [p for p in self.problems if p.is_error]
        super().__init__("\n".join(str(p) for p in errors) or "menu has errors")

    @property
    def errors(self) -> list[MenuProblem]:
        return [p for p in self.problems if p.is_error]


class Problems:
    """Collects problems while a menu is read and checked."""

    def __init__(self) -> None:
        self.items: list[MenuProblem] = []

    def error(self, pos: Position, message: str, excerpt: str = "") -> None:
        self.items.append(MenuProblem(pos.file, pos.line, pos.column, message, "error", excerpt))

    def warning(self, pos: Position, message: str) -> None:
        self.items.append(MenuProblem(pos.file, pos.line, pos.column, message, "warning"))

    def extend(self, problems: Iterable[MenuProblem]) -> None:
        self.items.extend(problems)

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.items)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' (did you mean "x"?)' for a near miss, else ''."""
    match = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 11th, 22nd: "the 7th option" is not read as the option of key 7."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
