"""The unit every caller-facing text is handed around in: menus produce them, prompts turn them into audio."""

from __future__ import annotations

import attrs

LANGUAGES = ("kk", "ru")  # Kazakh first: the state language


@attrs.frozen
class PromptText:
    """One text in one language, with the stable sound name Asterisk plays it by.

    `name` is relative to prompts/<language>/ and has no extension, e.g. "1414/main" or
    "1414/main-short"; Asterisk finds it as sounds/<language>/<name>.wav once CHANNEL(language) is set.
    """

    name: str
    language: str
    text: str


@attrs.frozen
class PromptProblem:
    """What the prompts package says of a text's audio, for `ivr check`: an error when the audio is
    neither there nor buildable (or the build cannot choose between recordings), a warning for a recording
    the build refuses (callers hear a consistent prompt all the same, and the engine takes the menu)."""

    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return self.message
