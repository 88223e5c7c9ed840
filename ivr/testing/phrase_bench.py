"""Callers' phrases through the decision a real call makes, for the phrase test set and its benchmark.

Each phrase is typed into the interpreter's own `_listen` at a node, recognised as `ivr simulate`
recognises typed words (`TypedSpeech`: every word with confidence 1.0), so the trust rules, the
person-word rule and the menu-wide phrases are the ones a call applies, not a copy of them. A
decision is the node an option leads to, a menu-wide action (operator, repeat, back, top,
language), or "unsure" when the engine would ask for a key instead of guessing.

`grammar_only=True` is the pessimistic view of a restricted recogniser: a word outside the node's
grammar is heard as "[unk]" (a real one may also force it onto a grammar word that sounds alike).

The set (tests/speech_phrases/1414.yaml) groups phrases by what the caller wants; each group says
what is right at every place it is tried, and a phrase may override that for itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from ivr.agi.channel import RecordResult, StreamResult
from ivr.agi.protocol import AgiEnvironment
from ivr.config import Settings, SpeechSettings
from ivr.engine.interpreter import CallSession
from ivr.engine.services import EngineServices
from ivr.engine.simulate import TypedSpeech
from ivr.menus.model import Menu, MenuNode
from ivr.speech.recognizer import Recognition, Word

UNSURE = "unsure"  # the engine asks for a key (or the answer counts as invalid): never a wrong branch


@attrs.frozen
class Phrase:
    text: str
    language: str
    group: str
    expected: Mapping[str, str]  # place (node id) -> right decision


@attrs.frozen
class Outcome:
    phrase: Phrase
    place: str
    decided: str

    @property
    def expected(self) -> str:
        return self.phrase.expected[self.place]

    @property
    def right(self) -> bool:
        return self.decided == self.expected

    @property
    def wrong_branch(self) -> bool:
        """Sent somewhere the caller did not ask for: worse than asking for a key."""
        return self.decided != self.expected and self.decided != UNSURE


def load_phrases(path: str | Path) -> list[Phrase]:
    """The phrase set of a YAML file (see `phrases_from`)."""
    return phrases_from(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def phrases_from(data: Mapping[str, Any]) -> list[Phrase]:
    """Phrases of `groups: {name: {expect: {place: decision}, kk: [...], ru: [...]}}`.

    A phrase is a string, or `{text: ..., expect: {place: decision}}` to differ from its group."""
    phrases = []
    for group, spec in data["groups"].items():
        expect = dict(spec["expect"])
        for language in ("kk", "ru"):
            for item in spec.get(language, ()):
                if isinstance(item, str):
                    phrases.append(Phrase(item, language, group, expect))
                else:
                    phrases.append(Phrase(item["text"], language, group, {**expect, **item["expect"]}))
    return phrases


class _ListeningChannel:
    """Just enough of the channel API for `_listen`: a recording that ends on silence, prompts that
    play to the end, no key pressed afterwards."""

    closed = False
    hung_up = False

    def __init__(self) -> None:
        self.env = AgiEnvironment({"uniqueid": "phrase-bench", "channel": "BENCH/1"})

    async def record_file(self, path: str, *args: Any, **kwargs: Any) -> RecordResult:
        return RecordResult("silence", None, 8000)

    async def stream_file(
        self, name: str, escape_digits: str = "", *args: Any, **kwargs: Any
    ) -> StreamResult:
        return StreamResult(None, 8000)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        return None


class GrammarSpeech(TypedSpeech):
    """Typed words, but at a node with a restricted grammar a word the grammar lacks is "[unk]"."""

    async def recognize(
        self, wav_path: str | Path, language: str, phrases: Sequence[str] | None
    ) -> Recognition:
        typed = await super().recognize(wav_path, language, phrases)
        if phrases is None:
            return typed
        known = {w for phrase in phrases for w in phrase.lower().split()}
        words = tuple(w if w.word in known else Word("[unk]", 1.0, w.start, w.end) for w in typed.words)
        return attrs.evolve(typed, text=" ".join(w.word for w in words), words=words)


def _services(grammar_only: bool = False) -> tuple[EngineServices, deque[str]]:
    heard: deque[str] = deque()
    settings = Settings(speech=SpeechSettings(spool="/nonexistent-phrase-bench"))
    speech = (GrammarSpeech if grammar_only else TypedSpeech)(heard)
    return EngineServices(settings=settings, speech=speech), heard


async def decide(
    menu: Menu, services: EngineServices, heard: deque[str], node_id: str, phrase: Phrase
) -> str:
    """What the engine does with `phrase` said at `node_id`, in one fresh call."""
    node = menu.nodes[node_id]
    if not isinstance(node, MenuNode):
        raise ValueError(f"node {node_id!r} does not listen for options (a menu or question node does)")
    session = CallSession(_ListeningChannel(), menu, services)  # type: ignore[arg-type]
    session.language = phrase.language
    heard.append(phrase.text)
    choice = await session._listen(node, "")
    if choice is None or choice.action == "invalid":
        return UNSURE
    if choice.action == "global":
        return str(choice.value)
    target = choice.value.target  # type: ignore[attr-defined]
    if target.action == "node" and target.node == menu.operator:
        return "operator"
    return target.node if target.action == "node" else target.action


def run(menu: Menu, phrases: Iterable[Phrase], grammar_only: bool = False) -> list[Outcome]:
    """Every phrase at every place it names an expectation for."""

    async def all_of_them() -> list[Outcome]:
        services, heard = _services(grammar_only)
        return [
            Outcome(phrase, place, await decide(menu, services, heard, place, phrase))
            for phrase in phrases
            for place in phrase.expected
        ]

    return asyncio.run(all_of_them())


@attrs.frozen
class Tally:
    total: int
    right: int
    unsure: int
    wrong: int

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Tally:
        right = sum(o.right for o in outcomes)
        wrong = sum(o.wrong_branch for o in outcomes)
        return cls(len(outcomes), right, len(outcomes) - right - wrong, wrong)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.total if self.total else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<18} {self.total:>5} {self.accuracy:>8.1%} {self.unsure:>7} {self.wrong:>6}"
            f" {self.wrong_rate:>7.1%}"
        )


def report(outcomes: Sequence[Outcome], show_misses: bool = True) -> str:
    """Accuracy per language and place, a confusion table, and (optionally) every miss."""
    lines = [f"{'':<18} {'said':>5} {'right':>8} {'unsure':>7} {'wrong':>6} {'wrong%':>7}"]
    keys = sorted({(o.phrase.language, o.place) for o in outcomes})
    for language, place in keys:
        part = [o for o in outcomes if o.phrase.language == language and o.place == place]
        lines.append(Tally.of(part).line(f"{language} @ {place}"))
    for language in sorted({o.phrase.language for o in outcomes}):
        lines.append(
            Tally.of([o for o in outcomes if o.phrase.language == language]).line(f"{language} (all)")
        )
    lines.append(Tally.of(outcomes).line("all"))
    lines.append("")
    lines.extend(confusion_table(outcomes))
    if show_misses:
        misses = [o for o in outcomes if not o.right]
        if misses:
            lines.append("")
            lines.append("misses (place, language, expected -> decided: phrase):")
            for o in misses:
                mark = "WRONG" if o.wrong_branch else "unsure"
                lines.append(
                    f"  {mark:<6} {o.place:<10} {o.phrase.language} {o.expected} -> {o.decided}: {o.phrase.text}"
                )
    return "\n".join(lines)


def confusion_table(outcomes: Sequence[Outcome]) -> list[str]:
    """Rows: what was right; columns: what the engine decided (all places and languages together)."""
    counts = Counter((o.expected, o.decided) for o in outcomes)
    labels = sorted({label for pair in counts for label in pair}, key=lambda x: (x == UNSURE, x))
    width = max(len(label) for label in labels) + 1
    short = {label: label[:7] for label in labels}
    lines = ["confusion (rows: right decision, columns: decided)"]
    lines.append(" " * width + "".join(f"{short[c]:>8}" for c in labels))
    for row in labels:
        cells = [counts.get((row, col), 0) for col in labels]
        if sum(cells):
            lines.append(f"{row:<{width}}" + "".join(f"{(n or '.'):>8}" for n in cells))
    return lines
