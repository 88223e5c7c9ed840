"""The menu model: immutable data loaded once and shared by every call.

An interpreter needs nothing beyond this module to run a call: each node says what it is (`kind`),
which sounds it plays (`Prompt.sound`, already named), what it accepts (`InputSettings`), where each
choice leads (`Target`), and where failures go (`on_failure`). Defaults from the menu file are already
folded into every node, so no merging happens at call time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import ClassVar

import attrs

from ivr.menus.yamlpos import Position
from ivr.texts import LANGUAGES, PromptText

INPUT_MODES = ("dtmf", "speech")
# Targets that are not node ids; node ids may not use these words.
TARGET_ACTIONS = ("back", "top", "repeat")
GLOBAL_ACTIONS = ("operator", "language", "repeat", "back", "top")

# Positions help error messages only: two menus that differ only in layout compare equal.
_NOWHERE = Position("", 0, 0)


@attrs.frozen
class Texts:
    """One caller-facing text in every language."""

    kk: str
    ru: str

    def get(self, language: str) -> str:
        return getattr(self, language)


@attrs.frozen
class Prompt:
    """A text with the sound name Asterisk plays it by (prompts/<lang>/<sound>.wav).

    `shared_id` is set when the text comes from the menu's `texts:` section.
    """

    sound: str
    texts: Texts
    shared_id: str | None = None
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen
class Target:
    """Where to go: a node id, or one of the moves back / top / repeat (then `node` is None)."""

    action: str  # "node" | "back" | "top" | "repeat"
    node: str | None = None
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)

    @classmethod
    def parse(cls, text: str, pos: Position = _NOWHERE) -> Target:
        if text in TARGET_ACTIONS:
            return cls(text, None, pos)
        return cls("node", text, pos)

    def __str__(self) -> str:
        return self.node if self.action == "node" and self.node else self.action


@attrs.frozen
class InputSettings:
    """What a node waits for and how patiently (FreeSWITCH mod_ivr vocabulary in brackets)."""

    modes: frozenset[str] = frozenset(INPUT_MODES)
    timeout: float = 5.0  # seconds of silence after the prompt [timeout]
    inter_digit_timeout: float = 2.0  # seconds between digits of a multi-digit key [inter-digit-timeout]
    retries: int = 3  # invalid or silent answers before on_failure [max-failures]
    max_digits: int = 1  # longest key a caller may type here

    @property
    def dtmf(self) -> bool:
        return "dtmf" in self.modes

    @property
    def speech(self) -> bool:
        return "speech" in self.modes


@attrs.frozen
class Phrases:
    """Words or phrases a caller may say, per language; lower-case, stripped."""

    kk: tuple[str, ...] = ()
    ru: tuple[str, ...] = ()

    def get(self, language: str) -> tuple[str, ...]:
        return getattr(self, language)

    def __bool__(self) -> bool:
        return bool(self.kk or self.ru)


@attrs.frozen
class Option:
    """One choice in a menu or question: a DTMF key and/or spoken phrases, and where it leads."""

    key: str | None
    phrases: Phrases
    target: Target
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen
class LanguageChoice:
    key: str | None
    language: str
    phrases: Phrases
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen
class QueueSpec:
    """An Asterisk queue per language, as named in asterisk-conf/queues.conf."""

    kk: str
    ru: str
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)

    def get(self, language: str) -> str:
        return getattr(self, language)


@attrs.frozen(kw_only=True)
class Node:
    """Fields every node has. `say` plays first, in order; then the kind's own behaviour."""

    kind: ClassVar[str] = ""
    takes_input: ClassVar[bool] = False
    leads_out: ClassVar[bool] = False  # the call leaves the menu here (queue, transfer, hang-up)

    id: str
    topic: str | None = None
    say: tuple[Prompt, ...] = ()
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)

    def prompts(self) -> Iterator[tuple[str, Prompt]]:
        """(role, prompt) for every sound this node may play; roles: say, short, invalid, silence."""
        for prompt in self.say:
            yield "say", prompt

    def sound_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(prompt.sound for _, prompt in self.prompts()))

    def targets(self) -> Iterator[Target]:
        """Every fixed place this node can lead to (failure targets included)."""
        return iter(())


@attrs.frozen(kw_only=True)
class InputNode(Node):
    """A node that waits for the caller: plays `say` first, `short` on later tries."""

    takes_input: ClassVar[bool] = True

    input: InputSettings = InputSettings()
    short: tuple[Prompt, ...] = ()  # re-prompt after the first try [greet-short]; empty: say again
    invalid: tuple[Prompt, ...] = ()  # after a key or phrase that matches nothing [invalid-sound]
    silence: tuple[Prompt, ...] = ()  # after nothing at all within the timeout
    on_failure: Target = Target("node", "")
    global_keys: bool = True  # the menu-wide keys (operator, language, ...) work here

    def prompts(self) -> Iterator[tuple[str, Prompt]]:
        yield from super().prompts()
        for role in ("short", "invalid", "silence"):
            for prompt in getattr(self, role):
                yield role, prompt

    def targets(self) -> Iterator[Target]:
        yield self.on_failure


@attrs.frozen(kw_only=True)
class LanguageNode(InputNode):
    """Language choice: `say` is played in every language, Kazakh first; the choice sets the call's
    language (and CHANNEL(language)), then the call goes to `next`."""

    kind: ClassVar[str] = "language"
    choices: tuple[LanguageChoice, ...] = ()
    next: Target = Target("node", "")

    def targets(self) -> Iterator[Target]:
        yield self.next
        yield from super().targets()


@attrs.frozen(kw_only=True)
class MenuNode(InputNode):
    """Menu: say the choices, wait for a key or a phrase, go where the option says."""

    kind: ClassVar[str] = "menu"
    options: tuple[Option, ...] = ()

    def targets(self) -> Iterator[Target]:
        for option in self.options:
            yield option.target
        yield from super().targets()

    def option_for_key(self, key: str) -> Option | None:
        return next((option for option in self.options if option.key == key), None)


@attrs.frozen(kw_only=True)
class QuestionNode(MenuNode):
    """Open question: free-form speech, matched to the options' phrases (topics); keys optional."""

    kind: ClassVar[str] = "question"


@attrs.frozen(kw_only=True)
class InfoNode(Node):
    """Say something, then continue to `next`. Menu-wide keys work during playback."""

    kind: ClassVar[str] = "info"
    next: Target = Target("node", "")

    def targets(self) -> Iterator[Target]:
        yield self.next


@attrs.frozen(kw_only=True)
class QueueNode(Node):
    """Hand the caller to an Asterisk queue of their language.

    `next` (optional) is where the call continues if the queue gives the caller back (timeout, no
    operators); without it the call ends there."""

    kind: ClassVar[str] = "queue"
    leads_out: ClassVar[bool] = True
    queue: QueueSpec = QueueSpec("", "")
    priority: int = 0
    timeout: int | None = None  # seconds in the queue; None: the queue's own setting
    callback_offer: bool = False
    next: Target | None = None

    def targets(self) -> Iterator[Target]:
        if self.next is not None:
            yield self.next


@attrs.frozen(kw_only=True)
class TransferNode(Node):
    """Transfer to an extension or phone number (Asterisk Dial/Goto in `context`, if given)."""

    kind: ClassVar[str] = "transfer"
    leads_out: ClassVar[bool] = True
    to: str = ""
    context: str | None = None


@attrs.frozen(kw_only=True)
class HangupNode(Node):
    kind: ClassVar[str] = "hangup"
    leads_out: ClassVar[bool] = True


@attrs.frozen(kw_only=True)
class GotoNode(Node):
    """A jump: to a node, or back / top / repeat. Useful as a named alias for a place."""

    kind: ClassVar[str] = "goto"
    target: Target = Target("node", "")

    def targets(self) -> Iterator[Target]:
        yield self.target


@attrs.frozen(kw_only=True)
class BackNode(Node):
    """Return to the previous node that waited for input (the start node if there is none)."""

    kind: ClassVar[str] = "back"


@attrs.frozen(kw_only=True)
class TopNode(Node):
    """Return to the menu's top node (`top:`, by default the node after the language choice)."""

    kind: ClassVar[str] = "top"


@attrs.frozen(kw_only=True)
class RepeatNode(Node):
    """Play the previous node that waited for input again, from its long prompt."""

    kind: ClassVar[str] = "repeat"


NODE_KINDS: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (
        LanguageNode,
        MenuNode,
        QuestionNode,
        InfoNode,
        QueueNode,
        TransferNode,
        HangupNode,
        GotoNode,
        BackNode,
        TopNode,
        RepeatNode,
    )
}


@attrs.frozen
class GlobalKey:
    """A menu-wide action reachable from every input node by a key and/or phrases."""

    action: str  # operator | language | repeat | back | top
    key: str | None
    phrases: Phrases = Phrases()
    target: Target | None = None  # operator only: the operator node
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen
class Hours:
    """Opening hours, kept as validated data; the hours logic lives elsewhere."""

    timezone: str
    week: dict[str, tuple[tuple[dt.time, dt.time], ...]]  # mon..sun -> open intervals; absent: closed
    holidays: tuple[dt.date, ...] = ()
    closed_message: tuple[Prompt, ...] = ()  # said outside the hours; none: the engine's ivr/closed
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen
class Limits:
    """How long one call may stay in the IVR, whatever the caller does (menus/README.md, "Limits").

    When either limit is reached the call takes its way out: the operator queue, or (closed, or the
    queue already gave the caller back) the closed message and the callback offer, then a goodbye.
    """

    # Menus in a row that ended without a usable answer (silence, wrong keys, unrecognised speech).
    max_menus_without_answer: int = 3
    # Time in the IVR, not counting the wait in an operator queue.
    max_minutes_in_ivr: float = 15.0
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)

    @property
    def max_seconds_in_ivr(self) -> float:
        return self.max_minutes_in_ivr * 60


@attrs.frozen
class SharedText:
    id: str
    prompt: Prompt
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen(eq=False)  # a loaded menu is a version: compared by identity
class Menu:
    name: str
    start: str
    top: str
    nodes: dict[str, Node]
    texts: dict[str, SharedText] = attrs.field(factory=dict)
    global_keys: dict[str, GlobalKey] = attrs.field(factory=dict)
    default_language: str = LANGUAGES[0]
    topics: tuple[str, ...] = ()  # declared topics; empty: any topic name is accepted
    # What supervisors read for a topic (the board), where `topics:` gives names: {kk: ..., ru: ...}.
    topic_names: dict[str, Texts] = attrs.field(factory=dict)
    hours: Hours | None = None
    limits: Limits = Limits()
    sources: tuple[str, ...] = ()  # the menu file first, then included fragments
    pos: Position = attrs.field(default=_NOWHERE, eq=False, repr=False)

    @property
    def operator(self) -> str | None:
        """The node the operator key leads to (the default failure target)."""
        key = self.global_keys.get("operator")
        return key.target.node if key and key.target else None

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def global_key_for(self, key: str) -> GlobalKey | None:
        return next((g for g in self.global_keys.values() if g.key == key), None)

    def prompt_texts(self) -> list[PromptText]:
        """Every caller-facing text in every language, once per sound name, nodes in file order."""
        seen: set[str] = set()
        result: list[PromptText] = []
        for prompt in self._all_prompts():
            if prompt.sound in seen:
                continue
            seen.add(prompt.sound)
            result.extend(PromptText(prompt.sound, lang, prompt.texts.get(lang)) for lang in LANGUAGES)
        return result

    def _all_prompts(self) -> Iterator[Prompt]:
        for shared in self.texts.values():
            yield shared.prompt
        if self.hours is not None:
            yield from self.hours.closed_message
        for node in self.nodes.values():
            for _, prompt in node.prompts():
                yield prompt

    def queues(self) -> list[str]:
        names: dict[str, None] = {}
        for node in self.nodes.values():
            if isinstance(node, QueueNode):
                for lang in LANGUAGES:
                    names[node.queue.get(lang)] = None
        return list(names)

    def speech_phrases(self, language: str) -> list[str]:
        """Every phrase a caller may say in `language` anywhere in this menu, once each."""
        phrases: dict[str, None] = {}
        for key in self.global_keys.values():
            phrases.update(dict.fromkeys(key.phrases.get(language)))
        for node in self.nodes.values():
            for item in getattr(node, "options", ()) + getattr(node, "choices", ()):
                phrases.update(dict.fromkeys(item.phrases.get(language)))
        return list(phrases)

    def node_count(self) -> int:
        return len(self.nodes)
