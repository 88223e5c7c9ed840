"""`ivr check`'s proof that every call ends: the real interpreter, run over every way a call can go.

Each run is one call through `CallSession` itself, as `ivr simulate` runs it, with a stand-in caller
(`ExplorerChannel`, a SimulatedChannel whose answers come from the explorer instead of a terminal)
and stand-ins for the world around the call: the hour (open, closed, a holiday of the menu), AMI
(down, an operator free, a long wait, nobody logged in), the queue (answered, timed out, the caller
hanging up, the join refused: JOINEMPTY, JOINUNAVAIL, FULL), the callback offer (taken, declined,
let pass). Every place where the caller or the world can go several ways is a decision point.

The search is stateless re-execution, as in stateless model checking: a run follows a prefix of
choices, then takes each point's first alternative (a silent caller, AMI down, the queue answering),
and the points it met beyond the prefix are branched into new prefixes. A point is branched once per
signature (what is asked, at which node, in which language, the how-many-th time at that node, and
whether the call is already leaving), which keeps the search small while every node is reached in
both languages, every unhelpful answer (silence, a wrong key, speech nobody can match) is tried at
every prompt, and every outcome of the world at every queue.

A run fails the check when it goes round without the caller's input (a node visited twice with no
usable answer in between: the menu relies on its safety limit), when it stays in the IVR longer than
the menu's bound, when it does not end, or when the engine fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ivr.agi.channel import CallEnded, RecordResult
from ivr.ami.client import QueueSummary
from ivr.config import Settings
from ivr.engine.interpreter import CallSession
from ivr.engine.routing import OFFER_WAIT_MS
from ivr.engine.simulate import (
    SimulatedChannel,
    SimulationServices,
    TextCatalogue,
    Typed,
    TypedSpeech,
)
from ivr.menus.model import InputNode, LanguageNode, Menu, MenuNode, Node
from ivr.menus.problems import MenuProblem
from ivr.texts import LANGUAGES

MAX_RUNS = 20_000  # a menu needing more is reported as too large to prove, not explored forever
MAX_COMMANDS = 1_000  # channel commands in one run: more means the call does not end
WAY_OUT_ALLOWANCE = 180.0  # seconds the way out may take once a limit is reached (closed + offer + bye)
SPEECH_RATE = 14.0  # characters of prompt text per second of audio, for the time a prompt takes
SILENCE = Typed("silence")
GARBLED = Typed("words", "ыррр мырр")  # speech no phrase of any menu matches
KEY_ORDER = "9876543210*#"
# Every way app_queue gives a caller back (a timeout, a refused join, everyone leaving, no such queue)
# takes the same way on in routing._queue: a timeout and a refused join stand for them all.
QUEUE_WORLD = ("answered", "timeout", "joinempty", "hangup")
AMI_WORLD = ("down", "operator free", "long wait", "nobody logged in")


class _StopRun(BaseException):
    """Ends a run from inside the interpreter (BaseException: the interpreter must not catch it)."""


@attrs.frozen
class Finding:
    """A way through the menu that does not end as it must."""

    kind: str  # "cycle" | "bound" | "endless" | "failed"
    path: tuple[str, ...]  # node ids visited
    cycle: tuple[str, ...] = ()
    story: tuple[str, ...] = ()  # the choices that led here, in words
    seconds: float = 0.0
    where: str = ""  # the node to look at first (for a bound: where most of the time went)


@attrs.frozen
class Exploration:
    runs: int
    findings: tuple[Finding, ...]
    longest_unanswered: float  # seconds: the longest a caller with no usable answer stayed in the IVR
    outcomes: dict[str, int]
    truncated: bool
    reached: frozenset[tuple[str, str]] = frozenset()  # (node, language) some path visited

    @property
    def ok(self) -> bool:
        return not self.findings and not self.truncated


# --- the world around a call ------------------------------------------------------------------
class _Oracle:
    """Answers decision points: the prefix first, then each point's first alternative."""

    def __init__(self, prefix: Sequence[int]) -> None:
        self.prefix = prefix
        self.points: list[tuple[tuple[Any, ...], int, int]] = []  # (signature, alternatives, chosen)
        self.story: list[str] = []

    def choose(
        self, signature: tuple[Any, ...], alternatives: Sequence[Any], describe: Callable[[Any], str]
    ) -> Any:
        index = len(self.points)
        chosen = self.prefix[index] if index < len(self.prefix) else 0
        self.points.append((signature, len(alternatives), chosen))
        value = alternatives[chosen]
        self.story.append(describe(value))
        return value


def _moments(menu: Menu) -> dict[str, bool]:
    """Whether the menu's own opening hours are open at one moment of each kind: open, closed, a
    holiday of the menu at mid-morning (its hours decide; a holiday is closed unless they say not)."""
    from ivr.engine.app import hours_for

    hours = hours_for(menu)
    start = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)  # a Monday
    found: dict[str, bool] = {}
    for step in range(0, 14 * 24 * 2):
        moment = start + dt.timedelta(minutes=30 * step)
        found.setdefault("open" if hours.is_open(moment) else "closed", False)
        if len(found) == 2:
            break
    if "open" in found:
        found["open"] = True
    if menu.hours is not None and menu.hours.holidays:
        day = menu.hours.holidays[0]
        found["holiday"] = hours.is_open(dt.datetime(day.year, day.month, day.day, 5, 0, tzinfo=dt.UTC))
    return {kind: found[kind] for kind in ("open", "closed", "holiday") if kind in found}


class _Hours:
    """The menu's real opening hours at the moment the oracle picks for this run."""

    def __init__(self, moments: dict[str, bool], oracle: _Oracle) -> None:
        self._moments = moments
        self._oracle = oracle
        self._chosen: str | None = None
        self.channel: ExplorerChannel | None = None

    def is_open(self, now: dt.datetime) -> bool:
        if self._chosen is None:  # the hour is chosen once a call, where it first matters
            channel = self.channel
            signature = ("hours", channel.node, channel.call_language) if channel else ("hours",)
            self._chosen = self._oracle.choose(signature, list(self._moments), lambda k: f"{k} hours")
        return self._moments[self._chosen]


class _Ami:
    """AMI as the world may have it: down, an operator free, a long wait, nobody logged in."""

    def __init__(self, oracle: _Oracle, channel: ExplorerChannel) -> None:
        self._oracle = oracle
        self._channel = channel

    async def queue_summary(self, queue: str) -> QueueSummary | None:
        state = self._oracle.choose(
            ("ami", self._channel.node, self._channel.call_language, self._channel.leaving()),
            AMI_WORLD,
            lambda s: f"AMI: {s}",
        )
        if state == "down":
            return None
        if state == "operator free":
            return QueueSummary(
                queue, logged_in=2, available=2, callers=0, hold_time=30, talk_time=180, longest_hold_time=0
            )
        if state == "long wait":
            return QueueSummary(
                queue,
                logged_in=2,
                available=0,
                callers=30,
                hold_time=600,
                talk_time=300,
                longest_hold_time=900,
            )
        return QueueSummary(
            queue, logged_in=0, available=0, callers=0, hold_time=0, talk_time=0, longest_hold_time=0
        )


class _ScratchState:
    """The parts of the engine's state a call touches, in memory: callbacks are taken, nothing kept."""

    def __init__(self) -> None:
        self.journal = self
        self.incidents = self
        self.callbacks = self
        self._ids = itertools.count(1)

    def call_started(self, *args: Any, **kwargs: Any) -> None:
        return None

    def call_ended(self, *args: Any, **kwargs: Any) -> None:
        return None

    def event(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def active(self, now: Any = None, topic: str | None = None) -> list[Any]:
        return []

    async def request(self, *args: Any, **kwargs: Any) -> int:
        return next(self._ids)


# --- the caller ----------------------------------------------------------------------------
class ExplorerChannel(SimulatedChannel):
    """A SimulatedChannel whose caller and queue are chosen by the explorer, timing every prompt."""

    def __init__(
        self,
        menu: Menu,
        oracle: _Oracle,
        durations: Callable[[str, str], float],
        catalogue: TextCatalogue,
        answers: dict[tuple[str, str, str], tuple[list[Typed], list[Typed]]],
        menu_wide: dict[tuple[str, str], str],
    ) -> None:
        super().__init__(menu, _no_line, _no_write, speech_languages=LANGUAGES, catalogue=catalogue)
        self.oracle = oracle
        self.seconds = 0.0
        self._durations = durations
        self.session: CallSession | None = None
        self.since_input: list[str] = []  # nodes visited since the caller's last usable answer
        self.asked_here = 0  # questions asked at the current node
        self.cycle: tuple[str, ...] = ()
        self.commands = 0
        self.node_seconds: dict[str, float] = {}  # where the call's time went
        self._answers = answers  # (asked, node, language) -> (unhelpful, useful) answers, shared by runs
        self._menu_wide = menu_wide  # (menu-wide key, language) -> the node where it is tried
        self.reached: set[tuple[str, str]] = set()  # (node, language) visited

    def leaving(self) -> bool:
        return self.session is not None and self.session.leaving is not None

    # Output is not shown; the time it takes is counted.
    def say(self, *sounds: str) -> None:
        self._count()
        self._spend(sum(self._durations(sound, self.language) for sound in sounds))

    def note(self, text: str) -> None:
        return None

    def _spend(self, seconds: float) -> None:
        """Time passes for the caller, at the node the call is in."""
        self.seconds += seconds
        self.node_seconds[self.node] = self.node_seconds.get(self.node, 0.0) + seconds

    def _count(self) -> None:
        self.commands += 1
        if self.commands > MAX_COMMANDS:
            raise _StopRun("endless")

    async def _next_line(self, expect: str) -> Typed:
        self._count()
        node = self.menu.nodes.get(self.node)
        self.asked_here += 1
        signature = (expect, self.node, self.call_language, self.asked_here, self.leaving())
        key = (expect, self.node, self.call_language)
        answers = self._answers.get(key)
        if answers is None:
            unhelpful = [SILENCE, *self._wrong_key(node, expect)]
            if "words" in expect and self.speech_languages:
                unhelpful.append(GARBLED)
            answers = self._answers[key] = (unhelpful, self._useful(node, expect, "words" in expect))
        unhelpful, useful = answers
        if self.asked_here > 1 and isinstance(node, MenuNode | LanguageNode):
            # A usable answer on a later try leads where it does on the first, and speech nobody can
            # match counts as a wrong key does: both are tried on the first try only.
            unhelpful, useful = unhelpful[:2], []
        typed = self.oracle.choose(signature, [*unhelpful, *useful], _describe)
        if typed is SILENCE:
            # the node's own silence timeout (a callback offer or number check waits OFFER_WAIT_MS)
            self._spend(node.input.timeout if isinstance(node, InputNode) else OFFER_WAIT_MS / 1000)
        elif typed not in unhelpful:
            self.since_input.clear()  # a usable answer
        return typed

    def _wrong_key(self, node: Node | None, expect: str) -> list[Typed]:
        if expect.startswith("keys, end"):
            return []  # typing a number: a wrong key is just a wrong number
        taken = set(self._valid_keys(node))
        wrong = next((k for k in KEY_ORDER if k not in taken), None)
        return [Typed("keys", wrong)] if wrong else []

    def _valid_keys(self, node: Node | None) -> list[str]:
        if isinstance(node, LanguageNode):
            keys = [c.key for c in node.choices if c.key]
        elif isinstance(node, MenuNode):
            keys = [o.key for o in node.options if o.key]
        else:
            keys = ["1", "2"]  # a callback offer or its number confirmation
        if isinstance(node, MenuNode) and node.global_keys:
            keys += [g.key for g in self.menu.global_keys.values() if g.key]
        return list(dict.fromkeys(k for k in keys if k))

    def _useful(self, node: Node | None, expect: str, speech: bool) -> list[Typed]:
        if expect.startswith("keys, end"):
            return [Typed("keys", "7701234567#")]
        menu_wide = {g.key for g in self.menu.global_keys.values() if g.key}
        useful = [
            Typed("keys", key)
            for key in self._valid_keys(node)
            # A menu-wide key is a usable answer that leads to no node the menus do not reach anyway
            # (the operator, this node in the other language, this node again, the one before): it is
            # tried at the first node that offers it, per language, not at every node.
            if key not in menu_wide
            or self._menu_wide.setdefault((key, self.call_language), self.node) == self.node
        ]
        if speech and isinstance(node, MenuNode):  # options a caller can only say
            for option in node.options:
                phrases = option.phrases.get(self.call_language)
                if not option.key and phrases:
                    useful.append(Typed("words", phrases[0]))
        return useful

    async def record_file(self, *args: Any, **kwargs: Any) -> RecordResult:
        self._spend(2.0)
        return await super().record_file(*args, **kwargs)

    def _queue(self, values: list[str]) -> int:
        self._count()
        queue = values[0] if values else ""
        signature = ("queue", self.node, self.call_language, self.leaving())
        self.queue_outcome = self.oracle.choose(signature, QUEUE_WORLD, lambda o: f"queue {queue}: {o}")
        return super()._queue(values)

    def observe(self, kind: str, node: str, data: dict[str, Any]) -> None:
        if kind == "node":
            if node in self.since_input:
                self.cycle = (*self.since_input[self.since_input.index(node) :], node)
                raise _StopRun("cycle")
            self.since_input.append(node)
            self.reached.add((node, self.call_language))
            self.node = node
            self.visited.append(node)
            self.asked_here = 0
        elif kind == "language":
            self.call_language = data.get("language", self.call_language)


def _describe(typed: Typed) -> str:
    if typed.kind == "silence":
        return "silence"
    if typed.kind == "words":
        return f"says «{typed.value}»"
    return f"presses {typed.value}"


async def _no_line(prompt: str) -> str | None:
    raise AssertionError("the explorer answers every question itself")


def _no_write(text: str) -> None:
    return None


# --- the search -----------------------------------------------------------------------------
def _durations(catalogue: TextCatalogue) -> Callable[[str, str], float]:
    cache: dict[tuple[str, str], float] = {}

    def duration(sound: str, language: str) -> float:
        key = (sound, language)
        if key not in cache:
            text = catalogue.text(sound, language)
            cache[key] = max(0.6, len(text) / SPEECH_RATE) if text else 1.0
        return cache[key]

    return duration


class _Remembering:
    """A node's matcher or classifier whose decisions are remembered: the same words heard at the same
    node decide the same way, so the paths that replay them do not decide again."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._decided: dict[tuple[str, Any, str], Any] = {}

    def _remember(self, how: str, said: Any, language: str) -> Any:
        key = (how, said, language)
        if key not in self._decided:
            self._decided[key] = getattr(self._inner, how)(said, language)
        return self._decided[key]

    def match(self, said: Any, language: str) -> Any:
        return self._remember("match", said, language)

    def classify(self, said: Any, language: str) -> Any:
        return self._remember("classify", said, language)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@attrs.define
class _ExplorerServices(SimulationServices):
    """The engine's services with every node's matchers remembering their decisions."""

    _remembering: dict[int, _Remembering] = attrs.field(factory=dict)

    def _wrap(self, inner: Any) -> Any:
        wrapped = self._remembering.get(id(inner))
        if wrapped is None:
            wrapped = self._remembering[id(inner)] = _Remembering(inner)
        return wrapped

    def matcher(self, menu: Menu, node: MenuNode) -> Any:
        return self._wrap(super().matcher(menu, node))

    def classifier(self, menu: Menu, node: MenuNode) -> Any:
        return self._wrap(super().classifier(menu, node))

    def language_matcher(self, menu: Menu, node: LanguageNode, language: str) -> Any:
        return self._wrap(super().language_matcher(menu, node, language))

    def global_classifier(self, menu: Menu) -> Any:
        return self._wrap(super().global_classifier(menu))


@attrs.define
class _World:
    """What every run of one exploration shares: the menu's texts, hours and the engine's services
    (one set, so the matchers the interpreter builds per node are built once)."""

    menu: Menu
    catalogue: TextCatalogue
    durations: Callable[[str, str], float]
    moments: dict[str, bool]
    services: _ExplorerServices
    answers: dict[tuple[str, str, str], tuple[list[Typed], list[Typed]]] = attrs.field(factory=dict)
    menu_wide: dict[tuple[str, str], str] = attrs.field(factory=dict)

    @classmethod
    def of(cls, menu: Menu) -> _World:
        catalogue = TextCatalogue(menu)
        settings = Settings()
        settings = attrs.evolve(settings, speech=attrs.evolve(settings.speech, spool="-"))
        services = _ExplorerServices(settings=settings, state=_ScratchState())
        return cls(menu, catalogue, _durations(catalogue), _moments(menu), services)


def _run(loop: asyncio.AbstractEventLoop, world: _World, prefix: Sequence[int]) -> tuple[_Oracle, Any]:
    menu = world.menu
    oracle = _Oracle(prefix)
    channel = ExplorerChannel(menu, oracle, world.durations, world.catalogue, world.answers, world.menu_wide)
    services = world.services
    services.speech = TypedSpeech(channel.heard, LANGUAGES)
    hours = _Hours(world.moments, oracle)
    hours.channel = channel
    services.hours = hours
    services.observer = channel.observe
    services.ami = _Ami(oracle, channel)
    services.elapsed = lambda: channel.seconds
    session = CallSession(channel, menu, services)  # type: ignore[arg-type]
    channel.session = session
    stop = ""
    try:
        loop.run_until_complete(session.run())
    except CallEnded:
        pass
    except _StopRun as exc:
        stop = str(exc)
    return oracle, (channel, session, stop)


def explore(menu: Menu, max_runs: int = MAX_RUNS) -> Exploration:
    """Every way through `menu`; runs its own event loop (call it from synchronous code)."""
    loop = asyncio.new_event_loop()
    try:
        return _explore(loop, menu, max_runs)
    finally:
        loop.close()


def _explore(loop: asyncio.AbstractEventLoop, menu: Menu, max_runs: int) -> Exploration:
    world = _World.of(menu)
    bound = menu.limits.max_seconds_in_ivr + WAY_OUT_ALLOWANCE
    pending: list[tuple[int, ...]] = [()]
    branched: set[tuple[Any, ...]] = set()
    findings: dict[tuple[str, tuple[str, ...]], Finding] = {}
    outcomes: dict[str, int] = {}
    longest = 0.0
    runs = 0
    reached: set[tuple[str, str]] = set()
    while pending and runs < max_runs:
        prefix = pending.pop()
        runs += 1
        oracle, (channel, session, stop) = _run(loop, world, prefix)
        for index in range(len(prefix), len(oracle.points)):
            signature, count, _ = oracle.points[index]
            if signature in branched:
                continue
            branched.add(signature)
            chosen = tuple(point[2] for point in oracle.points[:index])
            pending.extend((*chosen, other) for other in range(1, count))
        reached |= channel.reached
        seconds = session.ivr_seconds()
        story = tuple(oracle.story)
        path = tuple(channel.visited)
        if stop == "cycle":
            key = ("cycle", tuple(sorted(set(channel.cycle))))
            findings.setdefault(key, Finding("cycle", path, channel.cycle, story, seconds))
            continue
        if stop == "endless":
            findings.setdefault(("endless", path[-5:]), Finding("endless", path, (), story, seconds))
            continue
        outcome = session.outcome or ("self_served" if session.served else "abandoned")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "failed":
            findings.setdefault(("failed", path[-3:]), Finding("failed", path, (), story, seconds))
        if seconds > bound:
            slowest = max(channel.node_seconds, key=channel.node_seconds.__getitem__, default="")
            findings.setdefault(("bound", path[-3:]), Finding("bound", path, (), story, seconds, slowest))
        if session.unanswered or session.leaving:
            longest = max(longest, seconds)
    return Exploration(runs, tuple(findings.values()), longest, outcomes, bool(pending), frozenset(reached))


# --- what the admin reads ------------------------------------------------------------------
def _where(menu: Menu, node_id: str) -> str:
    node = menu.nodes.get(node_id)
    if node is None:
        return node_id
    return f"{node_id} ({node.pos.file}:{node.pos.line})"


def problems(menu: Menu, result: Exploration) -> Iterator[MenuProblem]:
    limits = menu.limits
    for finding in result.findings:
        first = menu.nodes.get(
            finding.where or (finding.cycle[0] if finding.cycle else finding.path[-1] if finding.path else "")
        )
        pos = first.pos if first is not None else menu.pos
        how = ", ".join(finding.story[-8:])
        if finding.kind == "cycle":
            chain = " -> ".join(_where(menu, n) for n in finding.cycle)
            message = (
                f"a caller goes round without answering: {chain}; "
                f"seen with: {how}. Give one of these nodes a way out that does not lead back "
                "(on_failure: operator, a queue node, or a hangup node)"
            )
        elif finding.kind == "bound":
            message = (
                f"a call stays {finding.seconds / 60:.1f} min in the IVR, over the bound of "
                f"{limits.max_minutes_in_ivr:g} min (limits: max_minutes_in_ivr); path: "
                f"{' -> '.join(finding.path[-8:])}; seen with: {how}"
            )
        elif finding.kind == "endless":
            message = f"a call does not end ({MAX_COMMANDS} commands); path: {' -> '.join(finding.path[-8:])}"
        else:
            message = f"the engine fails on this path: {' -> '.join(finding.path[-8:])}; seen with: {how}"
        yield MenuProblem(pos.file, pos.line, pos.column, message, "error")
    if result.truncated:
        yield MenuProblem(
            menu.pos.file,
            menu.pos.line,
            menu.pos.column,
            f"too many paths to prove every call ends (stopped after {result.runs} runs)",
            "warning",
        )


def summary(menu: Menu, result: Exploration) -> str:
    minutes = result.longest_unanswered / 60
    return (
        f"{menu.name}: every call ends ({result.runs} paths: kk and ru; silence, wrong keys, unrecognised "
        f"speech; open, closed, holiday; AMI up and down; queue answered, timed out, refused; callbacks "
        f"taken and let pass). Longest stay without an answer {minutes:.1f} min: the bound is "
        f"{menu.limits.max_minutes_in_ivr:g} min in the menus, then up to {WAY_OUT_ALLOWANCE / 60:g} min "
        f"on the way out (closed message, callback offer, goodbye)."
    )
