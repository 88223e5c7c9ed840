"""A fake Asterisk placing one call into a FastAGI engine, answering as a real Asterisk 22 does.

It connects, sends the environment block in Asterisk's order, then answers each command line the way
shared/asterisk/agi/*.txt shows, playing a scripted caller: press digits at a prompt, stay silent,
speak an audio file into RECORD FILE, hang up. Everything on the wire is kept in a transcript.

    caller = FakeCall(script=[Press("2"), Say("question.wav"), Silence(), HangUp()])
    await caller.run("127.0.0.1", port)
    assert caller.queue == "ru-general"
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
import uuid as uuid_module
import wave
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from ivr.agi.protocol import parse_command_line, split_app_args
from ivr.testing.fake_audiosocket import FakeAudioSocket

SAMPLE_RATE = 8000
DEFAULT_PROMPT_SAMPLES = 16000  # 2 s, the length of the recording rig's beep2s
HANGUP_NOTICE_DELAY = 0.04  # Asterisk sends the bare HANGUP line ~40 ms after the reply
DEAD_OK = {
    "EXEC",
    "GET VARIABLE",
    "GET FULL VARIABLE",
    "NOOP",
    "SET VARIABLE",
    "VERBOSE",
    "DATABASE GET",
    "DATABASE PUT",
    "DATABASE DEL",
    "DATABASE DELTREE",
    "ASYNCAGI BREAK",
    "SPEECH DESTROY",
    "SPEECH UNLOAD GRAMMAR",
}
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
# Usage texts exactly as Asterisk 22.10.1 sent them (agi/invalid-command.txt); others it lacks here.
USAGE = {
    "GET DATA": [
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
        "Returns the digits received from the channel at the other end.",
    ],
    "STREAM FILE": [
        "Send the given file, allowing playback to be interrupted by the given digits, if any. Returns "
        "<literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical "
        "value of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was "
        "disconnected. If musiconhold is playing before calling stream file it will be automatically "
        "stopped and will not be restarted after completion.",
        "It sets the following channel variables upon completion:",
        "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.",
        "    <value>SUCCESS</value>",
        "    <value>FAILED</value>",
    ],
}
# command words -> (min argc, max argc) as res_agi.c checks them (argc counts the command words)
ARITY = {
    "ANSWER": (1, 99),
    "CHANNEL STATUS": (2, 3),
    "DATABASE DEL": (4, 4),
    "DATABASE GET": (4, 4),
    "DATABASE PUT": (5, 5),
    "EXEC": (2, 99),
    "GET DATA": (3, 99),
    "GET FULL VARIABLE": (4, 5),
    "GET VARIABLE": (3, 3),
    "HANGUP": (1, 2),
    "NOOP": (1, 99),
    "RECORD FILE": (6, 99),
    "SET CALLERID": (3, 99),
    "SET CONTEXT": (3, 3),
    "SET EXTENSION": (3, 3),
    "SET PRIORITY": (3, 3),
    "SET MUSIC": (3, 99),
    "SET VARIABLE": (4, 4),
    "STREAM FILE": (4, 5),
    "VERBOSE": (2, 99),
    "WAIT FOR DIGIT": (4, 4),
    "SAY NUMBER": (4, 5),
    "SAY DIGITS": (4, 4),
}
COMMANDS = sorted(ARITY, key=lambda c: -len(c.split()))


# --- the scripted caller --------------------------------------------------------------------------
@attrs.frozen
class Press:
    """Press these DTMF digits at the next prompt that listens.

    `at`: over AudioSocket, seconds after the session starts (None: once the prompt has ended)."""

    digits: str = attrs.field(validator=lambda _self, _attribute, value: _check_keys(value))
    at: float | None = None


def _check_keys(value: object) -> None:
    # Press(2) would only fail deep inside the fake, at the prompt that reads it.
    if not isinstance(value, str) or not value or value.strip("0123456789*#ABCD"):
        raise ValueError(f'Press({value!r}): the keys are a string of 0-9, *, #, A-D, e.g. Press("2")')


@attrs.frozen
class Say:
    """Speak this audio file (any WAV) at the next prompt that listens; RECORD FILE receives it."""

    audio: str | Path
    # When the engine is only listening for digits, the words are lost (as with a real caller).
    at: float | None = None  # over AudioSocket: seconds in (mid-prompt too); None: after the prompt
    hangup_at: float | None = None  # over AudioSocket: hang up this many seconds in, even mid-word


@attrs.frozen
class Silence:
    """Do nothing at the next prompt that listens (digit timeouts, silence detection).

    `media=False` is a line that sends no audio frames at all: silence detection never fires then.
    """

    media: bool = True


@attrs.frozen
class HangUp:
    """Hang up at the next prompt that listens (over AudioSocket: `at` seconds in)."""

    at: float | None = None


Action = Press | Say | Silence | HangUp

LISTENING = {"GET DATA", "WAIT FOR DIGIT", "RECORD FILE"}
# What EXEC Queue can do in the fake: an agent answers, nobody answers in time, the caller hangs up
# while waiting, or app_queue refuses the join (queues.conf joinempty / maxlen) with this QUEUESTATUS.
# (A real Asterisk 22.10.1 refused every join for lack of available members as JOINEMPTY: join_queue()
# never assigns QUEUE_JOINUNAVAIL. JOINUNAVAIL is kept for other versions; a missing queue is UNKNOWN.)
JOIN_REFUSED = {"joinempty": "JOINEMPTY", "joinunavail": "JOINUNAVAIL", "full": "FULL", "noqueue": "UNKNOWN"}
QUEUE_OUTCOMES = ("answered", "timeout", "hangup", *JOIN_REFUSED, "leaveempty")
QUEUE_OUTCOME_HELP = (
    "what the operator queue does: an operator answers (default), nobody answers in time (timeout), the "
    "caller hangs up while waiting (hangup), the join is refused (joinempty, joinunavail, full), every "
    "operator leaves (leaveempty), or Asterisk has no such queue (noqueue)"
)


@attrs.frozen
class QueueEnding:
    """How app_queue ends a Queue() (apps/app_queue.c queue_exec, and a real Asterisk 22.10.1:
    tests/test_fake_caller_fidelity.py): the application's result, QUEUESTATUS (None: unset),
    ABANDONED, and whether the caller's channel is dead afterwards."""

    result: int
    status: str | None
    abandoned: bool
    dead: bool

    def set_variables(self, variables: dict[str, str]) -> None:
        """The channel variables afterwards; queue_exec clears ABANDONED when Queue starts."""
        variables.pop("ABANDONED", None)
        variables.pop("QUEUESTATUS", None)
        if self.status is not None:
            variables["QUEUESTATUS"] = self.status
        if self.abandoned:
            variables["ABANDONED"] = "TRUE"


def queue_ending(outcome: str) -> QueueEnding:
    if outcome in JOIN_REFUSED:
        # join_queue() failed: "Unable to join queue 'x'", set_queue_result(), return 0 at once.
        return QueueEnding(0, JOIN_REFUSED[outcome], abandoned=False, dead=False)
    if outcome in ("timeout", "leaveempty"):
        # agi/exec-queue-timeout: 200 result=0 and the status; 22.10.1 also set ABANDONED=TRUE then,
        # with the caller still on the line.
        return QueueEnding(0, outcome.upper(), abandoned=True, dead=False)
    if outcome == "hangup":
        # The caller gives up while waiting: record_abandoned() sets ABANDONED=TRUE, the reason stays
        # unknown (QUEUESTATUS unset), Queue returns -1 and the channel is dead.
        return QueueEnding(-1, None, abandoned=True, dead=True)
    # agi/exec-queue-answered: the agent answered and later hung up -> -1, nothing set, caller still on.
    return QueueEnding(-1, None, abandoned=False, dead=False)


@attrs.frozen
class Exchange:
    """One command the engine sent and the reply lines Asterisk (the fake) gave."""

    at: float
    command: str  # the command words, upper case, e.g. "STREAM FILE"
    args: tuple[str, ...]
    reply: str


def env_block(
    script: str,
    host: str = "127.0.0.1",
    port: int = 4573,
    *,
    uniqueid: str = "1795551777.3",
    callerid: str = "77011234567",
    calleridname: str = "IVR Tester",
    language: str = "en",
    extension: str = "1414",
    context: str = "ivr-1414",
    args: Sequence[str] = (),
    channel: str | None = None,
) -> bytes:
    """The environment block in exactly the order and form Asterisk 22 sends it."""
    channel = channel or f"PJSIP/trunk-{uniqueid.replace('.', '')[-8:]}"
    pairs = [
        ("network", "yes"),
        ("network_script", script),
        ("request", f"agi://{host}:{port}/{script}"),
        ("channel", channel),
        ("language", language),
        ("type", channel.split("/", 1)[0]),
        ("uniqueid", uniqueid),
        ("version", "22.10.1"),
        ("callerid", callerid or "unknown"),
        ("calleridname", calleridname or "unknown"),
        ("callingpres", "0"),
        ("callingani2", "0"),
        ("callington", "0"),
        ("callingtns", "0"),
        ("dnid", "unknown"),
        ("rdnis", "unknown"),
        ("context", context),
        ("extension", extension),
        ("priority", "2"),
        ("enhanced", "0.0"),
        ("accountcode", ""),
        ("threadid", "140177935902400"),
    ]
    pairs += [(f"arg_{i}", a) for i, a in enumerate(args, 1)]
    return "".join(f"agi_{k}: {v}\n" for k, v in pairs).encode() + b"\n"


def describe_action(action: Action) -> str:
    if isinstance(action, Press):
        return f"press {action.digits}"
    if isinstance(action, Say):
        return f"say {Path(action.audio).name}"
    if isinstance(action, HangUp):
        return "hang up"
    return "silence"


def write_wav(path: str | Path, frames: bytes) -> Path:
    """8 kHz mono 16-bit samples as a WAV file: what Asterisk records, what a test caller says."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(frames)
    return Path(path)


def wav_samples(path: str | Path) -> int:
    with wave.open(str(path), "rb") as w:
        return int(w.getnframes() * SAMPLE_RATE / w.getframerate())


_uniqueids = itertools.count(1)


def next_uniqueid() -> str:
    """A uniqueid of Asterisk's form (epoch.sequence), different for every call of every process, so
    fake calls never merge in a journal: the sequence starts from the process id."""
    return f"{int(time.time())}.{os.getpid() % 100_000 * 1000 + next(_uniqueids)}"


class FakeCall:
    """One scripted call from a fake Asterisk into an engine.

    `script`: caller actions consumed by commands that listen (GET DATA, WAIT FOR DIGIT, RECORD FILE,
    and STREAM FILE with escape digits, which only a Press interrupts). When the script runs out the
    caller stays silent. `hangup_at`: hang up as the N-th command (1-based) arrives.
    `prompt_samples`: length of a sound by name (None: missing file, like Asterisk's `endpos=0`).
    `queue_outcome`: what EXEC Queue does (QUEUE_OUTCOMES): "answered" (an agent took it), "timeout",
    "hangup" (the caller gave up waiting), "joinempty"/"joinunavail"/"full" (the join refused); or a
    mapping queue name -> outcome, "*" for the rest.
    `record_dir`: where RECORD FILE's path points on this machine (the spool shared with the engine);
    None writes to the path as given.
    `reply_delay`: seconds a reply takes (people listening to a prompt); 0 answers at once.
    `audiosocket`: EXEC AudioSocket connects to the engine and plays the next action over it
    (ivr.testing.fake_audiosocket); False is an Asterisk without the module (EXEC returns -2).
    `echo_db`, `line_noise`: what the line adds to the caller's audio over AudioSocket.
    """

    def __init__(
        self,
        script: Sequence[Action] = (),
        *,
        agi_script: str = "1414",
        callerid: str = "77011234567",
        calleridname: str = "IVR Tester",
        hangup_at: int | None = None,
        prompt_samples: Callable[[str], int | None] | None = None,
        queue_outcome: str | Mapping[str, str] = "answered",
        reply_delay: float | Callable[[], float] = 0.0,
        exit_on_hangup: bool = False,
        args: Sequence[str] = (),
        other_channels: dict[str, int] | None = None,
        source_address: str | None = None,
        audiosocket: bool = True,
        echo_db: float | None = None,
        line_noise: str | Path | None = None,
    ) -> None:
        self.script = list(script)
        self.source_address = source_address  # the fake Asterisk's own address (127.0.0.2 is a second one)
        self.step_numbers = list(range(1, len(self.script) + 1))  # each action's step number (transcript)
        self.steps_used: dict[int, list[str]] = {}  # exchange index -> the scripted steps it used
        self._last_step = 0
        self.audiosocket = audiosocket
        self.echo_db = echo_db
        self.line_noise = line_noise
        self.media: list[FakeAudioSocket] = []  # AudioSocket sessions, in order
        self.other_channels = dict(other_channels or {})
        self.agi_script = agi_script
        self.callerid = callerid
        self.calleridname = calleridname
        self.hangup_at = hangup_at
        self.prompt_samples = prompt_samples or (lambda name: DEFAULT_PROMPT_SAMPLES)
        for outcome in [queue_outcome] if isinstance(queue_outcome, str) else queue_outcome.values():
            if outcome not in QUEUE_OUTCOMES:
                raise ValueError(f"queue outcome {outcome!r}: expected one of {', '.join(QUEUE_OUTCOMES)}")
        self.queue_outcome = queue_outcome
        self.reply_delay = reply_delay
        self.exit_on_hangup = exit_on_hangup
        self.args = tuple(args)
        self.uniqueid = next_uniqueid()
        self.variables: dict[str, str] = {"CHANNEL(language)": "en"}
        self.exchanges: list[Exchange] = []
        self.transcript: list[tuple[float, str, bytes]] = []  # (seconds, "IN"|"OUT"|"META", bytes)
        self.answered = False
        self.connected = False  # the TCP connection to the engine was made
        self.hangup_by: str | None = None  # "engine" (HANGUP) or "caller" (scripted or in the queue)
        self.dead = False
        self.closed_by_engine = False
        self.turnarounds: list[float] = []  # seconds from our reply to the engine's next command
        self._started = 0.0
        self._writer: asyncio.StreamWriter | None = None
        self._last_reply_at: float | None = None

    # --- what the engine did, for assertions --------------------------------------------------
    @property
    def notes(self) -> list[str]:
        """Scripted steps that no command used, or that were lost (words said where the engine listened
        for keys only), each with the likely reason: what `ivr testcall` prints as `note:`."""
        from ivr.testing.transcript import unused_steps  # it reads FakeCall: imported here, not above

        return unused_steps(self)

    @property
    def commands(self) -> list[str]:
        return [e.command for e in self.exchanges]

    @property
    def prompts(self) -> list[str]:
        """Sound names the engine played, in order (STREAM FILE, GET DATA, EXEC Playback)."""
        played = []
        for e in self.exchanges:
            if e.command in ("STREAM FILE", "GET DATA") and e.args:
                played.append(e.args[0])
            elif e.command == "EXEC" and e.args and e.args[0].lower() == "playback" and len(e.args) > 1:
                played.extend(split_app_args(e.args[1])[0].split("&"))
        return played

    @property
    def applications(self) -> list[tuple[str, list[str]]]:
        return [
            (e.args[0], split_app_args(e.args[1]) if len(e.args) > 1 else [])
            for e in self.exchanges
            if e.command == "EXEC" and e.args
        ]

    @property
    def queued(self) -> list[str]:
        """Every queue the engine put the caller in, in order."""
        return [args[0] for app, args in self.applications if app.lower() == "queue" and args]

    @property
    def queue(self) -> str | None:
        """The last queue the engine put the caller in (after a refused one, the next), if any."""
        return self.queued[-1] if self.queued else None

    @property
    def queue_result(self) -> str | None:
        """What the last queue did: answered, timeout, refused (JOINEMPTY...), caller hung up."""
        if not self.queued:
            return None
        outcome = self.outcome_for(self.queued[-1])
        if outcome in JOIN_REFUSED:
            return f"join refused ({JOIN_REFUSED[outcome]})"
        return {"hangup": "the caller hung up while waiting"}.get(outcome, outcome)

    def ending(self) -> str:
        """How the call ended, in words, for `ivr testcall` and failing tests."""
        parts = [f"call {self.uniqueid}", f"language {self.language}"]
        if self.queue:
            parts.append(f"queue {self.queue} ({self.queue_result})")
        if self.hangup_by == "engine":
            parts.append("the engine hung up")
        elif self.hangup_by == "caller":
            parts.append("the caller hung up")
        elif self.closed_by_engine:
            where = self.variables.get("CONTEXT")
            routed = self.variables.get("IVR_ROUTED")
            if where:
                parts.append(
                    f"returned to the dialplan at {where},{self.variables.get('EXTEN', '')},"
                    f"{self.variables.get('PRIORITY', '1')}"
                )
            elif not routed:
                parts.append("returned to the dialplan unrouted (its fallback queue takes the caller)")
            else:
                parts.append("returned to the dialplan")
        else:
            parts.append("still running")
        return "; ".join(parts)

    @property
    def language(self) -> str:
        return self.variables.get("CHANNEL(language)", "en")

    @property
    def wire_in(self) -> bytes:
        return b"".join(d for _, k, d in self.transcript if k == "IN")

    @property
    def wire_out(self) -> bytes:
        return b"".join(d for _, k, d in self.transcript if k == "OUT")

    def summary(self) -> str:
        """What the engine said and did, one line per command (for `ivr testcall`)."""
        lines = [f"{e.at:7.3f}  {e.command} {' '.join(e.args)}  ->  {e.reply}" for e in self.exchanges]
        if self.closed_by_engine:
            lines.append("engine closed the AGI connection")
        return "\n".join(lines)

    # --- running --------------------------------------------------------------------------------
    async def run(self, host: str, port: int, timeout: float = 120.0) -> FakeCall:
        await asyncio.wait_for(self._run(host, port), timeout)
        return self

    async def _run(self, host: str, port: int) -> None:
        local = (self.source_address, 0) if self.source_address else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        self.connected = True
        self._writer = writer
        self._started = time.monotonic()
        self._meta(f"connected to {host}:{port}")
        try:
            self._write(
                env_block(
                    self.agi_script,
                    host,
                    port,
                    uniqueid=self.uniqueid,
                    callerid=self.callerid,
                    calleridname=self.calleridname,
                    args=self.args,
                )
            )
            await writer.drain()
            while True:
                try:
                    line = await reader.readline()
                except (ConnectionResetError, BrokenPipeError):
                    line = b""  # the engine went away mid-exchange: as Asterisk sees it, an EOF

                if not line:
                    self.closed_by_engine = True
                    self._meta("EOF from engine")
                    if self.dead:
                        self._write(b"HANGUP\n")  # what Asterisk sends when the script leaves a dead channel
                    break
                now = time.monotonic()
                self.transcript.append((now - self._started, "OUT", line))
                if self._last_reply_at is not None:
                    self.turnarounds.append(now - self._last_reply_at)
                if not line.endswith(b"\n"):
                    self._meta("engine closed in the middle of a line")
                    self.closed_by_engine = True
                    break
                try:
                    if await self._answer(line[:-1].decode("utf-8", "replace")):
                        break
                except (ConnectionResetError, BrokenPipeError):
                    self.closed_by_engine = True
                    self._meta("engine closed while Asterisk was answering")
                    break
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        self.transcript.append((time.monotonic() - self._started, "IN", data))
        self._writer.write(data)

    def _meta(self, note: str) -> None:
        self.transcript.append((time.monotonic() - self._started, "META", note.encode()))

    async def _delay(self) -> None:
        delay = self.reply_delay() if callable(self.reply_delay) else self.reply_delay
        if delay > 0:
            await asyncio.sleep(delay)

    def _next_action(self) -> Action:
        if not self.script:
            return Silence()
        action = self.script.pop(0)
        self._last_step = self.step_numbers.pop(0)
        self._mark(self._last_step, describe_action(action))
        return action

    def _put_back(self, action: Action) -> None:
        """Keys typed beyond what GET DATA took stay for the next prompt, as the same step."""
        self.script.insert(0, action)
        self.step_numbers.insert(0, self._last_step)

    def _mark(self, number: int, what: str) -> None:
        """Note that scripted step `number` answered the command being answered now."""
        self.steps_used.setdefault(len(self.exchanges), []).append(f"step {number}: {what}")

    async def _answer(self, line: str) -> bool:
        """Reply to one command line; True when the fake must close (exit-on-hangup)."""
        words = parse_command_line(line)
        upper = [w.upper() for w in words]
        command = next((c for c in COMMANDS if upper[: len(c.split())] == c.split()), None)
        if command is None:
            reply = ["510 Invalid or unknown command"]
            self._record(line.split(" ")[0].upper(), words, reply)
            await self._send(reply)
            return False
        args = words[len(command.split()) :]
        low, high = ARITY[command]
        if not low <= len(words) <= high:
            usage = USAGE.get(command)
            if usage:
                reply = [
                    "520-Invalid command syntax.  Proper usage follows:",
                    *usage,
                    "520 End of proper usage.",
                ]
            else:
                reply = ["520 Invalid command syntax.  Proper usage not available."]
            self._record(command, args, reply)
            await self._send(reply)
            return False
        if self.hangup_at is not None and len(self.exchanges) + 1 >= self.hangup_at and not self.dead:
            self._meta(f"caller hangs up at command {len(self.exchanges) + 1}")
            return await self._hangup_during(command, args)
        if self.dead and command not in DEAD_OK:
            self._record(command, args, [DEAD_CHANNEL])
            await self._send([DEAD_CHANNEL])
            return False
        if command == "EXEC" and args and args[0].lower() == "audiosocket" and self.audiosocket:
            return await self._exec_audiosocket(args)
        if command in LISTENING or (command == "STREAM FILE" and args[1:2] and args[1]):
            await self._delay()
            if self.script and isinstance(self.script[0], HangUp):
                self._next_action()
                return await self._hangup_during(command, args)
        handler = getattr(self, "_cmd_" + command.lower().replace(" ", "_"))
        reply, after = handler(args)
        self._record(command, args, reply)
        await self._send(reply)
        if after == "hangup":
            return await self._became_dead()
        return False

    def _record(self, command: str, args: Sequence[str], reply: Sequence[str]) -> None:
        self.exchanges.append(
            Exchange(time.monotonic() - self._started, command, tuple(args), "\n".join(reply))
        )

    async def _send(self, lines: Sequence[str]) -> None:
        assert self._writer is not None
        self._write(("\n".join(lines) + "\n").encode())
        self._last_reply_at = time.monotonic()
        await self._writer.drain()

    async def _hangup_during(self, command: str, args: Sequence[str]) -> bool:
        """The caller hangs up while `command` runs: its reply as Asterisk gives it, then HANGUP."""
        if command == "STREAM FILE":
            reply = "200 result=-1 endpos=4160"
        elif command == "RECORD FILE":
            reply = "200 result=-1 (hangup) endpos=0"
        elif command in ("GET DATA", "WAIT FOR DIGIT", "ANSWER"):
            reply = "200 result=-1"
        elif command == "EXEC":
            reply = "200 result=-1"
            if args and args[0].lower() == "queue":
                self.variables["ABANDONED"] = "TRUE"  # app_queue's record_abandoned()
        elif command in DEAD_OK:
            self.dead = True
            self.hangup_by = self.hangup_by or "caller"
            return await self._answer_dead_ok(command, args)
        else:
            reply = DEAD_CHANNEL
        self.dead = True
        self.hangup_by = self.hangup_by or "caller"
        self._record(command, args, [reply])
        await self._send([reply])
        return await self._became_dead()

    async def _answer_dead_ok(self, command: str, args: Sequence[str]) -> bool:
        handler = getattr(self, "_cmd_" + command.lower().replace(" ", "_"))
        reply, _ = handler(args)
        self._record(command, args, reply)
        await self._send(reply)
        return await self._became_dead()

    async def _became_dead(self) -> bool:
        self.dead = True
        if self.exit_on_hangup:
            self._write(b"HANGUP\nHANGUP\n")
            return True
        await asyncio.sleep(HANGUP_NOTICE_DELAY)
        self._write(b"HANGUP\n")
        return False

    async def _exec_audiosocket(self, args: Sequence[str]) -> bool:
        """EXEC AudioSocket <uuid>,<host:port>: the AGI session is silent until the session ends."""
        data = args[1] if len(args) > 1 else ""
        call_uuid, _, service = data.partition(",")
        try:
            uuid_module.UUID(call_uuid)
            host, port_text = service.rsplit(":", 1)
            port = int(port_text)
        except ValueError:
            # "Failed to parse UUID" / "No AudioSocket server provided": no connection at all.
            self._record("EXEC", args, ["200 result=-1"])
            await self._send(["200 result=-1"])
            return False
        action = self._next_action()
        if isinstance(action, Press) and len(action.digits) > 1:
            self._put_back(Press(action.digits[1:]))  # the rest is typed after AudioSocket
        session = FakeAudioSocket(call_uuid, action, echo_db=self.echo_db, line_noise=self.line_noise)
        self.media.append(session)
        code = await session.run(host, port)
        reply = [f"200 result={code}"]
        self._record("EXEC", args, reply)
        await self._send(reply)
        if code == -1:  # the caller hung up, or an AudioSocket error hung the channel up
            return await self._became_dead()
        return False

    # --- command handlers: (reply lines, "hangup" when the channel dies after the reply) ---------
    def _cmd_answer(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.answered = True
        return ["200 result=0"], None

    def _cmd_noop(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        return ["200 result=0"], None

    def _cmd_verbose(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        return ["200 result=1"], None

    def _cmd_set_variable(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables[args[0]] = args[1]
        return ["200 result=1"], None

    def _cmd_get_variable(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        value = self.variables.get(args[0])
        return ([f"200 result=1 ({value})"] if value is not None else ["200 result=0"]), None

    def _cmd_get_full_variable(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        expression = args[0]
        builtins = {
            "CALLERID(num)": self.callerid,
            "CALLERID(name)": self.calleridname,
            "CALLERID(all)": f'"{self.calleridname}" <{self.callerid}>',
            "UNIQUEID": self.uniqueid,
        }
        if expression.startswith("${") and expression.endswith("}"):
            name = expression[2:-1]
            value = self.variables.get(name, builtins.get(name))
            return ([f"200 result=1 ({value})"] if value is not None else ["200 result=0"]), None
        return [f"200 result=1 ({expression})"], None

    def _cmd_set_callerid(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        # Only the first argument counts (Asterisk ignores the rest): 'Name <num>', 'num' or 'Name'.
        text = args[0].strip()
        if "<" in text and text.endswith(">"):
            name, _, number = text[:-1].partition("<")
            self.calleridname, self.callerid = name.strip().strip('"'), number.strip()
        elif text.replace("+", "").isdigit():
            self.calleridname, self.callerid = "", text
        else:
            self.calleridname, self.callerid = text.strip('"'), ""
        return ["200 result=1"], None

    def _cmd_set_context(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables["CONTEXT"] = args[0]  # where the dialplan continues when the AGI ends
        return ["200 result=0"], None

    def _cmd_set_extension(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables["EXTEN"] = args[0]
        return ["200 result=0"], None

    def _cmd_set_priority(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables["PRIORITY"] = args[0]
        return ["200 result=0"], None

    def _cmd_set_music(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        return ["200 result=0"], None

    def _cmd_channel_status(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        if args:
            state = self.other_channels.get(args[0])
            return [f"200 result={state if state is not None else -1}"], None
        return [f"200 result={6 if self.answered else 4}"], None

    def _cmd_database_get(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        value = self.variables.get(f"DB/{args[0]}/{args[1]}")
        return ([f"200 result=1 ({value})"] if value is not None else ["200 result=0"]), None

    def _cmd_database_put(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables[f"DB/{args[0]}/{args[1]}"] = args[2]
        return ["200 result=1"], None

    def _cmd_database_del(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        self.variables.pop(f"DB/{args[0]}/{args[1]}", None)
        return ["200 result=1"], None

    def _cmd_say_number(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        return ["200 result=0"], None

    def _cmd_say_digits(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        return ["200 result=0"], None

    def _cmd_hangup(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        if args:
            return ["200 result=-1"], None  # another channel by name: none exists in the fake
        self.hangup_by = self.hangup_by or "engine"
        return ["200 result=1"], "hangup"

    def _cmd_stream_file(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        name, escape = args[0], args[1]
        offset = int(args[2]) if len(args) > 2 and args[2].lstrip("-").isdigit() else 0
        samples = self.prompt_samples(name)
        if samples is None:
            self.variables["PLAYBACKSTATUS"] = "FAILED"
            return [f"200 result=-1 endpos={offset}"], None
        self.variables["PLAYBACKSTATUS"] = "SUCCESS"
        head = self.script[0] if self.script else None
        if isinstance(head, Press) and head.digits and head.digits[0] in escape:
            digit = head.digits[0]
            self._consume_digit()
            return [f"200 result={ord(digit)} endpos={min(samples, offset + 5120)}"], None
        return [f"200 result=0 endpos={max(samples, offset)}"], None

    def _consume_digit(self) -> str:
        head = self.script[0]
        assert isinstance(head, Press)
        number = self.step_numbers[0]
        if len(head.digits) > 1:
            self.script[0] = Press(head.digits[1:])
        else:
            self.script.pop(0)
            self.step_numbers.pop(0)
        self._mark(number, f"press {head.digits[0]}")
        return head.digits[0]

    def _cmd_get_data(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        max_digits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        action = self._next_action()
        if not isinstance(action, Press):
            return ["200 result= (timeout)"], None
        digits = action.digits
        if "#" in digits[: max_digits + 1]:
            # '#' ends input and is not returned; what follows it stays for the next prompt
            typed, _, rest = digits.partition("#")
            if rest:
                self._put_back(Press(rest))
            return [f"200 result={typed[:max_digits]}"], None
        if len(digits) >= max_digits:
            if digits[max_digits:]:
                self._put_back(Press(digits[max_digits:]))
            return [f"200 result={digits[:max_digits]}"], None
        return [f"200 result={digits} (timeout)"], None  # fewer digits than asked: inter-digit timeout

    def _cmd_wait_for_digit(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        head = self.script[0] if self.script else None
        if isinstance(head, Press) and head.digits:
            return [f"200 result={ord(self._consume_digit())}"], None
        self._next_action()
        return ["200 result=0"], None

    def _cmd_record_file(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        path, fmt, escape, timeout_text = args[0], args[1], args[2], args[3]
        timeout_ms = int(timeout_text) if timeout_text.lstrip("-").isdigit() else -1
        silence = next((int(a[2:]) for a in args[4:] if a.startswith("s=") and a[2:].isdigit()), 0)
        target = Path(f"{path}.{fmt}")
        action = self._next_action()
        if isinstance(action, Press) and action.digits[0] in escape:
            self._write_wav(target, None, 4480)
            return [f"200 result={ord(action.digits[0])} (dtmf) endpos=4480"], None
        if isinstance(action, Say):
            speech = wav_samples(action.audio)
            speech_ms = speech * 1000 // SAMPLE_RATE
            if silence and timeout_ms > speech_ms + silence * 1000:
                # silence detection: the file keeps the speech plus 1 s; result = milliseconds left
                endpos = speech + SAMPLE_RATE
                self._write_wav(target, action.audio, endpos)
                return [
                    f"200 result={timeout_ms - speech_ms - silence * 1000 - 11} (timeout) endpos={endpos}"
                ], None
            endpos = timeout_ms * SAMPLE_RATE // 1000 if timeout_ms > 0 else speech
            self._write_wav(target, action.audio, endpos)
            return [f"200 result=0 (timeout) endpos={endpos}"], None
        # silence (real silent frames): detection fires after s seconds, trimmed to ~1 s of audio
        if isinstance(action, Silence) and not action.media:
            self._write_wav(target, None, 0)  # no frames at all: a header-only WAV
            return ["200 result=0 (timeout) endpos=0"], None
        if silence and timeout_ms > silence * 1000:
            self._write_wav(target, None, 8160)
            return [f"200 result={timeout_ms - silence * 1000 - 11} (timeout) endpos=8160"], None
        endpos = max(timeout_ms, 0) * SAMPLE_RATE // 1000
        self._write_wav(target, None, endpos)
        return [f"200 result=0 (timeout) endpos={endpos}"], None

    def _queue(self, data: Sequence[str]) -> tuple[list[str], str | None]:
        """EXEC Queue as app_queue.c (22.10.1) ends it, by `queue_outcome` for this queue."""
        outcome = self.outcome_for(data[0] if data else "")
        if outcome == "answered" and "c" in (data[1] if len(data) > 1 else ""):
            self.variables["QUEUESTATUS"] = "CONTINUE"  # agi/exec-queue-answered-c
            self.variables.pop("ABANDONED", None)
            return ["200 result=0"], None
        ending = queue_ending(outcome)
        ending.set_variables(self.variables)
        if ending.dead:
            self.hangup_by = "caller"
            return [f"200 result={ending.result}"], "hangup"
        return [f"200 result={ending.result}"], None

    def outcome_for(self, queue: str) -> str:
        if isinstance(self.queue_outcome, str):
            return self.queue_outcome
        return self.queue_outcome.get(queue, self.queue_outcome.get("*", "answered"))

    def _write_wav(self, target: Path, source: str | Path | None, samples: int) -> None:
        """Write what Asterisk would have recorded: 8 kHz mono 16-bit WAV."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            with wave.open(str(source), "rb") as w:
                if w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2:
                    frames = w.readframes(w.getnframes())
                else:
                    frames = b""
            if not frames:
                shutil.copyfile(source, target)  # a foreign format: hand it over as is
                return
            frames = frames[: samples * 2] + b"\0\0" * max(0, samples - len(frames) // 2)
        else:
            frames = b"\0\0" * samples
        write_wav(target, frames)

    def _cmd_exec(self, args: Sequence[str]) -> tuple[list[str], str | None]:
        app = args[0].lower()
        data = split_app_args(args[1]) if len(args) > 1 else []
        if self.dead and app in ("queue", "playback"):
            # EXEC is allowed on a dead channel, but media apps end at once: app_queue's wait for its
            # turn fails (ast_waitfor -1) and records the caller as abandoned; Playback's wait fails.
            if app == "queue":
                queue_ending("hangup").set_variables(self.variables)
            return ["200 result=-1"], None
        if app == "queue":
            return self._queue(data)
        if app == "playback":
            missing = [n for n in (data[0].split("&") if data else []) if self.prompt_samples(n) is None]
            self.variables["PLAYBACKSTATUS"] = "FAILED" if missing else "SUCCESS"
            return ["200 result=0"], None
        if app in ("wait", "verbose", "noop", "set", "ringing", "progress", "musiconhold", "senddtmf"):
            return ["200 result=0"], None
        if app in ("dial", "transfer"):
            self.variables["DIALSTATUS" if app == "dial" else "TRANSFERSTATUS"] = (
                "ANSWER" if app == "dial" else "SUCCESS"
            )
            return ["200 result=-1" if app == "dial" else "200 result=0"], "hangup" if app == "dial" else None
        if app == "record":
            self.variables["RECORD_STATUS"] = "SILENCE"
            return ["200 result=0"], None
        return ["200 result=-2"], None  # unknown application
