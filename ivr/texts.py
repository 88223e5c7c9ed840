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
