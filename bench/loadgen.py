"""A lean fake Asterisk for load: many FastAGI calls from one process, answering as Asterisk 22 does.

ivr.testing.fake_caller.FakeCall is the faithful one (transcripts, every command, RECORD FILE audio);
it costs too much CPU per command to load a server with thousands of calls from a 2-core machine.
This one is a non-blocking socket per call, read by a loop callback, that answers the commands an IVR
flow sends with the same bytes FakeCall (and so a real Asterisk 22.10.1) sends:

    ANSWER          200 result=0                SET VARIABLE    200 result=1
    STREAM FILE     200 result=0 endpos=16000   (a scripted key in its escape digits: result=<ascii>)
    GET DATA        200 result=<digits>  /  200 result=<digits> (timeout)  /  200 result= (timeout)
    WAIT FOR DIGIT  200 result=<ascii> / 200 result=0      GET VARIABLE  200 result=0 (unset)
    EXEC Queue      200 result=-1 (answered, then the agent hung up)       other EXEC  200 result=0
    HANGUP          200 result=1, then the bare HANGUP line; the channel is dead (511) from then on

A call's caller is a list of answers, one per command that listens (GET DATA, WAIT FOR DIGIT, and
STREAM FILE with escape digits, which only a key among them interrupts), as FakeCall's script:
"2" presses 2, "" stays silent. The call ends when the server closes the connection.

Turnaround = seconds from the moment a reply has been handed to the kernel to the moment the kernel
received the server's next command line (SO_TIMESTAMPNS): the server's own delay, whatever this
generator's loop was doing then. With thousands of calls this generator's loop is busy too, and the
turnaround as it read the line (`read_turnarounds`) adds its own wait; both are kept so a bench can
print the difference. Both ends are CLOCK_REALTIME (the kernel's stamps are), so a clock step during a
run would show as one wrong figure; NTP's slewing changes a 20 ms interval by 10 µs at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence

import attrs

from ivr.agi.protocol import parse_command_line
from ivr.testing.fake_caller import DEAD_CHANNEL, DEAD_OK, env_block

_perf = time.perf_counter
SLOW = 0.005  # seconds: slow turnarounds are kept for a look at the host's steal; stalls are gaps this long
_now_ns = time.time_ns  # the clock of the kernel's receive timestamps (CLOCK_REALTIME)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python names it only on some builds
_ANCILLARY_SIZE = socket.CMSG_SPACE(16)  # one struct timespec
_TIMESPEC = struct.Struct("@qq")
_DEAD = (DEAD_CHANNEL + "\n").encode()
_DEAD_OK = frozenset(c.encode() for c in DEAD_OK)
_UNKNOWN = b"510 Invalid or unknown command\n"
_PROMPT_ENDPOS = b"200 result=0 endpos=16000\n"
_HANGUP_REPLY = b"200 result=1\nHANGUP\n"
_UID = "9999999999"


def _env_template(script: str, host: str, port: int) -> tuple[bytes, bytes]:
    """The environment block Asterisk sends, split where the call's unique id goes (the channel name
    keeps one fixed suffix for every call: nothing on the server side reads it)."""
    block = env_block(script, host, port, uniqueid=f"1795551777.{_UID}", channel="PJSIP/trunk-00000001")
    head, _, tail = block.partition(_UID.encode())
    return head, tail


@attrs.define
class LoadStats:
    """What one load run saw, from the callers' side."""

    calls_started: int = 0
    calls_done: int = 0
    calls_failed: int = 0  # could not connect, or the server closed before the flow's last command
    commands: int = 0
    active: int = 0
    peak_active: int = 0
    turnarounds: list[float] = attrs.field(factory=list)  # reply sent -> next command in the kernel
    read_turnarounds: list[float] = attrs.field(factory=list)  # reply sent -> next command read here
    # A paced run's hold period and when each command in it reached this side's kernel (ns,
    # CLOCK_REALTIME): what `output_gaps` reads. Only what falls in the hold is kept.
    hold_ns: tuple[int, int] = (0, 0)
    arrivals: list[int] = attrs.field(factory=list)
    # The hold's turnarounds over SLOW seconds, as (received ns, seconds): looked up against the host's
    # steal (hoststeal.py).
    slow: list[tuple[int, float]] = attrs.field(factory=list)
    measure_turnarounds: bool = True


class _Call:
    """One call's socket, read with recvmsg() so that each command carries the moment the kernel
    received it: what the server spent is measured to that moment, not to the moment this generator's
    own busy loop got round to reading it."""

    __slots__ = (
        "_answers",
        "_buffer",
        "_dead",
        "_delay",
        "_done",
        "_expect",
        "_loop",
        "_replied_at",
        "_sock",
        "_stats",
        "commands",
    )

    def __init__(
        self,
        sock: socket.socket,
        answers: Sequence[str],
        stats: LoadStats,
        done: asyncio.Future[None],
        delay: Callable[[], float] | None,
        expect_commands: int,
    ) -> None:
        self._sock = sock
        self._answers = list(answers)
        self._answers.reverse()  # pop() from the end
        self._stats = stats
        self._done = done
        self._delay = delay
        self._expect = expect_commands
        self._buffer = b""
        self._dead = False
        self._replied_at = 0  # time.time_ns() just after the last reply was handed to the kernel
        self._loop = done.get_loop()
        self.commands = 0

    def start(self, env: bytes) -> None:
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._loop.add_reader(self._sock.fileno(), self._readable)
        self._write(env)

    def _readable(self) -> None:
        try:
            data, ancillary, _flags, _addr = self._sock.recvmsg(65536, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self._close()
            return
        read_at = _now_ns()
        arrived_at = _kernel_timestamp(ancillary, read_at)
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                self._buffer = buffer
                return
            line = buffer[:end]
            buffer = buffer[end + 1 :]
            stats = self._stats
            if self._replied_at and stats.measure_turnarounds:
                turnaround = (arrived_at - self._replied_at) / 1e9
                stats.turnarounds.append(turnaround)
                stats.read_turnarounds.append((read_at - self._replied_at) / 1e9)
                hold = stats.hold_ns
                if hold[0] <= arrived_at <= hold[1]:
                    stats.arrivals.append(arrived_at)
                    if turnaround > SLOW:
                        stats.slow.append((arrived_at, turnaround))
            self._replied_at = 0
            self.commands += 1
            reply = self._answer(line)
            if self._delay is None:
                self._write(reply)
            else:
                self._loop.call_later(self._delay(), self._send, reply)

    def _send(self, reply: bytes) -> None:
        if self._sock.fileno() >= 0:
            self._write(reply)

    def _write(self, data: bytes) -> None:
        try:
            sent = self._sock.send(data)
        except OSError:  # the server closed first; the reader sees the end
            return
        if sent < len(data):  # a few hundred bytes into an empty socket buffer
            raise RuntimeError(f"the server is not reading: {sent} of {len(data)} bytes sent")
        self._replied_at = _now_ns()

    def _close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        stats = self._stats
        stats.active -= 1
        stats.commands += self.commands
        if self.commands < self._expect:
            stats.calls_failed += 1
        else:
            stats.calls_done += 1
        if not self._done.done():
            self._done.set_result(None)

    # --- answering as Asterisk ---------------------------------------------------------------
    def _next_answer(self) -> str:
        return self._answers.pop() if self._answers else ""

    def _answer(self, line: bytes) -> bytes:
        words = line.split(b" ", 3)
        first = words[0]
        command = (
            first if first in (b"ANSWER", b"EXEC", b"HANGUP", b"NOOP", b"VERBOSE") else b" ".join(words[:2])
        )
        if self._dead and command not in _DEAD_OK:
            return _DEAD
        if first == b"ANSWER":
            return b"200 result=0\n"
        if command == b"SET VARIABLE":
            return b"200 result=1\n"
        if command == b"STREAM FILE":
            args = self._args(line, 2)
            escape = args[1] if len(args) > 1 else ""
            head = self._answers[-1] if self._answers else ""
            if escape and head and head[0] in escape:
                self._press_one()
                return b"200 result=%d endpos=5120\n" % ord(head[0])
            return _PROMPT_ENDPOS
        if command == b"GET DATA":
            args = self._args(line, 2)
            max_digits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
            digits = self._next_answer()
            if not digits:
                return b"200 result= (timeout)\n"
            if len(digits) >= max_digits:
                return b"200 result=%s\n" % digits[:max_digits].encode()
            return b"200 result=%s (timeout)\n" % digits.encode()
        if command == b"WAIT FOR":
            head = self._answers[-1] if self._answers else ""
            if head:
                self._press_one()
                return b"200 result=%d\n" % ord(head[0])
            self._next_answer()
            return b"200 result=0\n"
        if first == b"EXEC":
            if len(words) > 1 and words[1].lower() == b"queue":
                return b"200 result=-1\n"
            return b"200 result=0\n"
        if command == b"GET VARIABLE":
            return b"200 result=0\n"
        if first == b"HANGUP":
            self._dead = True
            return _HANGUP_REPLY
        if command == b"CHANNEL STATUS":
            return b"200 result=6\n"
        if first in (b"VERBOSE",):
            return b"200 result=1\n"
        if first == b"NOOP":
            return b"200 result=0\n"
        return _UNKNOWN

    def _press_one(self) -> None:
        head = self._answers[-1]
        if len(head) > 1:
            self._answers[-1] = head[1:]
        else:
            self._answers.pop()

    @staticmethod
    def _args(line: bytes, command_words: int) -> list[str]:
        text = line.decode("utf-8", "replace")
        if '"' in text or "\\" in text:
            return parse_command_line(text)[command_words:]
        return text.split(" ")[command_words:]


class FakeAsterisk:
    """Places calls into one FastAGI server: `await place(answers)` runs one call to its end."""

    def __init__(
        self,
        host: str,
        port: int,
        script: str = "1414",
        *,
        expect_commands: int = 1,
        delay: Callable[[], float] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.stats = LoadStats()
        self.delay = delay
        self.expect_commands = expect_commands
        self._head, self._tail = _env_template(script, host, port)
        self._next_id = 0

    async def place(self, answers: Sequence[str]) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        self._next_id += 1
        env = self._head + str(self._next_id).encode() + self._tail
        done: asyncio.Future[None] = loop.create_future()
        stats.calls_started += 1
        stats.active += 1
        if stats.active > stats.peak_active:
            stats.peak_active = stats.active
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (self.host, self.port))
        except OSError:
            sock.close()
            stats.active -= 1
            stats.calls_failed += 1
            return
        _Call(sock, answers, stats, done, self.delay, self.expect_commands).start(env)
        await done


async def saturate(asterisk: FakeAsterisk, answers: Sequence[str], calls: int, concurrency: int) -> float:
    """`calls` calls, `concurrency` at a time, replies at once. Returns the wall time in seconds."""
    remaining = calls

    async def line() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await asterisk.place(answers)

    started = _perf()
    await asyncio.gather(*(line() for _ in range(min(concurrency, calls))))
    return _perf() - started


async def paced(
    asterisk: FakeAsterisk,
    answers: Sequence[str],
    lines: int,
    ramp: float,
    hold: float,
    seed: int = 1414,
) -> float:
    """`lines` phone lines, each starting at a random moment within `ramp` seconds and placing one
    call after another until `ramp + hold` seconds have passed (so about `lines` calls are in progress
    through the hold); the calls in progress then finish. Returns the wall time in seconds."""
    rng = random.Random(seed)
    starts = sorted(rng.uniform(0.0, ramp) for _ in range(lines))
    started = _perf()
    stop_at = started + ramp + hold
    now_ns = _now_ns()
    asterisk.stats.hold_ns = (now_ns + int(ramp * 1e9), now_ns + int((ramp + hold) * 1e9))

    async def line(offset: float) -> None:
        await asyncio.sleep(offset)
        while _perf() < stop_at:
            await asterisk.place(answers)

    await asyncio.gather(*(line(offset) for offset in starts))
    return _perf() - started


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it measures: a collection stops its loop
    while the server's commands wait to be read, and the pause would be counted as the server's
    turnaround (at 5,000 lines the generator's own collections took up to 114 ms). Its calls leave
    no cycles, so nothing piles up; what there is goes at the end."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def _kernel_timestamp(ancillary: list[tuple[int, int, bytes]], fallback: int) -> int:
    """The moment (ns, CLOCK_REALTIME) the kernel received the data just read, from SCM_TIMESTAMPNS;
    `fallback` on a kernel that gave none."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            return seconds * 1_000_000_000 + nanoseconds
    return fallback


def output_gaps(stats: LoadStats, longer_than: float = SLOW) -> tuple[int, float, float]:
    """Through the hold of a paced run: how many times the server sent no command at all for more than
    `longer_than` seconds, the longest such time, and how many such gaps chance alone would give (as
    many commands at the same rate, at random moments: n * exp(-rate * longer_than)).

    At 5,000 lines (about 6 commands a millisecond) chance gives none, so every gap counted is the
    server stalled while replies kept coming; at 1,000 lines chance gives dozens, so read it there
    against that figure."""
    times = sorted(stats.arrivals)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
    if not gaps:
        return 0, math.nan, math.nan
    rate = len(gaps) / ((times[-1] - times[0]) / 1e9)
    by_chance = len(gaps) * math.exp(-rate * longer_than)
    return sum(1 for g in gaps if g > longer_than), max(gaps), by_chance


def human_pause(low: float = 0.2, high: float = 1.5, seed: int = 4573) -> Callable[[], float]:
    """A caller's pause before each reply: uniform between `low` and `high` seconds."""
    rng = random.Random(seed)
    return lambda: rng.uniform(low, high)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
