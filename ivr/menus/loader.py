"""Reads a menu file (and the fragments it includes) into the model, collecting every problem.

Schema problems (unknown keys, wrong types, missing languages) are found here, with the position of
the offending key or value; cross-references (targets, reachability, loops, keys, queues, prompts,
vocabulary) are checked by the validator on the model built here. A broken node still gets a model
stand-in so one mistake does not hide the rest of the report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import logging
import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ivr.menus import model as m
from ivr.menus.problems import MenuError, MenuProblem, Problems, did_you_mean, ordinal
from ivr.menus.yamlerrors import comment_message, hash_as_value
from ivr.menus.yamlpos import LocDict, LocList, Position, YamlSyntaxError, parse_yaml
from ivr.texts import LANGUAGES

log = logging.getLogger(__name__)

MENU_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
KEY_RE = re.compile(r"^[0-9*#]{1,4}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

TOP_KEYS = (
    "start",
    "top",
    "default_language",
    "keys",
    "defaults",
    "topics",
    "hours",
    "limits",
    "texts",
    "include",
    "nodes",
)
FRAGMENT_KEYS = ("texts", "nodes", "topics", "include")
INPUT_KEYS = (
    "input",
    "timeout",
    "inter_digit_timeout",
    "retries",
    "short",
    "invalid",
    "silence",
    "on_failure",
    "global_keys",
)
DEFAULTS_KEYS = ("input", "timeout", "inter_digit_timeout", "retries", "invalid", "silence", "on_failure")
COMMON_KEYS = ("kind", "topic", "say")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "language": (*INPUT_KEYS, "choices", "next"),
    "menu": (*INPUT_KEYS, "options"),
    "question": (*INPUT_KEYS, "options"),
    "info": ("next",),
    "queue": ("queue", "priority", "timeout", "callback_offer", "next"),
    "transfer": ("to", "context"),
    "hangup": (),
    "goto": ("goto",),
    "back": (),
    "top": (),
    "repeat": (),
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "language": ("say", "choices", "next"),
    "menu": ("say", "options"),
    "question": ("say", "options"),
    "info": ("say", "next"),
    "queue": ("queue",),
    "transfer": ("to",),
    "goto": ("goto",),
}
# The same as sets, for the check of every node's keys (a tuple is searched by comparing strings).
_KNOWN_KEYS = {kind: frozenset(COMMON_KEYS + keys) for kind, keys in KIND_KEYS.items()}
OPTION_KEYS = ("key", "phrases", "goto")
CHOICE_KEYS = ("key", "language", "phrases")
GLOBAL_KEY_KEYS = ("key", "phrases", "goto")
# The most an input node may wait and ask: past these a silent caller is only kept on the line (the
# call's bound is checked between prompts). The why follows the number in the error.
INPUT_MAXIMA = {
    "timeout": (60, " seconds: a caller silent for a minute after a prompt will not answer"),
    "inter_digit_timeout": (15, " seconds between two keys of one answer"),
    "retries": (10, ": after 10 tries on_failure should take the caller on (the operator by default)"),
}
# A queue node's timeout: past an hour the wait is better offered as a callback (callback_offer).
QUEUE_WAIT_MOST = (3600, " seconds in a queue: offer a callback instead (callback_offer: true)")
# The bound on a call (menus/README.md, "Limits") is a promise to callers: past these it bounds nothing.
LIMIT_MAXIMA = {
    "menus": (10, ": a caller who has not answered 10 menus in a row needs a person"),
    "minutes": (60, " minutes: an hour in a voice menu is not self-service"),
}
HOURS_KEYS = ("timezone", "week", "holidays", "closed_message")
# What ivr/closed says when a menu has no closed_message: keep the two in step (engine/system_texts.py).
SAID_WHEN_CLOSED = {day: ((dt.time(9), dt.time(18)),) for day in ("mon", "tue", "wed", "thu", "fri")}
LIMITS_KEYS = ("max_menus_without_answer", "max_minutes_in_ivr")
TRANSFER_TO_RE = re.compile(r"^\+?[0-9*#]{1,32}$")
CONTEXT_RE = re.compile(r"^[A-Za-z0-9_-]{1,79}$")


def is_fragment(path: Path) -> bool:
    """Files whose name starts with '_' are fragments: included by menus, never menus themselves."""
    return path.name.startswith("_")


def menu_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file() and not is_fragment(p))


@attrs.frozen
class CheckResult:
    menu: m.Menu | None
    problems: list[MenuProblem]
    sources: tuple[str, ...]  # files read, for reload watching (also when the menu failed)

    @property
    def errors(self) -> list[MenuProblem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[MenuProblem]:
        return [p for p in self.problems if not p.is_error]


def check_menu(path: str | Path, options: Any = None) -> CheckResult:
    """Read and validate one menu file; never raises for a bad menu, the problems say what is wrong.

    `options` is an ivr.menus.validator.ValidatorOptions (None: defaults)."""
    from ivr.menus.validator import ValidatorOptions, validate_menu

    path = Path(path)
    problems = Problems()
    reader = _Reader(path, problems)
    with _collector_paused():
        menu = reader.read()
        if menu is not None:
            problems.extend(validate_menu(menu, options or ValidatorOptions(), reader.places))
    problems.items.sort(key=lambda p: (p.path, p.line, p.column))
    good = menu if menu is not None and not problems.has_errors else None
    return CheckResult(good, problems.items, tuple(reader.sources))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A menu is built from some 200,000 new objects and makes no reference cycles worth collecting:
    the cyclic collector would walk them again and again on the way (a 2,000-node menu: 0.53 s of
    parsing with it, 0.41 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_menu(path: str | Path, options: Any = None) -> m.Menu:
    """Load and validate a menu; raises MenuError listing every problem if there is any error."""
    result = check_menu(path, options)
    if result.menu is None:
        raise MenuError(result.problems)
    for warning in result.warnings:
        log.warning("%s", warning)
    return result.menu


# ---------------------------------------------------------------------------------------------


@attrs.define
class _Defaults:
    input: m.InputSettings = attrs.Factory(m.InputSettings)
    invalid: tuple[m.Prompt, ...] = ()
    silence: tuple[m.Prompt, ...] = ()
    on_failure: m.Target | None = None


class _Reader:
    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.file = str(path)
        self.problems = problems
        self.name = path.stem
        self.sources: list[str] = []
        self.raw_texts: dict[str, tuple[Any, Position]] = {}
        self.raw_nodes: dict[str, tuple[Any, Position]] = {}
        self.topics: list[str] = []
        self.topic_names: dict[str, m.Texts] = {}
        self.texts: dict[str, m.SharedText] = {}
        # file -> its text, to look at what the parser dropped; split into lines (self.lines) only then:
        # splitting a 2,000-node menu up front cost some 20 million instructions, for a rare mistake.
        self.file_texts: dict[str, str] = {}
        self.lines: dict[str, list[str]] = {}
        # (node id or None, key) -> value position, for the validator's messages (see KeyPlaces).
        self.places: dict[tuple[str | None, str], Position] = {}

    # -- files -----------------------------------------------------------------------------------

    def _read_yaml(self, path: Path, at: Position) -> Any:
        self.sources.append(str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems.error(at, f"file {path} not found; check the file name")
            return None
        except UnicodeDecodeError as exc:
            self.problems.error(_byte_position(path, exc.start, at.file), _not_utf8(exc))
            return None
        except OSError as exc:
            self.problems.error(at, f"cannot read {path}: {exc.strerror or exc}")
            return None
        try:
            document = parse_yaml(text, str(path))
        except YamlSyntaxError as exc:
            self.problems.error(exc.position, exc.message, exc.line_text)
            return None
        self.file_texts[str(path)] = text
        for duplicate in document.duplicates:
            self.problems.error(
                duplicate.pos,
                f'key "{duplicate.key}" appears twice in this mapping (first on line {duplicate.first.line}); '
                "YAML would keep only this one: remove or rename one of them",
            )
        return document.data

    def read(self) -> m.Menu | None:
        top = self._read_yaml(self.path, Position(self.file, 1, 1))
        if top is None:
            if not self.problems.has_errors:  # nothing in it but comments and blank lines
                self.problems.error(
                    Position(self.file, 1, 1),
                    "the file is empty: a menu needs start: and nodes: (menus/README.md shows one)",
                )
            return None
        if not isinstance(top, LocDict):
            self.problems.error(
                Position(self.file, 1, 1), "a menu file must be a mapping with start: and nodes:"
            )
            return None
        if not MENU_NAME_RE.match(self.name):
            self.problems.error(
                top.pos,
                f'menu name "{self.name}" (the file name) must use only a-z, 0-9, "_" and "-"; rename the file',
            )
        self._unknown_keys(top, TOP_KEYS, "at the top of a menu")
        self._collect(top, self.path, {self.path.resolve()})
        for key in ("start", "nodes"):
            if key not in top:
                self.problems.error(top.pos, f'the menu has no "{key}:"; add it at the top level')

        for key in ("start", "top"):
            if key in top:
                self.places[(None, key)] = top.value_pos[key]
        default_language = self._language(top, "default_language", LANGUAGES[0])
        topics = tuple(self.topics)
        self.texts = self._shared_texts()
        global_keys = self._global_keys(top.get("keys"), top.value_pos.get("keys", top.pos))
        defaults = self._defaults(top.get("defaults"), top.value_pos.get("defaults", top.pos), global_keys)
        nodes = {nid: self._node(nid, raw, pos, defaults) for nid, (raw, pos) in self.raw_nodes.items()}
        start = self._node_id_value(top, "start") or ""
        top_node = self._node_id_value(top, "top")
        if top_node is None:
            first = nodes.get(start)
            top_node = first.next.node if isinstance(first, m.LanguageNode) and first.next.node else start
        hours = self._hours(top.get("hours"), top.value_pos.get("hours")) if "hours" in top else None
        limits = (
            self._limits(top.get("limits"), top.value_pos.get("limits")) if "limits" in top else m.Limits()
        )
        menu = m.Menu(
            name=self.name,
            start=start,
            top=top_node,
            nodes=nodes,
            texts=self.texts,
            global_keys=global_keys,
            default_language=default_language,
            topics=topics,
            topic_names=self.topic_names,
            hours=hours,
            limits=limits,
            sources=tuple(dict.fromkeys(self.sources)),
            pos=top.pos,
        )
        # The parsed YAML is done with: freed now, while the cyclic collector is paused, it is not
        # walked once more when the collector resumes (2,000 nodes: 50 million instructions less).
        self.raw_nodes.clear()
        self.raw_texts.clear()
        return menu

    def _collect(self, data: LocDict, path: Path, chain: set[Path]) -> None:
        """Gather texts, nodes and topics from this file and, depth first, the files it includes."""
        for section, store in (("texts", self.raw_texts), ("nodes", self.raw_nodes)):
            if section not in data:
                continue
            block = self._mapping(data, section)
            if block is None:
                continue
            for key, value in block.items():
                pos = block.key_pos[key]
                if key in store:
                    other = store[key][1]
                    what = "node" if section == "nodes" else "text"
                    self.problems.error(
                        pos, f'{what} "{key}" is already defined at {other}; rename one of them'
                    )
                    continue
                store[key] = (value, pos)
        if "topics" in data:
            self._collect_topics(data)
        if "include" in data:
            for value, pos in self._list_of_words(data, "include"):
                target = path.parent / value  # shown as written, relative like the menu's own path
                if target.resolve() in chain:
                    self.problems.error(
                        pos, f'"{value}" includes itself through a chain of includes; remove one'
                    )
                    continue
                fragment = self._read_yaml(target, pos)
                if fragment is None:
                    continue
                if not isinstance(fragment, LocDict):
                    self.problems.error(pos, f'"{value}" must be a mapping with texts:, nodes: or topics:')
                    continue
                self._unknown_keys(fragment, FRAGMENT_KEYS, "in an included fragment")
                self._collect(fragment, target, chain | {target.resolve()})

    def _collect_topics(self, data: LocDict) -> None:
        """`topics:` as a list of ids, or as a mapping of ids to their names ({kk: ..., ru: ...}, or
        nothing for an id without one)."""
        value = data["topics"]
        if isinstance(value, LocList) and any(isinstance(item, LocDict) for item in value):
            self._mixed_topics(value)
            return
        if not isinstance(value, LocDict):
            for word, pos in self._list_of_words(data, "topics"):
                self._add_topic(word, pos)
            return
        for key, names in value.items():
            pos = value.key_pos[key]
            if names is None:
                self._add_topic(str(key), pos)
                continue
            # Names in error are reported here; the topic still counts, or every node of it would be too.
            self._add_topic(str(key), pos, self._texts(names, value.value_pos[key], f'topic "{key}"', "name"))

    def _mixed_topics(self, value: LocList) -> None:
        """`- egov: {kk: ..., ru: ...}` among `- general` entries: one error, and every id still counts
        (or each node of the named ones would be an error too)."""
        for index, item in enumerate(value):
            pos = value.item_position(index)
            if isinstance(item, LocDict):
                for key in item:
                    self.problems.error(
                        pos,
                        f'topic "{key}" is written with names inside a list: write topics: either as a list '
                        "of ids, or as a mapping of every id to its names (general: {kk: ..., ru: ...}; an "
                        'id without names: "general:" alone), not both',
                    )
                    self._add_topic(str(key), pos)
            elif isinstance(item, str) and item.strip():
                self._add_topic(item.strip(), pos)

    def _add_topic(self, topic: str, pos: Position, names: m.Texts | None = None) -> None:
        if not ID_RE.match(topic):
            self.problems.error(pos, f'topic "{topic}" must use only a-z, 0-9 and "_"')
        elif topic in self.topics:
            self.problems.warning(pos, f'topic "{topic}" is listed twice')
        else:
            self.topics.append(topic)
            self.places[(None, f"topic:{topic}")] = pos  # for the validator's "no node has it"
            if names is not None:
                self.topic_names[topic] = names

    # -- generic value readers -------------------------------------------------------------------

    def _unknown_keys(self, data: LocDict, known: tuple[str, ...], where: str, elsewhere: str = "") -> None:
        for key in data:
            if key not in known:
                hint = did_you_mean(key, known) or (f"; {elsewhere}" if elsewhere else "")
                allowed = ", ".join(known) if known else "nothing besides kind, topic and say"
                self.problems.error(
                    data.key_pos[key], f'unknown key "{key}" {where}{hint}; allowed: {allowed}'
                )

    def _mapping(self, data: LocDict, key: str) -> LocDict | None:
        value = data[key]
        if not isinstance(value, LocDict):
            self.problems.error(data.value_pos[key], f'"{key}" must be a mapping (key: value lines)')
            return None
        return value

    def _words(self, data: LocDict, key: str) -> list[tuple[str, int | None]]:
        """The words of `key:`, a list of words or one word, each with its index in the list (None for
        the one word); positions are looked up only for an error (phrases need none otherwise)."""
        value = data[key]
        if isinstance(value, str):
            return [(value, None)]
        if not isinstance(value, LocList):
            self.problems.error(data.value_pos[key], f'"{key}" must be a list, e.g. [a, b]')
            return []
        result = []
        for index, item in enumerate(value):
            if isinstance(item, str) and (word := item.strip()):
                result.append((word, index))
            else:
                self.problems.error(
                    value.item_position(index), f'every entry of "{key}" must be a word, got {item!r}'
                )
        return result

    def _list_of_words(self, data: LocDict, key: str) -> list[tuple[str, Position]]:
        """The words of `key:` (see _words), each with its position."""
        value = data[key]
        return [
            (word, data.value_position(key) if index is None else value.item_position(index))
            for word, index in self._words(data, key)
        ]

    def _string(self, data: LocDict, key: str) -> str | None:
        value = data[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.problems.error(data.value_pos[key], f'"{key}" must be a non-empty text, got {value!r}')
            return None
        return value.strip()

    def _number(self, data: LocDict, key: str, *, integer: bool, minimum: float, why: str) -> float | None:
        value = data[key]
        pos = data.value_pos[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and isinstance(value, float))
        ):
            kind = "a whole number" if integer else "a number of seconds"
            got = ("yes" if value else "no") if isinstance(value, bool) else repr(value)
            self.problems.error(pos, f'"{key}" must be {kind}, got {got}')
            return None
        if value < minimum or (minimum == 0 and value == 0 and why == "positive"):
            self.problems.error(pos, f'"{key}" must be {why}, got {value!r}')
            return None
        return value

    def _at_most(self, data: LocDict, key: str, value: float, limit: tuple[float, str]) -> bool:
        """`value` within its most (INPUT_MAXIMA, LIMIT_MAXIMA), else an error that says why."""
        most, why = limit
        if value <= most:
            return True
        got = value if isinstance(value, int) else f"{value:g}"  # 1000000, not 1e+06
        self.problems.error(data.value_pos[key], f'"{key}" must be at most {most:g}{why}, got {got}')
        return False

    def _positive_seconds(self, data: LocDict, key: str) -> float | None:
        if key == "timeout":  # a person needs a moment to answer a prompt that has just ended
            value = self._number(data, key, integer=False, minimum=1, why="at least 1 second")
        else:
            value = self._number(data, key, integer=False, minimum=0, why="positive")
        return None if value is None else float(value)

    def _language(self, data: LocDict, key: str, default: str) -> str:
        if key not in data:
            return default
        value = data[key]
        if value not in LANGUAGES:
            self.problems.error(
                data.value_pos[key], f'"{key}" must be one of {", ".join(LANGUAGES)}, got {value!r}'
            )
            return default
        return value

    def _node_id_value(self, data: LocDict, key: str) -> str | None:
        if key not in data:
            return None
        value = self._string(data, key)
        if value is not None and not ID_RE.match(value):
            self.problems.error(data.value_pos[key], f'"{key}" must name a node id, got "{value}"')
        return value

    def _target(self, data: LocDict, key: str) -> m.Target | None:
        if key not in data:
            return None
        value = self._string(data, key)
        if value is None:
            return None
        pos = data.value_position(key)
        if value not in m.TARGET_ACTIONS and not ID_RE.match(value):
            self.problems.error(
                pos, f'"{key}: {value}" must be a node id (a-z, 0-9, "_") or one of back, top, repeat'
            )
        return m.Target.parse(value, pos)

    def _hash_comment(self, data: LocDict, key: str) -> bool:
        """`key: #` reads as a key with no value: YAML took the `#` for a comment. Say so, and where."""
        if data.get(key) is not None:
            return False
        pos = data.key_pos[key]
        text = self._line_text(pos)
        found = hash_as_value(text[pos.column - 1 :])
        if found is None:
            return False
        column = pos.column + found[0]
        self.problems.error(Position(pos.file, pos.line, column), comment_message(key), text)
        return True

    def _line_text(self, pos: Position) -> str:
        if pos.file not in self.lines:
            self.lines[pos.file] = self.file_texts.get(pos.file, "").splitlines()
        lines = self.lines[pos.file]
        return lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""

    def _key(self, data: LocDict, where: str) -> str | None:
        if "key" not in data or self._hash_comment(data, "key"):
            return None
        raw = value = data["key"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = str(raw)
            pos = data.value_pos["key"]
            written = re.match(r"[^\s,}\]#]*", self._line_text(pos)[pos.column - 1 :])
            if written is not None and written.group() not in ("", value):
                # key: 010 is octal 8 to YAML, key: 0x1 is 1: the caller would press another key
                self.problems.error(
                    pos,
                    f"{where}: key {written.group()} is read by YAML as the number {value}; "
                    f'quote it: key: "{written.group()}"',
                )
                return None
        if not isinstance(value, str) or not KEY_RE.match(value):
            given = "is empty" if raw is None else f"{raw!r} is not a DTMF key"
            self.problems.error(
                data.value_pos["key"],
                f'{where}: key {given}; use 0-9, * or # (up to 4 of them), quoted: key: "1"',
            )
            return None
        return value

    # -- texts -----------------------------------------------------------------------------------

    def _texts(self, value: Any, pos: Position, where: str, noun: str = "text") -> m.Texts | None:
        if not isinstance(value, LocDict):
            self.problems.error(pos, f"{where} must be {{kk: ..., ru: ...}}")
            return None
        ok = True
        for key in value:
            if key not in LANGUAGES:
                hint = did_you_mean(key, LANGUAGES)
                self.problems.error(
                    value.key_pos[key], f'{where}: unknown language "{key}"{hint}; use kk and ru'
                )
                ok = False
        found: dict[str, str] = {}
        for lang in LANGUAGES:
            text = value.get(lang)
            if lang not in value:
                name = "Kazakh" if lang == "kk" else "Russian"
                self.problems.error(value.pos, f"{where} has no {name} {noun}; add {lang}: ...")
                ok = False
            elif not isinstance(text, str) or not text.strip():
                self.problems.error(
                    value.value_pos[lang], f"{where}: the {lang} {noun} is empty; write the {noun}"
                )
                ok = False
            else:
                found[lang] = " ".join(text.split())
        return m.Texts(**found) if ok else None

    def _shared_texts(self) -> dict[str, m.SharedText]:
        result = {}
        for text_id, (value, pos) in self.raw_texts.items():
            if not ID_RE.match(str(text_id)):
                self.problems.error(
                    pos, f'text id "{text_id}" must start with a-z and use only a-z, 0-9, "_"'
                )
                continue
            texts = self._texts(value, getattr(value, "pos", pos), f'text "{text_id}"')
            if texts is not None:
                prompt = m.Prompt(f"{self.name}/text-{text_id}", texts, text_id, pos)
                result[text_id] = m.SharedText(text_id, prompt, pos)
        return result

    def _prompts(self, data: LocDict, key: str, sound: str, where: str) -> tuple[m.Prompt, ...]:
        """say/short/invalid/silence: {kk, ru}, a shared text id, {text: id}, or a list of those."""
        value = data[key]
        pos = data.value_position(key)
        items = (
            list(zip(value, value.item_pos, strict=True)) if isinstance(value, LocList) else [(value, pos)]
        )
        if not items:
            self.problems.error(pos, f"{where}: the list is empty; give at least one text")
        prompts: list[m.Prompt] = []
        inline = 0
        for item, item_pos in items:
            if isinstance(item, LocDict) and set(item) == {"text"}:
                item, item_pos = item["text"], item.value_pos["text"]
            if isinstance(item, str):
                shared = self.texts.get(item)
                if shared is None and item in self.raw_texts:
                    continue  # the text itself is broken and already reported
                if shared is None:
                    hint = did_you_mean(item, [str(k) for k in self.raw_texts])
                    self.problems.error(
                        item_pos,
                        f'{where}: "{item}" is not a text id from texts:{hint}; '
                        "write {kk: ..., ru: ...} for a text of its own",
                    )
                else:
                    prompts.append(shared.prompt)
                continue
            texts = self._texts(item, item_pos, where)
            if texts is not None:
                inline += 1
                name = sound if inline == 1 else f"{sound}-{inline}"
                prompts.append(m.Prompt(name, texts, None, item_pos))
        return tuple(prompts)

    def _phrases(self, data: LocDict, where: str) -> m.Phrases:
        if "phrases" not in data:
            return m.Phrases()
        value = data["phrases"]
        if not isinstance(value, LocDict):
            self.problems.error(
                data.value_pos["phrases"], f"{where}: phrases must be {{kk: [...], ru: [...]}}"
            )
            return m.Phrases()
        found: dict[str, tuple[str, ...]] = {}
        for lang in value:
            if lang not in LANGUAGES:
                hint = did_you_mean(lang, LANGUAGES)
                self.problems.error(
                    value.key_pos[lang], f'{where}: unknown language "{lang}"{hint}; use kk and ru'
                )
                continue
            words = [" ".join(word.lower().split()) for word, _ in self._words(value, lang)]
            found[lang] = tuple(dict.fromkeys(words))
        return m.Phrases(**found)

    # -- menu-level sections -----------------------------------------------------------------------

    def _global_keys(self, value: Any, pos: Position) -> dict[str, m.GlobalKey]:
        if value is None:
            return {}
        if not isinstance(value, LocDict):
            self.problems.error(
                pos, 'keys must be a mapping, e.g. keys: {operator: {key: "0", goto: operator}}'
            )
            return {}
        result = {}
        for action, spec in value.items():
            apos = value.key_pos[action]
            if action not in m.GLOBAL_ACTIONS:
                hint = did_you_mean(action, m.GLOBAL_ACTIONS)
                self.problems.error(
                    apos, f'unknown menu-wide key "{action}"{hint}; allowed: {", ".join(m.GLOBAL_ACTIONS)}'
                )
                continue
            where = f"keys.{action}"
            if self._hash_comment(value, action):
                continue
            if isinstance(spec, str | int) and not isinstance(spec, bool):
                spec = _as_mapping({"key": str(spec)}, value.value_pos[action])
            if not isinstance(spec, LocDict):
                self.problems.error(value.value_pos[action], f'{where} must be {{key: "0", phrases: ...}}')
                continue
            self._unknown_keys(spec, GLOBAL_KEY_KEYS if action == "operator" else ("key", "phrases"), where)
            target = self._target(spec, "goto") if action == "operator" else None
            if action == "operator" and target is None:
                self.problems.error(spec.pos, "keys.operator needs goto: <the operator node id>")
            key = self._key(spec, where)
            phrases = self._phrases(spec, where)
            if key is None and not phrases:
                self.problems.error(spec.pos, f"{where} needs a key, phrases, or both")
            result[action] = m.GlobalKey(action, key, phrases, target, apos)
        return result

    def _defaults(self, value: Any, pos: Position | None, global_keys: dict[str, m.GlobalKey]) -> _Defaults:
        defaults = _Defaults()
        if value is not None:
            if not isinstance(value, LocDict):
                self.problems.error(pos or Position(self.file, 1, 1), "defaults must be a mapping")
            else:
                self._unknown_keys(value, DEFAULTS_KEYS, "in defaults")
                defaults.input = self._input_settings(value, m.InputSettings())
                for role in ("invalid", "silence"):
                    if role in value:
                        sound = f"{self.name}/default-{role}"
                        setattr(defaults, role, self._prompts(value, role, sound, f"defaults.{role}"))
                defaults.on_failure = self._target(value, "on_failure")
        if defaults.on_failure is None:
            operator = global_keys.get("operator")
            if operator is not None and operator.target is not None:
                defaults.on_failure = operator.target
        return defaults

    def _input_settings(self, data: LocDict, base: m.InputSettings) -> m.InputSettings:
        changes: dict[str, Any] = {}
        if "input" in data:
            words = self._list_of_words(data, "input")
            modes = set()
            for word, wpos in words:
                if word not in m.INPUT_MODES:
                    self.problems.error(
                        wpos,
                        f'input "{word}"{did_you_mean(word, m.INPUT_MODES)} is unknown; use dtmf, speech',
                    )
                else:
                    modes.add(word)
            if modes:
                changes["modes"] = frozenset(modes)
            elif not words:
                self.problems.error(data.value_pos["input"], "input needs at least one of dtmf, speech")
        for key in ("timeout", "inter_digit_timeout"):
            if key in data:
                seconds = self._positive_seconds(data, key)
                if seconds is not None and self._at_most(data, key, seconds, INPUT_MAXIMA[key]):
                    changes[key] = seconds
        if "retries" in data:
            retries = self._number(data, "retries", integer=True, minimum=1, why="at least 1")
            if retries is not None and self._at_most(data, "retries", retries, INPUT_MAXIMA["retries"]):
                changes["retries"] = int(retries)
        return attrs.evolve(base, **changes) if changes else base  # most nodes change nothing

    def _limits(self, value: Any, pos: Position | None) -> m.Limits:
        pos = pos or Position(self.file, 1, 1)
        if not isinstance(value, LocDict):
            self.problems.error(
                pos, "limits must be a mapping with max_menus_without_answer: and max_minutes_in_ivr:"
            )
            return m.Limits()
        self._unknown_keys(value, LIMITS_KEYS, "in limits")
        changes: dict[str, Any] = {}
        if "max_menus_without_answer" in value:
            menus = self._number(value, "max_menus_without_answer", integer=True, minimum=1, why="at least 1")
            if menus is not None and self._at_most(
                value, "max_menus_without_answer", menus, LIMIT_MAXIMA["menus"]
            ):
                changes["max_menus_without_answer"] = int(menus)
        if "max_minutes_in_ivr" in value:
            minutes = self._number(
                value, "max_minutes_in_ivr", integer=False, minimum=1, why="at least 1 (minute)"
            )
            if minutes is not None and self._at_most(
                value, "max_minutes_in_ivr", minutes, LIMIT_MAXIMA["minutes"]
            ):
                changes["max_minutes_in_ivr"] = float(minutes)
        return m.Limits(**changes, pos=pos)

    def _hours(self, value: Any, pos: Position | None) -> m.Hours | None:
        pos = pos or Position(self.file, 1, 1)
        if not isinstance(value, LocDict):
            self.problems.error(pos, "hours must be a mapping with timezone:, week: and holidays:")
            return None
        self._unknown_keys(value, HOURS_KEYS, "in hours")
        timezone = "Asia/Almaty"
        if "timezone" in value:
            tz = self._string(value, "timezone")
            try:
                zoneinfo.ZoneInfo(tz or "")
                timezone = tz or timezone
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.problems.error(
                    value.value_pos["timezone"], f'unknown time zone "{tz}"; e.g. Asia/Almaty'
                )
        week: dict[str, tuple[tuple[dt.time, dt.time], ...]] = {}
        if "week" in value and (days := self._mapping(value, "week")) is not None:
            for day, spec in days.items():
                dpos = days.key_pos[day]
                if day not in WEEKDAYS:
                    hint = did_you_mean(day, WEEKDAYS)
                    self.problems.error(dpos, f'"{day}" is not a weekday{hint}; use {", ".join(WEEKDAYS)}')
                    continue
                intervals = self._intervals(spec, days.value_pos[day])
                if intervals:
                    week[day] = intervals
        holidays: list[dt.date] = []
        if "holidays" in value:
            items = value["holidays"]
            if not isinstance(items, LocList):
                self.problems.error(
                    value.value_pos["holidays"], "holidays must be a list of dates YYYY-MM-DD"
                )
            else:
                for item, ipos in zip(items, items.item_pos, strict=True):
                    day = _as_date(item)
                    if day is not None:
                        holidays.append(day)
                    elif re.fullmatch(r"\d{4}-\d\d-\d\d", str(item)):
                        self.problems.error(ipos, f"holiday {item}: there is no such day in the calendar")
                    else:
                        self.problems.error(ipos, f"holiday {item!r} is not a date; write YYYY-MM-DD")
        closed_message: tuple[m.Prompt, ...] = ()
        if "closed_message" in value:
            closed_message = self._prompts(
                value, "closed_message", f"{self.name}/hours-closed", "closed_message"
            )
        elif "week" in value and not self.problems.has_errors and _merged(week) != SAID_WHEN_CLOSED:
            self.problems.warning(
                value.key_pos["week"],
                "callers who call outside these hours hear the built-in closed message, which says "
                "Monday to Friday, 09:00-18:00; add closed_message: {kk: ..., ru: ...} under hours: "
                "saying your hours",
            )
        return m.Hours(timezone, week, tuple(sorted(holidays)), closed_message, pos)

    def _intervals(self, spec: Any, pos: Position) -> tuple[tuple[dt.time, dt.time], ...]:
        if spec in ("closed", None):
            return ()
        items = list(zip(spec, spec.item_pos, strict=True)) if isinstance(spec, LocList) else [(spec, pos)]
        result = []
        for item, ipos in items:
            match = re.fullmatch(r"\s*(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*", str(item))
            hours = [int(g) for g in match.groups()] if match else []
            if not match or hours[0] > 23 or hours[2] > 24 or hours[1] > 59 or hours[3] > 59:
                self.problems.error(ipos, f'opening hours {item!r} must look like "09:00-18:00" or be closed')
                continue
            opens = dt.time(hours[0], hours[1])
            closes = dt.time.max if hours[2] == 24 else dt.time(hours[2], hours[3])
            if closes <= opens:
                self.problems.error(
                    ipos, f'opening hours {item!r} close before they open; e.g. "09:00-18:00"'
                )
                continue
            result.append(((opens, closes), item, ipos))
        result.sort(key=lambda period: period[0])
        for (earlier, first, _), (later, second, later_pos) in itertools.pairwise(result):
            if later[0] < earlier[1]:
                self.problems.error(
                    later_pos, f"opening hours {second!r} overlap {first!r}; a day's periods must not overlap"
                )
        return tuple(period for period, _, _ in result)

    # -- nodes -----------------------------------------------------------------------------------

    def _node(self, node_id: Any, raw: Any, pos: Position, defaults: _Defaults) -> m.Node:
        node_id = str(node_id)
        if not ID_RE.match(node_id) or node_id in m.TARGET_ACTIONS:
            self.problems.error(
                pos,
                f'node id "{node_id}" must start with a-z and use only a-z, 0-9, "_" '
                "(and may not be back, top or repeat); it names sound files",
            )
        where = f'node "{node_id}"'
        if not isinstance(raw, LocDict):
            self.problems.error(pos, f"{where} must be a mapping with kind: and its settings")
            return m.BackNode(id=node_id, pos=pos)  # stand-in so references to it do not cascade
        kind = raw.get("kind")
        if kind not in m.NODE_KINDS:
            at = raw.value_pos.get("kind", pos)
            hint = did_you_mean(kind, m.NODE_KINDS) if isinstance(kind, str) else ""
            what = f'unknown kind "{kind}"{hint}' if "kind" in raw else "has no kind"
            self.problems.error(at, f"{where} {what}; use one of {', '.join(m.NODE_KINDS)}")
            return m.BackNode(id=node_id, pos=pos)
        self.places.update(
            {(node_id, key): raw.value_position(key) for key in ("kind", "topic") if key in raw}
        )
        for key in raw:
            if key in _KNOWN_KEYS[kind]:
                continue
            known = COMMON_KEYS + KIND_KEYS[kind]  # in order, for the message
            users = [k for k, keys in KIND_KEYS.items() if key in keys]
            elsewhere = f"it belongs to kind {', '.join(users)}" if users else ""
            hint = did_you_mean(key, known) or (f"; {elsewhere}" if elsewhere else "")
            self.problems.error(
                raw.key_pos[key],
                f'unknown key "{key}" in {where} (kind {kind}){hint}; allowed: {", ".join(known)}',
            )
        for key in REQUIRED_KEYS.get(kind, ()):
            if key not in raw:
                self.problems.error(pos, f'{where} (kind {kind}) needs "{key}:"')

        sound = f"{self.name}/{node_id}"
        common: dict[str, Any] = {"id": node_id, "pos": pos}
        if "say" in raw:
            common["say"] = self._prompts(raw, "say", sound, f"{where} say")
        if "topic" in raw:
            topic = self._string(raw, "topic")
            if topic is not None and not ID_RE.match(topic):
                self.problems.error(raw.value_pos["topic"], f'topic "{topic}" must use only a-z, 0-9 and "_"')
            common["topic"] = topic
        cls = m.NODE_KINDS[kind]
        fields = getattr(self, f"_fields_{kind}", lambda *_: {})(raw, node_id, where, defaults)
        if issubclass(cls, m.InputNode):
            fields.update(self._input_fields(raw, node_id, sound, where, defaults, fields))
            if fields["input"].modes == {"dtmf"}:
                for item_key in ("options", "choices"):
                    for number, (item, pos) in enumerate(
                        self._items(raw, item_key, where, quiet=True), start=1
                    ):
                        if "key" not in item:
                            self.problems.error(
                                pos,
                                f"{where}, {ordinal(number)} {item_key[:-1]} needs a key: this node takes DTMF only",
                            )
        return cls(**common, **fields)

    def _input_fields(
        self, raw: LocDict, node_id: str, sound: str, where: str, defaults: _Defaults, fields: dict[str, Any]
    ) -> dict[str, Any]:
        settings = self._input_settings(raw, defaults.input)
        keys = [item.key for item in fields.get("options", fields.get("choices", ())) if item.key]
        max_digits = max([1, *map(len, keys)])
        if max_digits != settings.max_digits:
            settings = attrs.evolve(settings, max_digits=max_digits)
        result: dict[str, Any] = {"input": settings}
        for role in ("short", "invalid", "silence"):
            if role in raw:
                result[role] = self._prompts(raw, role, f"{sound}-{role}", f"{where} {role}")
            elif role != "short":
                result[role] = getattr(defaults, role)
        on_failure = self._target(raw, "on_failure") or defaults.on_failure
        if on_failure is None:
            self.problems.error(
                raw.pos,
                f"{where} has no on_failure and the menu has no default; add on_failure: <node> here, "
                "defaults.on_failure, or keys.operator",
            )
            on_failure = m.Target("node", "")
        result["on_failure"] = on_failure
        if "global_keys" in raw:
            if isinstance(raw["global_keys"], bool):
                result["global_keys"] = raw["global_keys"]
            else:
                self.problems.error(raw.value_pos["global_keys"], "global_keys must be true or false")
        return result

    def _items(
        self, raw: LocDict, key: str, where: str, quiet: bool = False
    ) -> list[tuple[LocDict, Position]]:
        if key not in raw:
            return []
        value = raw[key]
        if quiet:
            items = zip(value, value.item_pos, strict=True) if isinstance(value, LocList) else ()
            return [(item, pos) for item, pos in items if isinstance(item, LocDict)]
        if not isinstance(value, LocList) or not value:
            self.problems.error(
                raw.value_pos[key], f'{where}: "{key}" must be a non-empty list of - key: ... items'
            )
            return []
        result = []
        for item, pos in zip(value, value.item_pos, strict=True):
            if isinstance(item, LocDict):
                result.append((item, pos))
            else:
                self.problems.error(
                    pos, f'{where}: each entry of "{key}" must be a mapping like {{key: "1", ...}}'
                )
        return result

    def _fields_menu(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        options = []
        for number, (item, pos) in enumerate(self._items(raw, "options", where), start=1):
            label = f"{where}, {ordinal(number)} option"
            self._unknown_keys(item, OPTION_KEYS, f"in {label}")
            target = self._target(item, "goto")
            if target is None:
                self.problems.error(pos, f"{label} needs goto: <node id> (or back, top, repeat)")
                target = m.Target("repeat", None, pos)
            options.append(m.Option(self._key(item, label), self._phrases(item, label), target, pos))
        return {"options": tuple(options)}

    _fields_question = _fields_menu

    def _fields_language(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        choices = []
        for number, (item, pos) in enumerate(self._items(raw, "choices", where), start=1):
            label = f"{where}, {ordinal(number)} choice"
            self._unknown_keys(item, CHOICE_KEYS, f"in {label}")
            if "language" not in item:
                self.problems.error(pos, f"{label} needs language: kk or ru")
            language = self._language(item, "language", LANGUAGES[0])
            choices.append(
                m.LanguageChoice(self._key(item, label), language, self._phrases(item, label), pos)
            )
        return {"choices": tuple(choices), "next": self._target(raw, "next") or m.Target("node", "")}

    def _fields_info(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        return {"next": self._target(raw, "next") or m.Target("node", "")}

    def _fields_goto(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        return {"target": self._target(raw, "goto") or m.Target("node", "")}

    def _fields_queue(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        fields: dict[str, Any] = {"next": self._target(raw, "next")}
        if "queue" in raw:
            value, pos = raw["queue"], raw.value_pos["queue"]
            if isinstance(value, str):
                self.problems.error(
                    pos, f"{where}: queue needs a queue per language: {{kk: kk-..., ru: ru-...}}"
                )
            else:
                names = self._texts(value, pos, f"{where} queue", "queue name")
                if names is not None:
                    fields["queue"] = m.QueueSpec(names.kk, names.ru, pos)
        if "priority" in raw:
            priority = self._number(raw, "priority", integer=True, minimum=0, why="0 or more")
            if priority is not None:
                fields["priority"] = int(priority)
        if "timeout" in raw:
            seconds = self._number(raw, "timeout", integer=True, minimum=1, why="at least 1 second")
            if seconds is not None and self._at_most(raw, "timeout", seconds, QUEUE_WAIT_MOST):
                fields["timeout"] = int(seconds)
        if "callback_offer" in raw:
            if isinstance(raw["callback_offer"], bool):
                fields["callback_offer"] = raw["callback_offer"]
            else:
                self.problems.error(raw.value_pos["callback_offer"], "callback_offer must be true or false")
        return fields

    def _fields_transfer(self, raw: LocDict, node_id: str, where: str, defaults: _Defaults) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "to" in raw:
            to = self._string(raw, "to")
            if to is not None and not TRANSFER_TO_RE.match(to):
                self.problems.error(
                    raw.value_pos["to"],
                    f'{where}: to "{to}" must be an extension or number: digits, optional +',
                )
            fields["to"] = to or ""
        if "context" in raw:
            context = self._string(raw, "context")
            if context is not None and not CONTEXT_RE.match(context):
                self.problems.error(
                    raw.value_pos["context"], f'{where}: context "{context}" is not a dialplan name'
                )
            fields["context"] = context
        return fields


def _as_mapping(values: dict[str, Any], pos: Position) -> LocDict:
    result = LocDict(values)
    result.pos = pos
    result.key_pos = dict.fromkeys(values, pos)
    result.value_pos = dict.fromkeys(values, pos)
    return result


def _merged(week: dict[str, tuple[tuple[dt.time, dt.time], ...]]) -> dict[str, Any]:
    """Each day's periods with touching ones joined: 09:00-13:00 and 13:00-18:00 are 09:00-18:00."""
    result: dict[str, Any] = {}
    for day, periods in week.items():
        joined: list[tuple[dt.time, dt.time]] = []
        for opens, closes in periods:
            if joined and joined[-1][1] == opens:
                joined[-1] = (joined[-1][0], closes)
            else:
                joined.append((opens, closes))
        if joined:
            result[day] = tuple(joined)
    return result


def _byte_position(path: Path, offset: int, file: str) -> Position:
    """Line and column of the first byte of a file that is not UTF-8 (all before it is)."""
    data = path.read_bytes()
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8")) + 1
    return Position(file, data.count(b"\n", 0, offset) + 1, column)


def _not_utf8(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return (
        f"byte 0x{byte} is not UTF-8: the file was saved in another encoding (Windows-1251, say); "
        "save it as UTF-8"
    )


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None
