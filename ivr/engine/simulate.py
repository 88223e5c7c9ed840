"""`ivr simulate`: one call through a menu in the terminal, run by the real interpreter.

The admin reads what would be said (the text of each sound, in the call's language, after the node
and sound name) and answers by typing: digits are keys, other text is speech (matched by the real
matcher as if recognised with full confidence), an empty line is silence, `hangup` or end of input
hangs up. What the engine decides (language, choices, queue, transfer, callback, hang-up) is printed
as it happens, from the same journal events a real call records.

Nothing here imitates the interpreter: `SimulatedChannel` stands in for Asterisk (answering each
channel command as a caller at a terminal would), `TypedSpeech` for the recogniser, and the call is
run by `CallSession` itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ivr.agi.channel import CallEnded, CallHangup, DigitsResult, RecordResult, StreamResult
from ivr.agi.protocol import AgiEnvironment, Reply
from ivr.config import Settings
from ivr.engine.interpreter import CallSession
from ivr.engine.services import EngineServices
from ivr.engine.system_texts import system_prompt_texts
from ivr.menus.model import LanguageNode, Menu
from ivr.prompts.catalog import asterisk_sound_texts
from ivr.speech.recognizer import Recognition, Word
from ivr.testing.fake_caller import QUEUE_OUTCOMES, queue_ending
from ivr.texts import LANGUAGES

# Reads one line after showing a prompt; None when input has ended (Ctrl-D, end of a script).
LineSource = Callable[[str], Awaitable[str | None]]
Writer = Callable[[str], None]

SAMPLE_RATE = 8000  # what Asterisk records a telephone call at, for RECORD FILE's endpos
DEFAULT_CALLERID = "77011234567"
_QUEUE_NOTES = {  # the simulator's queue does what the fake Asterisk's does (QUEUE_OUTCOMES)
    "timeout": "nobody answered before the queue timeout",
    "joinempty": "the queue refused the join: no operator logged in (JOINEMPTY)",
    "joinunavail": "the queue refused the join: every operator unavailable (JOINUNAVAIL)",
    "full": "the queue refused the join: it is full (FULL)",
    "leaveempty": "the queue gave the caller back: every operator left (LEAVEEMPTY)",
    "noqueue": "Asterisk has no such queue (QUEUESTATUS UNKNOWN): check asterisk-conf/queues.conf",
}
HELP = (
    "Type keys (2, 12#), or words (запись, or `say запись`); an empty line is silence;\n"
    "`lang kk` / `lang ru` switches language the way a caller can; `hangup` or Ctrl-D hangs up."
)


# --- what each sound says ---------------------------------------------------------------------


class TextCatalogue:
    """Sound name and language -> the text that sound says: the menu's own texts, the engine's
    (apologies, queue figures, callbacks) and Asterisk's (digits, numbers, queue announcements)."""

    def __init__(self, menu: Menu) -> None:
        texts = [*menu.prompt_texts(), *system_prompt_texts()]
        for language in LANGUAGES:
            texts.extend(asterisk_sound_texts(language))
        self._texts = {(t.name, t.language): t.text for t in texts}

    def text(self, sound: str, language: str) -> str | None:
        return self._texts.get((sound, language))


# --- what the caller typed --------------------------------------------------------------------

_KEYS = re.compile(r"^[0-9*#\s]+$")


@attrs.frozen
class Typed:
    """One line of caller input: keys, words, silence, hangup, a language switch or a request for help."""

    kind: str  # "keys" | "words" | "silence" | "hangup" | "lang" | "help"
    value: str = ""


def parse_line(line: str | None) -> Typed:
    if line is None:
        return Typed("hangup", "end of input")
    text = line.strip()
    if not text:
        return Typed("silence")
    lowered = text.lower()
    if lowered in ("hangup", "hang up", "quit", "exit"):
        return Typed("hangup", "typed")
    if lowered in ("help", "?"):
        return Typed("help")
    if lowered.startswith("lang "):
        return Typed("lang", lowered[5:].strip())
    if lowered.startswith("say "):
        return Typed("words", text[4:].strip())
    if _KEYS.match(text):
        return Typed("keys", "".join(text.split()))
    return Typed("words", text)


# --- the recogniser stand-in --------------------------------------------------------------------


class TypedSpeech:
    """Speech service whose recognitions are the words the admin typed, each with confidence 1.0.

    `heard` is filled by the channel when a recording ends on typed words; the interpreter then asks
    for the recording's recognition and gets them. Decisions stay with the real matcher."""

    def __init__(
        self, heard: deque[str], languages: Sequence[str] = LANGUAGES, write: Writer | None = None
    ) -> None:
        self.heard = heard
        self.languages = tuple(languages)
        self._write = write

    def available(self, language: str) -> bool:
        return language in self.languages

    async def recognize(
        self, wav_path: str | Path, language: str, phrases: Sequence[str] | None
    ) -> Recognition:
        text = self.heard.popleft().lower() if self.heard else ""
        tokens = text.split()
        words = tuple(Word(w, 1.0, 0.4 * i, 0.4 * i + 0.35) for i, w in enumerate(tokens))
        if phrases is not None and tokens and self._write is not None:
            known = {w for phrase in phrases for w in phrase.lower().split()}
            unknown = [w for w in dict.fromkeys(tokens) if w not in known]
            if unknown:
                shown = ", ".join(f"«{w}»" for w in unknown)
                self._write(
                    f"   note: {shown} not among this node's phrases (a restricted recogniser hears [unk])"
                )
        return Recognition(
            text=" ".join(tokens),
            words=words,
            confidence=1.0 if words else 0.0,
            decode_seconds=0.0,
            restricted=phrases is not None,
            audio_seconds=0.4 * len(tokens),
        )


# --- the channel -------------------------------------------------------------------------------


class SimulatedChannel:
    """The channel API the interpreter uses, answered by a caller at a terminal.

    Keys typed on one line are pressed one after another: the first answers the command waiting for
    input, the rest are typed ahead and interrupt the next prompts that accept them (a prompt that does
    not accept a key loses it, as STREAM FILE does). Nothing is read while a prompt plays; the admin
    answers when the engine waits."""

    def __init__(
        self,
        menu: Menu,
        read_line: LineSource,
        write: Writer,
        *,
        heard: deque[str] | None = None,
        callerid: str = DEFAULT_CALLERID,
        queue_outcome: str = "answered",
        start_language: str | None = None,
        speech_languages: Sequence[str] = LANGUAGES,
        catalogue: TextCatalogue | None = None,
    ) -> None:
        if queue_outcome not in QUEUE_OUTCOMES:
            raise ValueError(f"queue outcome {queue_outcome!r}: expected one of {', '.join(QUEUE_OUTCOMES)}")
        self.menu = menu
        self.catalogue = catalogue or TextCatalogue(menu)
        self._read_line = read_line
        self._write = write
        self.heard: deque[str] = heard if heard is not None else deque()
        self.queue_outcome = queue_outcome
        self.speech_languages = tuple(speech_languages)
        self.env = AgiEnvironment(
            {
                "network_script": menu.name,
                "request": f"agi://simulate/{menu.name}",
                "channel": "SIM/terminal-00000001",
                "language": "en",
                "uniqueid": f"simulate-{time.time_ns()}",
                "callerid": callerid or "unknown",
                "calleridname": "ivr simulate",
                "context": "ivr-1414",
                "extension": "1414",
            }
        )
        self.language = self.env.language
        self.hung_up = False
        self.closed = False
        self.answered = False
        self.variables: dict[str, str] = {}
        self._keys: deque[str] = deque()
        self._pending_lang = start_language  # --lang: answered at the first wait for input
        # What the engine has decided so far, kept up to date from its journal events.
        self.node = ""
        self.call_language = menu.default_language
        self.visited: list[str] = []
        self.queue: str | None = None
        self.transfer: str | None = None
        self.hangup_by: str | None = None

    # --- output ---------------------------------------------------------------------------------
    def say(self, *sounds: str) -> None:
        """One line per prompt: node, sound name(s), language, and the text the caller hears."""
        texts = [self.catalogue.text(sound, self.language) for sound in sounds]
        if len(sounds) == 1 and texts[0] is None:
            shown = f"(no text for this sound in {self.language})"
        else:
            shown = " ".join(t if t is not None else f"({s}?)" for s, t in zip(sounds, texts, strict=True))
        self._write(f"[{self.node}] {'&'.join(sounds)} ({self.language}): {shown}")

    def note(self, text: str) -> None:
        self._write(f"   {text}")

    # --- input ----------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self.hung_up:
            raise CallHangup("the simulated call has ended")

    async def _next_line(self, expect: str) -> Typed:
        """The admin's next answer; language switches become the keys a caller would press."""
        while True:
            if self._pending_lang:
                language, self._pending_lang = self._pending_lang, None
                typed = Typed("lang", language)
                self._write(f"[{self.node}] {expect}> lang {language}   (--lang)")
            else:
                typed = parse_line(await self._read_line(f"[{self.node}] {expect}> "))
            if typed.kind == "help":
                self._write(HELP)
                continue
            if typed.kind == "lang":
                keys = self._language_keys(typed.value)
                if keys is None:
                    continue
                return Typed("keys", keys)
            if typed.kind == "hangup":
                self.hung_up = True
                self.hangup_by = "caller"
                self.note(f"caller hangs up ({typed.value})")
                raise CallHangup(f"caller hung up ({typed.value})")
            return typed

    def _language_keys(self, language: str) -> str | None:
        """The key a caller presses to speak `language` here, or None (with the reason shown)."""
        if language not in LANGUAGES:
            self.note(f"lang {language!r}: the menus speak {' and '.join(LANGUAGES)}")
            return None
        node = self.menu.nodes.get(self.node)
        if isinstance(node, LanguageNode):
            key = next((c.key for c in node.choices if c.language == language and c.key), None)
            if key is None:
                self.note(f"node {node.id} has no key for {language}")
            return key
        if language == self.call_language:
            self.note(f"the call is already in {language}")
            return None
        switch = self.menu.global_keys.get("language")
        if switch is None or not switch.key:
            self.note("this menu has no language key; say the language's name instead")
            return None
        return switch.key

    async def _take_key(self, expect: str, accepted: str | None = None) -> str | None:
        """One key: typed ahead, or from a new line. Words here are not heard (keys only)."""
        if not self._keys:
            typed = await self._next_line(expect)
            if typed.kind == "words":
                self.note("keys only here: words are not heard (counts as silence)")
                return None
            if typed.kind == "silence":
                return None
            self._keys.extend(typed.value)
        return self._keys.popleft()

    def _interrupting_key(self, escape_digits: str) -> str | None:
        """A typed-ahead key stops a prompt that accepts it; a prompt that does not loses it."""
        while self._keys:
            key = self._keys.popleft()
            if key in escape_digits:
                self.note(f"key {key} interrupts the prompt")
                return key
            self.note(f"key {key} lost: this prompt does not take it")
        return None

    # --- the channel API ------------------------------------------------------------------------
    async def answer(self) -> None:
        self._check_alive()
        self.answered = True

    async def stream_file(
        self, name: str, escape_digits: str = "", offset: int | None = None, timeout: float = 0
    ) -> StreamResult:
        self._check_alive()
        self.say(name)
        digit = self._interrupting_key(escape_digits)
        return StreamResult(digit, 0 if digit else SAMPLE_RATE)

    async def get_data(
        self, prompt: str, timeout_ms: int, max_digits: int, timeout: float = 0
    ) -> DigitsResult:
        """Play `prompt`, then take keys up to `max_digits`; '#' ends them and is not returned."""
        self._check_alive()
        self.say(prompt)
        if not self._keys:
            typed = await self._next_line("keys, end with #")
            if typed.kind == "words":
                self.note("keys only here: words are not heard")
            elif typed.kind == "keys":
                self._keys.extend(typed.value)
        digits = ""
        while self._keys and len(digits) < max_digits:
            key = self._keys.popleft()
            if key == "#":
                return DigitsResult(digits, False)
            digits += key
        return DigitsResult(digits, len(digits) < max_digits)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self._check_alive()
        return await self._take_key("keys")

    async def record_file(
        self,
        path: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 8000,
        beep: bool = False,
        silence_seconds: int | None = None,
        offset: int | None = None,
    ) -> RecordResult:
        """Nothing is written: typed words go to the speech stand-in, keys end the recording."""
        self._check_alive()
        if not self._keys:
            typed = await self._next_line("keys or words")
            if typed.kind == "words":
                self.heard.append(typed.value)
                return RecordResult("silence", None, SAMPLE_RATE * 2)
            if typed.kind == "silence":
                return RecordResult("silence", None, SAMPLE_RATE * (silence_seconds or 2))
            self._keys.extend(typed.value)
        while self._keys:
            key = self._keys.popleft()
            if key in escape_digits:
                return RecordResult("dtmf", key, SAMPLE_RATE // 2)
            self.note(f"key {key} lost: not accepted here")
        return RecordResult("silence", None, SAMPLE_RATE * (silence_seconds or 2))

    async def set_variable(self, name: str, value: object) -> None:
        self._check_alive()
        self.variables[name] = str(value)

    async def get_variable(self, name: str) -> str | None:
        return self.variables.get(name)  # Asterisk answers GET VARIABLE on a dead channel too

    async def get_full_variable(self, expression: str) -> str | None:
        self._check_alive()
        name = expression[2:-1] if expression.startswith("${") and expression.endswith("}") else expression
        return self.variables.get(name)

    async def set_language(self, language: str) -> None:
        await self.set_variable("CHANNEL(language)", language)
        self.language = language

    async def exec(self, application: str, args: Sequence[object] = (), timeout: float = 0) -> int:
        self._check_alive()
        app = application.lower()
        values = [str(a) for a in args]
        if app == "playback":
            sounds = [s for s in values[0].split("&") if s] if values else []
            if sounds:
                self.say(*sounds)
            self.variables["PLAYBACKSTATUS"] = "SUCCESS"
            return 0
        if app == "queue":
            return self._queue(values)
        self.note(f"exec {application}({','.join(values)})")
        return 0

    def _queue(self, values: list[str]) -> int:
        queue = values[0] if values else ""
        wait = values[4] if len(values) > 4 and values[4] else "the queue's own"
        priority = self.variables.get("QUEUE_PRIO", "0")
        self.queue = queue
        self._write(f"→ queue {queue} (priority {priority}, timeout {wait} s)")
        outcome = self.queue_outcome
        ending = queue_ending(outcome)  # as the fake Asterisk ends it
        ending.set_variables(self.variables)
        if outcome in _QUEUE_NOTES:
            self.note(f"{_QUEUE_NOTES[outcome]} (--queue-outcome {outcome})")
        elif ending.dead:
            self.note("the caller hangs up while waiting (--queue-outcome hangup)")
            self.hung_up = True
            self.hangup_by = "caller"
        else:
            # As on a real call: an operator answers, talks and hangs up; the caller's line stays up.
            self.note("an operator answers; the call ends when they hang up")
            self.hangup_by = "operator"
        return ending.result

    async def channel_status(self) -> int:
        self._check_alive()
        return 6 if self.answered else 4

    async def verbose(self, message: str, level: int = 1) -> None:
        self._check_alive()

    async def hangup(self) -> None:
        if self.hung_up:
            return
        self.hung_up = True
        if self.hangup_by is None:
            self.hangup_by = "engine"
            self._write("→ engine hangs up")

    async def command(self, name: str, *args: object, timeout: float | None = None) -> Reply:
        """The raw commands the interpreter sends: SET CONTEXT / EXTENSION / PRIORITY for a transfer."""
        self._check_alive()
        upper = name.upper()
        if upper in ("SET CONTEXT", "SET EXTENSION", "SET PRIORITY") and args:
            self.variables[upper] = str(args[0])
            if upper == "SET PRIORITY":
                extension = self.variables.get("SET EXTENSION", "")
                context = self.variables.get("SET CONTEXT", "")
                self.transfer = extension
                self._write(f"→ transfer to {extension} (context {context})")
        elif upper != "NOOP":
            self.note(f"AGI {name} {' '.join(str(a) for a in args)}".rstrip())
        return Reply(200, "200 result=0", "0")

    # --- the engine's decisions -------------------------------------------------------------------
    def observe(self, kind: str, node: str, data: dict[str, Any]) -> None:
        """Show one journal event of the call as the admin's trace."""
        if kind == "node":
            self.node = node
            self.visited.append(node)
            found = self.menu.nodes.get(node)
            self._write(f"── {node} ({found.kind if found else '?'})")
        elif kind == "language":
            self.call_language = data.get("language", self.call_language)
            self._write(f"→ language {self.call_language} (by {data.get('how', '?')})")
        elif kind == "choice":
            self._write(f"→ {data.get('target')} (chosen at {node} by {_how(data)})")
        elif kind == "global":
            self._write(f"→ {data.get('action')} (menu-wide, at {node} by {_how(data)})")
        elif kind == "speech" and data.get("text"):
            self.note(f"heard «{data.get('text', '')}» (confidence {data.get('confidence', 0):.2f})")
        elif kind == "invalid":
            shown = data.get("input", data.get("dtmf", ""))
            self.note(f"not a choice at {node}: {shown}")
        elif kind == "silence":
            self.note(f"silence at {node}")
        elif kind == "failure":
            self.note(f"{node}: no valid answer after its retries")
        elif kind == "closed":
            self._write(f"→ operators are not working now (queue {data.get('queue')})")
        elif kind == "queue_result":
            self.note(f"queue result: {data.get('status')}")
        elif kind == "callback":
            self._write(f"→ callback request #{data.get('id')} stored for queue {data.get('queue')}")
        elif kind == "incident":
            self._write(f"→ outage announcement #{data.get('id')}")
        elif kind == "error":
            self._write(f"!! engine error: {data.get('error')}")


def _how(data: dict[str, Any]) -> str:
    how = str(data.get("how", "?"))
    return "dtmf during the prompt" if how == "dtmf-barge-in" else how


# --- wiring ------------------------------------------------------------------------------------


@attrs.define
class SimulationServices(EngineServices):
    """The engine's services, with every journal event of the call also shown to the admin."""

    observer: Callable[[str, str, dict[str, Any]], None] | None = None

    def journal_event(
        self, call_id: str, kind: str, node: str = "", data: dict[str, Any] | None = None
    ) -> None:
        if self.observer is not None:
            self.observer(kind, node, data or {})
        super().journal_event(call_id, kind, node, data)


@attrs.frozen
class FixedHours:
    """Opening hours forced open or closed, so an admin can try both sides of a queue node."""

    open: bool

    def is_open(self, now: dt.datetime) -> bool:
        return self.open


@attrs.frozen
class SimulationResult:
    outcome: str | None  # queued, transferred, callback, self_served, abandoned, failed
    language: str
    topic: str | None
    visited: tuple[str, ...]
    queue: str | None
    transfer: str | None
    hangup_by: str | None  # caller, engine, operator; None when the call left for the dialplan


async def simulate(
    menu: Menu,
    read_line: LineSource,
    write: Writer,
    *,
    settings: Settings | None = None,
    hours: Any = None,
    language: str | None = None,
    speech: bool = True,
    callbacks: bool = True,
    queue_outcome: str = "answered",
    callerid: str = DEFAULT_CALLERID,
) -> SimulationResult:
    """Run one call through `menu` with the real interpreter, answered by `read_line`, shown by `write`.

    `hours`: an OpeningHours-like object (is_open(moment)); None: the menu's own hours at this moment.
    `callbacks`: offer callbacks as the engine does, stored in a scratch database that is thrown away.
    """
    settings = settings or Settings()
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"language {language!r}: expected one of {', '.join(LANGUAGES)}")
    if hours is None:
        from ivr.engine.app import hours_for

        hours = hours_for(menu)
    with tempfile.TemporaryDirectory(prefix="ivr-simulate-") as scratch:
        # Recordings are never written; the spool only has to be set for speech to be used.
        settings = attrs.evolve(
            settings,
            state_dir=scratch,
            database_url="",
            speech=attrs.evolve(settings.speech, spool=scratch),
        )
        languages = LANGUAGES if speech else ()
        channel = SimulatedChannel(
            menu,
            read_line,
            write,
            callerid=callerid,
            queue_outcome=queue_outcome,
            start_language=language,
            speech_languages=languages,
        )
        state = None
        if callbacks:
            from ivr.journal.state import open_state

            state = await open_state(settings, engine_id="simulate")
        services = SimulationServices(
            settings=settings,
            speech=TypedSpeech(channel.heard, languages, write),
            state=state,
            hours=hours,
            observer=channel.observe,
        )
        session = CallSession(channel, menu, services)  # type: ignore[arg-type]
        try:
            await session.run()
        except CallEnded:
            pass
        finally:
            if state is not None:
                await state.close()
    result = SimulationResult(
        outcome=session.outcome or ("self_served" if session.served else "abandoned"),
        language=session.language,
        topic=session.topic,
        visited=tuple(channel.visited),
        queue=channel.queue,
        transfer=channel.transfer,
        hangup_by=channel.hangup_by,
    )
    write(
        f"call ended: {result.outcome}; language {result.language}; topic {result.topic or '-'}"
        + (f"; hung up by {result.hangup_by}" if result.hangup_by else "")
    )
    write("path: " + " → ".join(result.visited))
    return result


# --- line sources ------------------------------------------------------------------------------


def scripted_lines(lines: Sequence[str], write: Writer) -> LineSource:
    """Answers from a list, echoed after their prompt as a terminal shows them; None once used up."""
    remaining = deque(lines)

    async def read_line(prompt: str) -> str | None:
        if not remaining:
            write(f"{prompt}(end of input)")
            return None
        line = remaining.popleft()
        write(f"{prompt}{line}")
        return line

    return read_line


def terminal_lines() -> LineSource:
    """Lines from stdin with the prompt shown (and readline editing when available).

    input() runs in a daemon thread of its own: a thread of the default executor blocked in input()
    would keep the program from exiting after the call ends or on Ctrl-C."""
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass

    echoed = sys.stdin.isatty()

    async def read_line(prompt: str) -> str | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()

        def deliver(value: str | None) -> None:
            if not future.done():
                future.set_result(value)

        def run() -> None:
            try:
                line: str | None = input(prompt)
                if not echoed:  # piped input: show the answer after its prompt, as a terminal does
                    print(line, flush=True)
            except EOFError:
                print("" if echoed else "(end of input)", flush=True)
                line = None
            except (OSError, ValueError):
                line = None
            loop.call_soon_threadsafe(deliver, line)

        threading.Thread(target=run, name="simulate-input", daemon=True).start()
        return await future

    return read_line


def print_line(text: str) -> None:
    print(text, flush=True)
