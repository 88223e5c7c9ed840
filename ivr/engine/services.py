"""Everything a call may lean on besides its channel and menu. Each part is optional: without speech
the call is DTMF-only, without AMI no queue figures are announced, without state nothing is journalled."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import attrs

from ivr.clock import SYSTEM_CLOCK, Clock
from ivr.config import Settings
from ivr.menus.model import LanguageNode, Menu, MenuNode, QuestionNode
from ivr.speech.matcher import IntentClassifier, Matcher, grammar_phrases
from ivr.texts import LANGUAGES

log = logging.getLogger("ivr.engine")


@attrs.define
class EngineServices:
    settings: Settings = attrs.field(factory=Settings)
    speech: Any = None  # ivr.speech.recognizer.SpeechService
    state: Any = None  # ivr.journal.state.State (journal, incidents, callbacks)
    ami: Any = None  # ivr.ami.client.AmiClient
    hours: Any = None  # ivr.contact.hours.OpeningHours
    # Wall-clock moments (hours, holidays, outages, journal) come from `clock`; how long a call has
    # been in the IVR from `elapsed`, a monotonic clock no pinned moment affects.
    clock: Clock = SYSTEM_CLOCK
    elapsed: Callable[[], float] = time.monotonic
    # One Matcher per menu version and node, built on first use and shared by every call.
    incident_audio: Any = None  # ivr.engine.background.IncidentAudio
    media: Any = None  # ivr.engine.media.MediaPath: AudioSocket streaming, when turned on
    _matchers: weakref.WeakKeyDictionary[Menu, dict[tuple[str, str], Any]] = attrs.field(
        factory=weakref.WeakKeyDictionary
    )

    def prepare(self, menu: Menu) -> None:
        """Build now what a spoken answer needs at every node that listens (matchers, grammars,
        classifiers): called in the menu-loading thread, so the first caller to speak at a node after
        a reload does not stop every call while it is built (the 1414 menu: 22 ms in all, up to 8 ms
        for one node)."""
        listening = False
        for node in menu.nodes.values():
            if isinstance(node, LanguageNode) and node.input.speech:
                for language in LANGUAGES:
                    self.language_matcher(menu, node, language)
            elif isinstance(node, MenuNode) and node.input.speech:
                listening = True
                self.matcher(menu, node)
                if isinstance(node, QuestionNode):
                    self.classifier(menu, node)
                else:
                    for language in LANGUAGES:
                        self.grammar(menu, node, language)
        if listening:
            self.global_classifier(menu)

    def matcher(self, menu: Menu, node: MenuNode) -> Matcher[str]:
        """The node's options by index ("0", "1", ...), for restricted speech."""
        return self._cached(menu, ("matcher", node.id), lambda: Matcher(_option_phrases(node)))

    def grammar(self, menu: Menu, node: MenuNode, language: str) -> tuple[str, ...]:
        """The node's restricted grammar in `language`, built once per menu version. It holds the
        menu-wide phrases too: they are decided on at the node, so they must be hearable there."""

        def build() -> tuple[str, ...]:
            menu_wide = (
                [p for g in menu.global_keys.values() for p in g.phrases.get(language)]
                if node.global_keys
                else []
            )
            return tuple(grammar_phrases(self.matcher(menu, node), language, menu_wide=menu_wide))

        return self._cached(menu, ("grammar", f"{node.id}/{language}"), build)

    def classifier(self, menu: Menu, node: MenuNode) -> IntentClassifier[str]:
        """The node's options as topics, for free-form speech (open questions)."""
        return self._cached(menu, ("intents", node.id), lambda: IntentClassifier(_option_phrases(node)))

    def language_matcher(self, menu: Menu, node: LanguageNode, language: str) -> Matcher[str]:
        """The language choice's phrases of every language, heard by `language`'s model."""

        def build() -> Matcher[str]:
            return Matcher(
                [
                    (c.language, {language: [p for lang in LANGUAGES for p in c.phrases.get(lang)]})
                    for c in node.choices
                ]
            )

        return self._cached(menu, ("language", f"{node.id}/{language}"), build)

    def global_classifier(self, menu: Menu) -> IntentClassifier[str]:
        """Menu-wide phrases (repeat, back, top, language) by action; the operator is matched apart."""

        def build() -> IntentClassifier[str]:
            return IntentClassifier(
                [
                    (g.action, {lang: g.phrases.get(lang) for lang in LANGUAGES})
                    for g in menu.global_keys.values()
                    if g.action != "operator" and g.phrases
                ]
            )

        return self._cached(menu, ("globals", ""), build)

    def _cached(self, menu: Menu, key: tuple[str, str], build: Callable[[], Any]) -> Any:
        per_menu = self._matchers.setdefault(menu, {})
        value = per_menu.get(key)
        if value is None:
            value = per_menu[key] = build()
        return value

    def journal_event(
        self, call_id: str, kind: str, node: str = "", data: dict[str, Any] | None = None
    ) -> None:
        """Fire-and-forget: the journal batches and commits on its own; a call never waits for it."""
        if self.state is None:
            return
        try:
            self.state.journal.event(call_id, kind, node, data)
        except Exception as exc:  # the journal must never break a call
            log.warning("journal: could not record %s for %s: %s", kind, call_id, exc)


def _option_phrases(node: MenuNode) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
    return [
        (str(index), {lang: option.phrases.get(lang) for lang in LANGUAGES})
        for index, option in enumerate(node.options)
    ]
