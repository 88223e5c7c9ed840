"""The channel API a call handler talks to: one awaitable method per AGI command, typed results.

A Channel does no I/O itself: it hands command bytes to `send` and is given each reply through
`feed_reply`/`feed_hangup`/`connection_lost` by the transport (ivr.agi.server), so the same class works
over a real socket and in tests.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import attrs

from ivr.agi.protocol import AgiEnvironment, Reply, format_app_args, format_command

# ANSWER, SET VARIABLE, ...: Asterisk answers in milliseconds (ANSWER up to ~0.5 s with no media).
CONTROL_TIMEOUT = 30.0
# A prompt or application can run for minutes; still, nothing may wait for ever.
MEDIA_TIMEOUT = 600.0
DIGITS = "0123456789*#"


class CallEnded(Exception):
    """The call can take no more commands. The handler should stop; nothing is wrong with the engine."""


class CallHangup(CallEnded):
    """The caller hung up (result=-1 on a media command, 511 on a dead channel, or a HANGUP line)."""


class ConnectionLost(CallEnded):
    """Asterisk closed the FastAGI connection."""


class AgiCommandError(Exception):
    """Asterisk refused a command: 510 (unknown) or 520 (bad syntax, with the usage text)."""

    def __init__(self, reply: Reply, command: str) -> None:
        self.reply = reply
        self.command = command
        detail = " ".join(reply.usage) if reply.usage else reply.line
        super().__init__(f"{command.strip()!r} refused: {detail}")


class CommandTimeout(CallEnded):
    """No reply within the command's timeout: the AGI stream is out of step and cannot be reused."""


# The two results of every prompt are NamedTuples, not attrs classes: built on every STREAM FILE and
# GET DATA, a frozen attrs instance costs twice the instructions (callgrind: 5,400 against 2,500).
class StreamResult(NamedTuple):
    digit: str | None  # the escape digit that stopped playback
    endpos: int  # sample offset reached
    failed: bool = False  # result=-1: file missing/unplayable, or the caller hung up (next command tells)


class DigitsResult(NamedTuple):
    digits: str
    timed_out: bool  # True when input ended by timeout rather than max digits or '#'


# Built straight from their fields in order, as protocol._reply is: the hot paths of stream_file and
# get_data, where the generated __new__ (Python code) is half the cost of building the result.
_stream_result = functools.partial(tuple.__new__, StreamResult)
_digits_result = functools.partial(tuple.__new__, DigitsResult)


@attrs.frozen
class RecordResult:
    ended_by: str  # "dtmf", "silence", "timeout"
    digit: str | None
    endpos: int  # samples written


def _digit(value: int | None) -> str | None:
    if value is None or value <= 0:
        return None
    char = chr(value)
    return char if char in DIGITS else None


class Channel:
    """One call as the engine sees it. All methods raise CallHangup once the caller has gone."""

    def __init__(
        self,
        env: AgiEnvironment,
        send: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop | None = None,
        control_timeout: float = CONTROL_TIMEOUT,
        supervised: bool = False,
        observer: Callable[[str, float], None] | None = None,
    ) -> None:
        self.env = env
        self._send = send
        self._loop = loop or asyncio.get_running_loop()
        self._control_timeout = control_timeout
        # supervised: a watchdog calls expire() (one sweep for all calls instead of a timer per command)
        self.supervised = supervised
        self.deadline = 0.0
        self._pending: asyncio.Future[Reply] | None = None
        self._pending_command = ""
        self.hung_up = False  # the channel is dead (caller hung up, or we hung up)
        self.closed = False  # the connection is gone or unusable
        self.commands_sent = 0
        self.language = env.language
        self.asterisk = ""  # the address of the Asterisk server this call came from, when known
        # Told (command, seconds) on every reply, for the turnaround histogram of /metrics; None costs nothing.
        self.observer = observer

    # --- transport side --------------------------------------------------------------------------
    def feed_reply(self, reply: Reply) -> None:
        if reply.code < 200:  # "100 result=0 Trying...": the real reply is still to come
            return
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_result(reply)

    def feed_hangup(self) -> None:
        self.hung_up = True

    def connection_lost(self) -> None:
        self.closed = True
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_exception(ConnectionLost("Asterisk closed the AGI connection"))

    @property
    def busy(self) -> bool:
        return self._pending is not None

    # --- the command primitive -------------------------------------------------------------------
    async def command(self, name: str, *args: object, timeout: float | None = None) -> Reply:
        """Send one command and wait for its reply; 511 raises CallHangup, 510/520 AgiCommandError."""
        if self.closed:
            raise ConnectionLost("the AGI connection is closed")
        if self._pending is not None:
            raise RuntimeError(f"AGI command {name!r} sent while {self._pending_command!r} is pending")
        line = format_command(name, *args)
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._pending = future
        self._pending_command = name
        observer = self.observer
        sent_at = self._loop.time() if observer is not None else 0.0
        self._send(line)
        self.commands_sent += 1
        seconds = self._control_timeout if timeout is None else timeout
        if self.supervised:
            self.deadline = self._loop.time() + seconds  # the server's watchdog enforces it
            timer = None
        else:
            timer = self._loop.call_later(seconds, self._time_out, future, name)
        try:
            reply = await future
        finally:
            if timer is not None:
                timer.cancel()
            if self._pending is future:
                self._pending = None
        if observer is not None:
            observer(name, self._loop.time() - sent_at)
        code = reply.code
        if code == 200:
            return reply
        if code == 511:
            self.hung_up = True
            raise CallHangup(f"{name}: channel is dead")
        raise AgiCommandError(reply, line.decode(errors="replace"))

    def expire(self, now: float) -> None:
        """Called by a watchdog: fail the pending command if its deadline has passed."""
        pending = self._pending
        if pending is not None and now >= self.deadline:
            self._time_out(pending, self._pending_command)

    def _time_out(self, future: asyncio.Future[Reply], name: str) -> None:
        if not future.done():
            self.closed = True  # a late reply would answer the wrong command: never reuse this stream
            future.set_exception(CommandTimeout(f"no reply to {name} from Asterisk"))

    def _check_hangup(self, reply: Reply, name: str) -> None:
        if reply.result == "-1" or reply.data == "hangup":
            self.hung_up = True
            raise CallHangup(f"{name}: caller hung up")

    # --- commands --------------------------------------------------------------------------------
    async def answer(self) -> None:
        reply = await self.command("ANSWER")
        self._check_hangup(reply, "ANSWER")

    async def stream_file(
        self, name: str, escape_digits: str = "", offset: int | None = None, timeout: float = MEDIA_TIMEOUT
    ) -> StreamResult:
        if offset is None:
            reply = await self.command("STREAM FILE", name, escape_digits, timeout=timeout)
        else:
            reply = await self.command("STREAM FILE", name, escape_digits, str(offset), timeout=timeout)
        endpos = reply.endpos or 0
        if reply.result == "0":  # played to its end: the usual reply, no number to read
            return _stream_result((None, endpos, False))
        if reply.value == -1:
            # Same reply for a missing file and a caller hang-up; a dead channel answers the probe
            # with 511 (-> CallHangup), a live one proves the file was the problem.
            await self.channel_status()
            return StreamResult(None, endpos, failed=True)
        return StreamResult(_digit(reply.value), endpos)

    async def get_data(
        self, prompt: str, timeout_ms: int, max_digits: int, timeout: float = MEDIA_TIMEOUT
    ) -> DigitsResult:
        """Play `prompt` and collect up to `max_digits`; '#' ends input early and is not returned."""
        reply = await self.command("GET DATA", prompt, str(timeout_ms), str(max_digits), timeout=timeout)
        self._check_hangup(reply, "GET DATA")
        return _digits_result((reply.result, reply.timed_out))

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        reply = await self.command(
            "WAIT FOR DIGIT", str(timeout_ms), timeout=timeout_ms / 1000 + CONTROL_TIMEOUT
        )
        self._check_hangup(reply, "WAIT FOR DIGIT")
        return _digit(reply.value)

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
        """RECORD FILE; ends on an escape digit, on `silence_seconds` of silence or at `timeout_ms`."""
        args: list[object] = [path, fmt, escape_digits, timeout_ms]
        if offset is not None or beep or silence_seconds:
            args.append(offset or 0)
        if beep:
            args.append("BEEP")
        if silence_seconds:
            args.append(f"s={silence_seconds}")
        reply = await self.command("RECORD FILE", *args, timeout=timeout_ms / 1000 + CONTROL_TIMEOUT)
        self._check_hangup(reply, "RECORD FILE")
        endpos = reply.endpos or 0
        if reply.data == "dtmf":
            return RecordResult("dtmf", _digit(reply.value), endpos)
        if reply.data == "timeout":
            # Real Asterisk: silence detection also says "(timeout)", with the milliseconds left > 0.
            return RecordResult("silence" if (reply.value or 0) > 0 else "timeout", None, endpos)
        if reply.data in ("writefile", "randomerror", "waitfor"):
            raise AgiCommandError(reply, f"RECORD FILE {path}")
        return RecordResult("timeout", None, endpos)

    async def set_variable(self, name: str, value: object) -> None:
        await self.command("SET VARIABLE", name, str(value))

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        reply = await self.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == "1" else None

    async def set_language(self, language: str) -> None:
        """CHANNEL(language): Asterisk then plays sounds/<language>/... for this call."""
        await self.set_variable("CHANNEL(language)", language)
        self.language = language

    async def exec(
        self, application: str, args: Sequence[object] = (), timeout: float = MEDIA_TIMEOUT
    ) -> int:
        """EXEC an application; each argument stays one argument whatever characters it holds.

        Returns the application's return code (Queue answered then agent hung up: -1; unknown app: -2).
        """
        if args:
            reply = await self.command("EXEC", application, format_app_args(args), timeout=timeout)
        else:
            reply = await self.command("EXEC", application, timeout=timeout)
        return reply.value if reply.value is not None else 0

    async def channel_status(self) -> int:
        reply = await self.command("CHANNEL STATUS")
        return reply.value if reply.value is not None else -1

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, str(level))

    async def noop(self) -> None:
        await self.command("NOOP")

    async def hangup(self) -> None:
        if self.hung_up:
            return
        await self.command("HANGUP")
        self.hung_up = True
