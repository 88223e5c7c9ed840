"""FastAGI server cost: our AgiServer (uvloop and plain asyncio), panoramisk's fast_agi.Application and
the full engine (menus/1414.yaml, SQLite journal), each in its own process, under the same fake load.

Each server runs in a child process (this script with --serve KIND), so its own CPU time (utime+stime of
every thread, from /proc/<pid>/stat, and of its own children: the engine's journal writer process) and
resident memory (VmRSS, the server's process alone) are read apart from the load generator's. The
generator (bench/loadgen.py: a lean fake Asterisk 22, one non-blocking socket per call,
on uvloop) runs in this process; its own CPU time is printed too, since on a 2-core machine it can be
the bottleneck. Before any load, one call through ivr.testing's faithful FakeCall checks that each
server runs the intended flow (commands and queue printed).

Flow for ours/ours-asyncio/panoramisk (issue 4): ANSWER, SET VARIABLE, STREAM FILE, three GET DATA,
EXEC Queue, HANGUP. bare-uvloop sends the same bytes from a protocol that parses and checks nothing:
the floor this machine sets today, to read the others against. bare-task sends them from one task per
call awaiting a future per reply, still parsing nothing: the floor of any server whose handler is a
coroutine, as ours and panoramisk's are.

Flow for engine: the real interpreter over menus/1414.yaml; the caller presses 2 (Russian) at the
greeting, 1 (eGov) in the main menu, 1 (portal), then 2 (a specialist): queue ru-egov.
No speech models (DTMF only), no AMI; the clock is fixed inside opening hours.

Modes:
  saturation  --calls calls, --concurrency at a time, replies at once: calls/s (the machine's figure)
              and server CPU ms per call (the engine's figure), with the ratio to panoramisk.
  pacing      1,000 then 5,000 phone lines, starts spread over a ramp (5 s, 10 s), each line placing
              calls back to back for a hold period; callers pause uniform(0.2, 1.5) s before every
              reply. p50/p99 turnaround (reply handed to the kernel -> the next command received by
              the kernel, its SO_TIMESTAMPNS stamp: the server's delay, not the generator's; p99 read
              adds the generator's own wait, as it read the line), stalls (no command out for over
              5 ms through the hold, against chance) and RSS per concurrent call ((peak VmRSS - idle
              VmRSS) / peak concurrent calls); each level --runs times (default 3), then min / median
              / max over the runs.
  soak        the first --lines level for --soak-minutes (default 60): RSS, calls in progress and
              turnaround p99 sampled every 10 s; RSS growth at full load (slope, last fifth against
              first fifth). Asked for by name: `all` does not include it.

    .venv/bin/python bench/bench_agi.py                       # everything, about 10 minutes
    .venv/bin/python bench/bench_agi.py --quick               # smoke run, under a minute
    .venv/bin/python bench/bench_agi.py --mode saturation --servers ours,panoramisk --calls 20000
    .venv/bin/python bench/bench_agi.py --mode saturation --servers ours --profile /tmp/prof
    .venv/bin/python bench/bench_agi.py --mode soak --servers engine --lines 1000   # an hour
    .venv/bin/python bench/bench_agi.py --mode pacing --servers engine --lines 5000 --runs 1 --journal-writer process

panoramisk 1.4 needs no compatibility shim here: its only asyncio.coroutine use is for non-async
route handlers, and the handler below is async.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hoststeal import StealSampler, evenly
from loadgen import (
    FakeAsterisk,
    LoadStats,
    collector_paused,
    human_pause,
    output_gaps,
    paced,
    percentile,
    saturate,
)

SERVERS = ("bare-uvloop", "bare-task", "ours", "ours-asyncio", "panoramisk", "engine")
HOST = "127.0.0.1"
SHORT_FLOW_ANSWERS = ("2", "", "123")  # the three GET DATA: a key, silence, three keys then timeout
ENGINE_ANSWERS = ("2", "1", "1", "2")  # Russian, eGov, portal, a specialist
SHORT_FLOW_COMMANDS = 8
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# =================================================================================================
# Server side (child process)
# =================================================================================================
async def short_flow(channel: object) -> None:
    """The issue's short IVR flow through our Channel API."""
    from ivr.agi.channel import Channel

    assert isinstance(channel, Channel)
    await channel.answer()
    await channel.set_variable("CHANNEL(language)", "ru")
    await channel.stream_file("ivr/connecting-operator")
    for _ in range(3):
        await channel.get_data("ivr/callback-enter-number", 5000, 4)
    await channel.exec("Queue", ["ru-general", "t", "", "", 900])
    await channel.hangup()


async def panoramisk_flow(request: object) -> None:
    """The same flow through panoramisk's Request.send_command (same bytes on the wire)."""
    send = request.send_command  # type: ignore[attr-defined]
    await send("ANSWER")
    await send("SET VARIABLE CHANNEL(language) ru")
    await send('STREAM FILE ivr/connecting-operator ""')
    for _ in range(3):
        await send("GET DATA ivr/callback-enter-number 5000 4")
    await send("EXEC Queue ru-general,t,,,900")
    await send("HANGUP")


SHORT_FLOW_LINES = (
    b"ANSWER\n",
    b"SET VARIABLE CHANNEL(language) ru\n",
    b'STREAM FILE ivr/connecting-operator ""\n',
    b"GET DATA ivr/callback-enter-number 5000 4\n",
    b"GET DATA ivr/callback-enter-number 5000 4\n",
    b"GET DATA ivr/callback-enter-number 5000 4\n",
    b"EXEC Queue ru-general,t,,,900\n",
    b"HANGUP\n",
)


class BareFlow(asyncio.Protocol):
    """The floor: the same bytes on uvloop with no parsing, no checks, no timers, no task per call
    (the next command goes out when a reply line arrives). Not a usable server; a yardstick."""

    __slots__ = ("_buffer", "_next", "_transport")

    def __init__(self) -> None:
        self._buffer = b""
        self._next = -1  # -1: environment block not complete yet
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if self._next < 0:
            self._buffer += data
            if b"\n\n" not in self._buffer:
                return
            self._buffer = b""
            self._next = 0
        else:
            replies = data.count(b"\n") - data.count(b"HANGUP\n")
            self._next += replies
            if replies == 0:
                return
        if self._next < len(SHORT_FLOW_LINES):
            transport.write(SHORT_FLOW_LINES[self._next])
        else:
            transport.close()


class BareTaskFlow(asyncio.Protocol):
    """The floor of any server whose call handler is a coroutine awaiting one reply per command: the
    same bytes as BareFlow, sent from one task per call that awaits a future per reply, nothing parsed
    or checked. What ours pays above this is our own code; what this pays above BareFlow is the shape
    of the API (a task per call, a future and a wake-up per command), not any code of ours."""

    __slots__ = ("_buffer", "_reply", "_task", "_transport")

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._reply: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None  # the loop holds tasks only weakly

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._task is None:
            self._buffer += data
            if b"\n\n" in self._buffer:
                self._buffer = b""
                self._task = asyncio.get_running_loop().create_task(self._flow())
            return
        reply = self._reply
        if reply is not None and data.count(b"\n") > data.count(b"HANGUP\n"):
            self._reply = None
            reply.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:  # a caller gone mid-call: its task waits for no reply
            self._task.cancel()

    async def _flow(self) -> None:
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        for line in SHORT_FLOW_LINES:
            self._reply = loop.create_future()
            transport.write(line)
            await self._reply
        transport.close()


def open_hours_clock() -> object:
    """The engine's clock from a Wednesday 10:00 in Almaty, running on: operators at work for hours."""
    import datetime as dt

    from ivr.clock import RunningClock

    return RunningClock(dt.datetime(2026, 11, 4, 5, 0, tzinfo=dt.UTC))


class GcPauses:
    """Times every garbage collection in the server (gc.callbacks): a full collection over many live
    calls' objects stops the event loop, which shows as a turnaround spike."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self.total_ms = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        elapsed = 1000 * (time.perf_counter() - self.started)
        self.count[generation] += 1
        self.total_ms += elapsed
        self.longest_ms[generation] = max(self.longest_ms[generation], elapsed)

    def summary(self) -> dict[str, object]:
        return {
            "gc_count": self.count,
            "gc_longest_ms": [round(x, 1) for x in self.longest_ms],
            "gc_total_ms": round(self.total_ms, 1),
        }


def route_1414(handler: Callable[[Any], Awaitable[None]]) -> Callable[[str], Any]:
    """An AgiServer router: `handler` for the script 1414, no other."""
    return lambda script: handler if script == "1414" else None


async def start_engine(state_dir: Path, journal_writer: str = "thread") -> tuple[Any, int]:
    """The whole engine as the benches run it: the project's menus and settings, its state in
    `state_dir`, its clock inside opening hours. Returns the engine and its FastAGI port."""
    from ivr.engine.app import Engine
    from ivr.engine.services import EngineServices
    from ivr.testing.engine_fixtures import project_settings

    (state_dir / "spool").mkdir(parents=True, exist_ok=True)
    settings = project_settings(state_dir, journal_writer=journal_writer)
    engine = Engine(settings, EngineServices(settings=settings, clock=open_hours_clock()))
    return engine, await engine.start()


async def _serve(
    kind: str, state_dir: str, profile: str | None, gc_freeze: bool, journal_writer: str = "thread"
) -> None:
    import gc

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stats: Callable[[], dict[str, object]] = dict
    if kind in ("bare-uvloop", "bare-task"):
        raw = await loop.create_server(
            BareFlow if kind == "bare-uvloop" else BareTaskFlow, HOST, 0, backlog=1024
        )
        port = raw.sockets[0].getsockname()[1]

        async def closing(grace: float) -> None:
            raw.close()

    elif kind in ("ours", "ours-asyncio"):
        from ivr.agi.server import AgiServer

        server = AgiServer(route_1414(short_flow), HOST, 0)
        port = await server.start()
        stats = lambda: attrs.asdict(server.stats)  # noqa: E731
        closing = server.stop
    elif kind == "panoramisk":
        from panoramisk.fast_agi import Application

        app = Application(loop=loop)
        app.add_route("1414", panoramisk_flow)
        raw = await asyncio.start_server(app.handler, HOST, 0, backlog=1024)
        port = raw.sockets[0].getsockname()[1]

        async def closing(grace: float) -> None:
            raw.close()

    elif kind == "engine":
        engine, port = await start_engine(Path(state_dir), journal_writer)
        stats = lambda: attrs.asdict(engine.server.stats)  # type: ignore[union-attr]  # noqa: E731
        closing = engine.stop
    else:
        raise SystemExit(f"unknown server {kind!r}")
    if gc_freeze:  # what `ivr serve` does after start-up: collections paced by the engine
        if kind == "engine":
            engine.pace_garbage_collection()
        else:
            from ivr.engine.gc_pacing import GcPacer

            GcPacer().start()
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    print(f"READY {port}", flush=True)
    await stop.wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    await closing(2.0)
    print("STATS " + json.dumps({**stats(), **pauses.summary()}), flush=True)


def serve_main(kind: str, state_dir: str, profile: str | None, gc_freeze: bool, journal_writer: str) -> int:
    # As `ivr serve` runs: INFO logging to stderr (the parent sends it to a file).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # panoramisk logs a line per call at INFO; ours does not: silence it so protocol meets protocol.
    logging.getLogger("panoramisk").setLevel(logging.WARNING)
    if kind == "ours-asyncio" or kind == "panoramisk":
        asyncio.run(_serve(kind, state_dir, profile, gc_freeze, journal_writer))
    else:
        import uvloop

        uvloop.run(_serve(kind, state_dir, profile, gc_freeze, journal_writer))
    return 0


# =================================================================================================
# Parent side: process control and measurement
# =================================================================================================
class ServerProcess:
    def __init__(
        self,
        kind: str,
        workdir: Path,
        label: str,
        profile_dir: Path | None,
        gc_freeze: bool = False,
        journal_writer: str = "thread",
    ) -> None:
        self.kind = kind
        self.workdir = workdir
        self.log_path = workdir / f"{label}.log"
        self.profile_path = profile_dir / f"{label}.prof" if profile_dir else None
        state = workdir / f"{label}-state"
        state.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            __file__,
            "--serve",
            kind,
            "--state-dir",
            str(state),
            "--journal-writer",
            journal_writer,
        ]
        if self.profile_path:
            command += ["--profile-out", str(self.profile_path)]
        if not gc_freeze:
            command.append("--no-gc-tuning")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log)
        line = self.process.stdout.readline().decode()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(
                f"server {kind} did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}"
            )
        self.port = int(line.split()[1])
        self.stats: dict[str, object] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (every thread) and of its children (the engine's journal
        writer process), in seconds."""
        return sum(_cpu_ticks(pid) for pid in (self.pid, *_children(self.pid))) / CLK_TCK

    def loop_waited_seconds(self) -> float:
        """How long the server's event-loop thread (its main thread) has been ready to run but waiting
        for a CPU (/proc/<pid>/schedstat, 2nd field): what the machine, not the server, added to its
        turnaround. NaN on a kernel without scheduler statistics."""
        try:
            with open(f"/proc/{self.pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return math.nan

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self._log.close()
        for line in out.decode().splitlines():
            if line.startswith("STATS "):
                self.stats = json.loads(line[6:])

    def log_lines(self) -> int:
        return sum(1 for _ in self.log_path.open("rb"))


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a child gone since it was listed
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except FileNotFoundError:
        return []


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_loop(coro: object) -> object:
    import uvloop

    return uvloop.run(coro)  # type: ignore[arg-type]


def answers_for(kind: str) -> Sequence[str]:
    return ENGINE_ANSWERS if kind == "engine" else SHORT_FLOW_ANSWERS


async def check_flow(kind: str, port: int) -> tuple[list[str], str | None]:
    """One call through the faithful FakeCall: the commands the server sends and the queue reached."""
    from ivr.testing.fake_caller import FakeCall, Press, Silence

    script = [Press(a) if a else Silence() for a in answers_for(kind)]
    call = FakeCall(script)
    await call.run(HOST, port, timeout=30)
    return call.commands, call.queue


@attrs.define
class Row:
    server: str
    mode: str
    calls: int = 0
    failed: int = 0
    commands_per_call: float = 0.0
    wall: float = 0.0
    server_cpu: float = 0.0
    generator_cpu: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    p99_read_ms: float = math.nan  # as the generator read the command: adds its own loop's wait
    max_ms: float = math.nan
    peak_calls: int = 0
    rss_idle_mib: float = math.nan
    rss_peak_mib: float = math.nan
    handler_errors: int = 0
    log_lines: int = 0
    gc_longest_ms: float = math.nan  # longest garbage collection in the server during the run
    loop_waited: float = math.nan  # seconds the server's loop thread was ready but had no CPU (pacing)
    stalls: int = 0  # pacing, through the hold: times the server sent no command for over 5 ms
    stalls_by_chance: float = math.nan  # how many as many commands at random moments would give
    longest_stall_ms: float = math.nan
    stolen: float = math.nan  # CPU seconds the hypervisor took from the machine during the run
    slow: int = 0  # turnarounds over 5 ms in the hold
    slow_near_steal: float = math.nan  # the share of them with steal counted around them
    any_near_steal: float = math.nan  # the same share for commands of the hold picked evenly
    round_ms: list[float] = attrs.field(factory=list)  # server CPU ms per call, one per saturation round
    commands: int = 0

    def add_slice(self, stats: LoadStats, wall: float, server_cpu: float, generator_cpu: float) -> None:
        self.calls += stats.calls_done
        self.failed += stats.calls_failed
        self.commands += stats.commands
        self.commands_per_call = self.commands / max(1, self.calls + self.failed)
        self.wall += wall
        self.server_cpu += server_cpu
        self.generator_cpu += generator_cpu
        self.peak_calls = max(self.peak_calls, stats.peak_active)
        self.round_ms.append(1000 * server_cpu / stats.calls_done if stats.calls_done else math.nan)

    @property
    def median_ms(self) -> float:
        values = [v for v in self.round_ms if v == v]
        return statistics.median(values) if values else self.server_ms_per_call

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.wall if self.wall else math.nan

    @property
    def server_ms_per_call(self) -> float:
        return 1000 * self.server_cpu / self.calls if self.calls else math.nan

    @property
    def generator_ms_per_call(self) -> float:
        return 1000 * self.generator_cpu / self.calls if self.calls else math.nan

    @property
    def steal_percent(self) -> float:
        """Of the machine's CPU time through the run, the share the hypervisor took."""
        return 100 * self.stolen / (self.wall * (os.cpu_count() or 1)) if self.wall else math.nan

    @property
    def rss_kib_per_call(self) -> float:
        if not self.peak_calls:
            return math.nan
        return (self.rss_peak_mib - self.rss_idle_mib) * 1024 / self.peak_calls


@attrs.frozen
class Plan:
    servers: tuple[str, ...]
    modes: tuple[str, ...]
    calls: int
    engine_calls: int
    concurrency: int
    warmup: int
    rounds: int
    levels: tuple[tuple[int, float, float], ...]  # (lines, ramp s, hold s)
    pause: tuple[float, float]
    profile_dir: Path | None
    gc_freeze: bool = False
    journal_writer: str = "thread"  # the engine's: "thread" or "process" (journal_writer in ivr.toml)
    runs: int = 3  # pacing: runs per level, for min / median / max
    soak_minutes: float = 60.0


def start_server(kind: str, workdir: Path, label: str, plan: Plan) -> tuple[ServerProcess, int]:
    """Start one server and check its flow; returns it and the number of commands a call takes."""
    server = ServerProcess(kind, workdir, label, plan.profile_dir, plan.gc_freeze, plan.journal_writer)
    try:
        commands, queue = run_loop(check_flow(kind, server.port))  # type: ignore[misc]
    except BaseException:
        server.stop()
        raise
    print(f"  {label}: {len(commands)} commands, queue {queue}: {' / '.join(commands)}", flush=True)
    if kind != "engine" and len(commands) != SHORT_FLOW_COMMANDS:
        server.stop()
        raise RuntimeError(f"{kind} sent {len(commands)} commands, not the {SHORT_FLOW_COMMANDS} of the flow")
    return server, len(commands)


def run_saturation(workdir: Path, plan: Plan) -> list[Row]:
    """Every server up at once; `plan.rounds` rounds, each giving every server its share of the calls
    in turn, so that noise from the machine (other tenants, TIME_WAIT sockets piling up) falls on all
    servers alike. Per-server CPU is read around its own slices only."""
    servers: dict[str, tuple[ServerProcess, int]] = {}
    rows = {kind: Row(server=kind, mode="saturation") for kind in plan.servers}
    try:
        for kind in plan.servers:
            servers[kind] = start_server(kind, workdir, f"{kind}-saturation", plan)
            server, expected = servers[kind]
            warm = FakeAsterisk(HOST, server.port, expect_commands=expected)
            run_loop(saturate(warm, answers_for(kind), plan.warmup, min(plan.concurrency, plan.warmup)))
        for round_number in range(plan.rounds):
            for kind in plan.servers:
                server, expected = servers[kind]
                total = plan.engine_calls if kind == "engine" else plan.calls
                calls = total // plan.rounds + (1 if round_number < total % plan.rounds else 0)
                asterisk = FakeAsterisk(HOST, server.port, expect_commands=expected)
                asterisk.stats.measure_turnarounds = False
                cpu0, gen0 = server.cpu_seconds(), own_cpu_seconds()
                wall = run_loop(saturate(asterisk, answers_for(kind), calls, plan.concurrency))
                cpu1, gen1 = server.cpu_seconds(), own_cpu_seconds()
                rows[kind].add_slice(asterisk.stats, wall, cpu1 - cpu0, gen1 - gen0)  # type: ignore[arg-type]
            print(
                f"    round {round_number + 1}/{plan.rounds}: "
                + ", ".join(f"{k} {rows[k].round_ms[-1]:.3f}" for k in plan.servers)
                + " ms of server CPU per call",
                flush=True,
            )
    finally:
        for kind, (server, _) in servers.items():
            server.stop()
            rows[kind].handler_errors = int(server.stats.get("handler_errors", 0))  # type: ignore[arg-type]
            rows[kind].log_lines = server.log_lines()
    return [rows[kind] for kind in plan.servers]


async def _paced_with_sampling(
    server: ServerProcess,
    asterisk: FakeAsterisk,
    kind: str,
    lines: int,
    ramp: float,
    hold: float,
    steal: StealSampler,
) -> tuple[float, int]:
    """Run the paced load while sampling the server's RSS and the host's steal; returns (wall, peak
    RSS KiB)."""
    peak_rss = 0

    async def sample() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, server.rss_kib())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    steal.start()
    try:
        wall = await paced(asterisk, answers_for(kind), lines, ramp, hold)
    finally:
        sampler.cancel()
        steal.stop()
    return wall, peak_rss


def run_pacing(kind: str, workdir: Path, plan: Plan, lines: int, ramp: float, hold: float) -> Row:
    server, expected = start_server(kind, workdir, f"{kind}-pacing-{lines}", plan)
    try:
        warm = FakeAsterisk(HOST, server.port, expect_commands=expected)
        run_loop(saturate(warm, answers_for(kind), plan.warmup, min(plan.concurrency, plan.warmup)))
        time.sleep(0.5)
        rss_idle = server.rss_kib()
        asterisk = FakeAsterisk(
            HOST,
            server.port,
            expect_commands=expected,
            delay=human_pause(*plan.pause),
        )
        cpu0, gen0, waited0 = server.cpu_seconds(), own_cpu_seconds(), server.loop_waited_seconds()
        steal = StealSampler()
        with collector_paused():
            wall, rss_peak = run_loop(_paced_with_sampling(server, asterisk, kind, lines, ramp, hold, steal))  # type: ignore[misc]
        cpu1, gen1, waited1 = server.cpu_seconds(), own_cpu_seconds(), server.loop_waited_seconds()
    finally:
        server.stop()
    stats = asterisk.stats
    turnarounds = stats.turnarounds
    stalls, longest_stall, by_chance = output_gaps(stats)
    gc_figures = {k: v for k, v in server.stats.items() if k.startswith("gc_")}
    print(
        f"    {kind} garbage collections (gen 0, 1, 2) during the run and start-up: {gc_figures}", flush=True
    )
    return Row(
        server=kind,
        mode=f"pacing {lines}",
        calls=stats.calls_done,
        failed=stats.calls_failed,
        commands_per_call=stats.commands / max(1, stats.calls_done + stats.calls_failed),
        wall=wall,
        server_cpu=cpu1 - cpu0,
        generator_cpu=gen1 - gen0,
        p50_ms=1000 * percentile(turnarounds, 0.50),
        p99_ms=1000 * percentile(turnarounds, 0.99),
        p99_read_ms=1000 * percentile(stats.read_turnarounds, 0.99),
        max_ms=1000 * max(turnarounds, default=math.nan),
        peak_calls=stats.peak_active,
        rss_idle_mib=rss_idle / 1024,
        rss_peak_mib=max(rss_peak, rss_idle) / 1024,
        handler_errors=int(server.stats.get("handler_errors", 0)),  # type: ignore[arg-type]
        log_lines=server.log_lines(),
        gc_longest_ms=max(server.stats.get("gc_longest_ms", [math.nan])),  # type: ignore[arg-type]
        loop_waited=waited1 - waited0,
        stalls=stalls,
        stalls_by_chance=by_chance,
        longest_stall_ms=1000 * longest_stall,
        stolen=steal.stolen_seconds(),
        slow=len(stats.slow),
        slow_near_steal=steal.share_near(stats.slow),
        # The baseline: as many commands of the hold, evenly picked, looked up the same way.
        any_near_steal=steal.share_near([(t, 0.0) for t in evenly(stats.arrivals, 2000)]),
    )


@attrs.define
class SoakSample:
    minute: float
    rss_mib: float
    active: int
    calls_done: int
    p99_ms: float  # turnaround p99 over the commands since the previous sample


def soak_interval(minutes: float) -> float:
    """Seconds between samples: 10 s in an hour's soak, at least 30 samples in a short one."""
    return max(1.0, min(10.0, minutes * 60 / 30))


def run_soak(kind: str, workdir: Path, plan: Plan, lines: int, minutes: float) -> list[SoakSample]:
    """`lines` paced lines for `minutes`: the server's RSS, calls in progress and turnaround p99
    sampled every `soak_interval(minutes)` seconds, to show that memory does not grow with calls served."""
    server, expected = start_server(kind, workdir, f"{kind}-soak-{lines}", plan)
    samples: list[SoakSample] = []
    try:
        warm = FakeAsterisk(HOST, server.port, expect_commands=expected)
        run_loop(saturate(warm, answers_for(kind), plan.warmup, min(plan.concurrency, plan.warmup)))
        asterisk = FakeAsterisk(HOST, server.port, expect_commands=expected, delay=human_pause(*plan.pause))
        ramp, _ = ramp_and_hold(lines)
        interval = soak_interval(minutes)

        async def soak() -> None:
            load = asyncio.ensure_future(paced(asterisk, answers_for(kind), lines, ramp, minutes * 60 - ramp))
            started, seen = time.perf_counter(), 0
            while not load.done():
                await asyncio.wait([load], timeout=interval)
                turnarounds = asterisk.stats.turnarounds
                window, seen = turnarounds[seen:], len(turnarounds)
                sample = SoakSample(
                    (time.perf_counter() - started) / 60,
                    server.rss_kib() / 1024,
                    asterisk.stats.active,
                    asterisk.stats.calls_done,
                    1000 * percentile(window, 0.99),
                )
                samples.append(sample)
                if len(samples) % max(1, int(300 / interval)) == 0:
                    print(
                        f"    minute {sample.minute:5.1f}: RSS {sample.rss_mib:.1f} MiB, {sample.active} "
                        f"calls in progress, {sample.calls_done} done, p99 {sample.p99_ms:.2f} ms",
                        flush=True,
                    )
            await load

        with collector_paused():
            run_loop(soak())
    finally:
        server.stop()
    gc_figures = {k: v for k, v in server.stats.items() if k.startswith("gc_")}
    print(
        f"    {kind} garbage collections (gen 0, 1, 2) during the soak and start-up: {gc_figures}", flush=True
    )
    return samples


def print_soak(kind: str, lines: int, minutes: float, samples: list[SoakSample]) -> None:
    """Growth = least-squares slope of RSS over the samples taken at full load (the ramp and the last
    minute, when calls drain, left out), and the mean RSS of the last fifth against the first fifth."""
    steady = [s for s in samples if s.active >= 0.9 * lines]
    interval = soak_interval(minutes)
    print(f"\nSoak: {kind}, {lines} paced lines, {samples[-1].minute if samples else 0:.0f} minutes")
    if len(steady) < 10:
        print("  too few samples at full load to judge growth")
        return
    xs, ys = [s.minute for s in steady], [s.rss_mib for s in steady]
    slope = statistics.linear_regression(xs, ys).slope  # MiB per minute
    fifth = max(1, len(steady) // 5)
    first, last = statistics.fmean(ys[:fifth]), statistics.fmean(ys[-fifth:])
    p99s = [s.p99_ms for s in steady if s.p99_ms == s.p99_ms]
    print(
        f"  RSS at full load: first fifth {first:.1f} MiB, last fifth {last:.1f} MiB ({last - first:+.1f}); "
        f"min {min(ys):.1f}, max {max(ys):.1f}; slope {60 * slope:+.1f} MiB per hour"
    )
    print(
        f"  calls served {steady[-1].calls_done - steady[0].calls_done} at full load; turnaround p99 per "
        f"{interval:g} s window: min {min(p99s):.2f} / median {statistics.median(p99s):.2f} / "
        f"max {max(p99s):.2f} ms"
    )


# =================================================================================================
# Report
# =================================================================================================
def _f(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_saturation(rows: list[Row]) -> None:
    base = next((r.median_ms for r in rows if r.server == "panoramisk"), math.nan)
    print(
        "\nSaturation (replies at once; server CPU = utime+stime of its process, all threads, and of its "
        "children: the engine's journal writer)"
    )
    header = (
        f"{'server':<14}{'calls':>8}{'failed':>7}{'cmd/call':>9}{'calls/s':>9}{'srv ms/call':>12}"
        f"{'rounds min-max':>16}{'vs panor.':>10}{'us/cmd':>8}{'gen ms/call':>12}{'srv CPU%':>9}{'gen CPU%':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r.median_ms / base if base == base and base else math.nan
        spread = f"{_f(min(r.round_ms, default=math.nan), 3)}-{_f(max(r.round_ms, default=math.nan), 3)}"
        print(
            f"{r.server:<14}{r.calls:>8}{r.failed:>7}{_f(r.commands_per_call, 1):>9}"
            f"{_f(r.calls_per_second, 0):>9}{_f(r.median_ms, 3):>12}{spread:>16}{_f(ratio, 2) + 'x':>10}"
            f"{_f(1000 * r.median_ms / r.commands_per_call if r.commands_per_call else math.nan, 1):>8}"
            f"{_f(r.generator_ms_per_call, 3):>12}{_f(100 * r.server_cpu / r.wall, 0):>9}"
            f"{_f(100 * r.generator_cpu / r.wall, 0):>9}"
        )
    print(
        "  srv ms/call: median over rounds. Target (issue 4): ours <= 0.150 ms per call, at least 3x "
        "better than panoramisk"
    )


def _near(row: Row) -> str:
    """'92%/20%': slow turnarounds with steal around them / evenly picked commands with steal around."""
    if row.slow_near_steal != row.slow_near_steal:
        return "-"
    return f"{100 * row.slow_near_steal:.0f}%/{100 * row.any_near_steal:.0f}%"


def print_pacing(rows: list[Row], pause: tuple[float, float]) -> None:
    print(f"\nReal pacing (callers pause {pause[0]:g}-{pause[1]:g} s before each reply)")
    header = (
        f"{'server':<14}{'lines':>7}{'calls':>7}{'failed':>7}{'cmd/call':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'p99 read':>9}{'max ms':>8}{'peak':>6}{'RSS idle':>9}{'RSS peak':>9}{'KiB/call':>9}"
        f"{'srv ms/call':>12}{'srv CPU%':>9}{'gen CPU%':>9}{'GC max ms':>10}{'loop wait%':>11}{'stalls':>7}{'chance':>7}{'longest':>8}"
        f"{'steal%':>7}{'slow':>6}{'near steal':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        lines = r.mode.split()[1]
        print(
            f"{r.server:<14}{lines:>7}{r.calls:>7}{r.failed:>7}{_f(r.commands_per_call, 1):>9}"
            f"{_f(r.p50_ms, 2):>8}{_f(r.p99_ms, 2):>8}{_f(r.p99_read_ms, 2):>9}{_f(r.max_ms, 1):>8}{r.peak_calls:>6}"
            f"{_f(r.rss_idle_mib, 1):>9}{_f(r.rss_peak_mib, 1):>9}{_f(r.rss_kib_per_call, 1):>9}"
            f"{_f(r.server_ms_per_call, 3):>12}{_f(100 * r.server_cpu / r.wall, 0):>9}"
            f"{_f(100 * r.generator_cpu / r.wall, 0):>9}{_f(r.gc_longest_ms, 1):>10}"
            f"{_f(100 * r.loop_waited / r.wall, 1):>11}{r.stalls:>7}{_f(r.stalls_by_chance, 1):>7}{_f(r.longest_stall_ms, 1):>8}"
            f"{_f(r.steal_percent, 2):>7}{r.slow:>6}{_near(r):>11}"
        )
    print(
        "  targets (issue 4): p99 < 2 ms at 1,000 and < 10 ms at 5,000 calls. p50/p99/max: a reply handed "
        "to the kernel -> the server's next command received by the kernel (the server's turnaround); "
        "p99 read: to the moment this generator's loop read it (adds the generator's own wait). RSS in MiB, KiB per "
        "concurrent call = (peak - idle) / peak; loop wait% = of the run's time, how long the server's event "
        "loop was ready to run but had no CPU (the machine's share of the turnaround: compare runs by it); "
        "stalls / chance / longest: through the hold, the times the server sent no command for over 5 ms while "
        "replies kept coming, how many commands at random moments would give at that rate, and the longest "
        "gap in ms (stalls well above chance: the server stopped, where a queue would show none); steal%: "
        "of the machine's CPU time through the run, what the hypervisor took (/proc/stat); slow / near "
        "steal: turnarounds over 5 ms in the hold, and the share of them with the host's steal counted "
        "within 10 ms, against the same share for commands picked evenly (hoststeal.py)"
    )


def print_pacing_spread(rows: list[Row]) -> None:
    """min / median / max over the runs of each server and level: the figures the README quotes."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.server, r.mode), []).append(r)
    print("\nOver runs (min / median / max)")
    for (server, mode), runs in groups.items():

        def spread(values: list[float], digits: int = 2) -> str:
            values = sorted(v for v in values if v == v)
            if not values:
                return "-"
            return " / ".join(_f(v, digits) for v in (values[0], statistics.median(values), values[-1]))

        print(
            f"  {server} {mode} lines, {len(runs)} runs: p99 {spread([r.p99_ms for r in runs])} ms "
            f"(as read by the generator {spread([r.p99_read_ms for r in runs])}); "
            f"p50 {spread([r.p50_ms for r in runs])} ms; KiB per call {spread([r.rss_kib_per_call for r in runs], 1)}; "
            f"server ms per call {spread([r.server_ms_per_call for r in runs], 3)}; "
            f"loop wait % {spread([100 * r.loop_waited / r.wall for r in runs], 1)}; "
            f"stalls over 5 ms {spread([float(r.stalls) for r in runs], 0)} "
            f"(by chance {spread([r.stalls_by_chance for r in runs], 1)}), "
            f"longest {spread([r.longest_stall_ms for r in runs], 1)} ms; "
            f"steal % {spread([r.steal_percent for r in runs])}; "
            f"turnarounds over 5 ms near the host's steal {', '.join(_near(r) for r in runs)}"
        )


def print_notes(rows: list[Row]) -> None:
    for r in rows:
        if r.handler_errors or r.failed:
            print(f"  note: {r.server} {r.mode}: {r.failed} failed calls, {r.handler_errors} handler errors")
        if r.log_lines > 100:
            print(f"  note: {r.server} {r.mode}: {r.log_lines} log lines at INFO")


def print_profile(path: Path, top: int = 25) -> None:
    import pstats

    print(f"\nprofile {path} (top {top} by own time)")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)


# =================================================================================================
# CLI
# =================================================================================================
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20000, help="saturation: calls per server (default 20000)")
    p.add_argument(
        "--engine-calls", type=int, default=None, help="saturation calls for the engine (default calls/4)"
    )
    p.add_argument("--concurrency", type=int, default=200, help="saturation: calls at a time (default 200)")
    p.add_argument("--rounds", type=int, default=5, help="saturation: rounds, servers in turn (default 5)")
    p.add_argument("--mode", choices=("saturation", "pacing", "soak", "all"), default="all")
    p.add_argument("--runs", type=int, default=3, help="pacing: runs per level (default 3)")
    p.add_argument(
        "--soak-minutes",
        type=float,
        default=60.0,
        help="soak: minutes of paced load at the first --lines level, RSS sampled (default 60)",
    )
    p.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}")
    p.add_argument(
        "--lines", default="1000,5000", help="pacing: concurrent calls per level (default 1000,5000)"
    )
    p.add_argument(
        "--pause", type=float, nargs=2, default=(0.2, 1.5), metavar=("LOW", "HIGH"), help="seconds"
    )
    p.add_argument("--quick", action="store_true", help="small numbers: a smoke run under a minute")
    p.add_argument("--profile", type=Path, default=None, help="cProfile each server; .prof files here")
    p.add_argument(
        "--no-gc-tuning",
        dest="gc_freeze",
        action="store_false",
        help="servers keep Python's default collector instead of tuning it after start-up as `ivr serve` does",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    p.add_argument("--state-dir", help=argparse.SUPPRESS)
    p.add_argument(
        "--journal-writer",
        choices=("thread", "process"),
        default="thread",
        help="the engine's journal writer (journal_writer in ivr.toml; default thread, as shipped)",
    )
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def ramp_and_hold(lines: int) -> tuple[float, float]:
    """Starts spread over 5 s per 1,000 lines (up to 10 s); calls then keep coming for 10 s."""
    return min(10.0, max(2.0, 5.0 * lines / 1000)), 10.0


def make_plan(args: argparse.Namespace) -> Plan:
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    # "all" is what the README's table quotes; the hour-long soak is asked for by name.
    modes = ("saturation", "pacing") if args.mode == "all" else (args.mode,)
    if args.quick:
        return Plan(
            servers,
            modes,
            calls=2000,
            engine_calls=500,
            concurrency=100,
            warmup=50,
            rounds=2,
            levels=((300, 1.0, 1.5),),
            pause=(0.02, 0.2),
            profile_dir=args.profile,
            gc_freeze=args.gc_freeze,
            journal_writer=args.journal_writer,
            runs=1,
            soak_minutes=min(args.soak_minutes, 1.0),
        )
    levels = tuple((n, *ramp_and_hold(n)) for n in (int(x) for x in args.lines.split(",") if x.strip()))
    return Plan(
        servers,
        modes,
        calls=args.calls,
        engine_calls=args.engine_calls if args.engine_calls is not None else max(1, args.calls // 4),
        concurrency=args.concurrency,
        warmup=200,
        rounds=args.rounds,
        levels=levels,
        pause=tuple(args.pause),  # type: ignore[arg-type]
        profile_dir=args.profile,
        gc_freeze=args.gc_freeze,
        journal_writer=args.journal_writer,
        runs=max(1, args.runs),
        soak_minutes=args.soak_minutes,
    )


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    if args.serve:
        return serve_main(args.serve, args.state_dir, args.profile_out, args.gc_freeze, args.journal_writer)
    plan = make_plan(args)
    if plan.profile_dir:
        plan.profile_dir.mkdir(parents=True, exist_ok=True)
    needed = max((n for n, _, _ in plan.levels), default=0) if "pacing" in plan.modes else plan.concurrency
    if needed + 100 > resource.getrlimit(resource.RLIMIT_NOFILE)[0]:
        print(f"warning: the fd limit is below {needed + 100}; connections will fail", file=sys.stderr)
    print(
        f"bench_agi: servers {', '.join(plan.servers)}; modes {', '.join(plan.modes)}; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; the engine's journal writer "
        f"{plan.journal_writer}",
        flush=True,
    )
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench_agi-"))
    saturation: list[Row] = []
    pacing: list[Row] = []
    soaks: list[tuple[str, int, list[SoakSample]]] = []
    try:
        if "saturation" in plan.modes:
            print(
                f"saturation: {plan.calls} calls ({plan.engine_calls} for the engine), "
                f"{plan.concurrency} at a time",
                flush=True,
            )
            saturation = run_saturation(workdir, plan)
        if "pacing" in plan.modes:
            for lines, ramp, hold in plan.levels:
                print(f"pacing: {lines} lines, ramp {ramp:g} s, hold {hold:g} s", flush=True)
                for run in range(plan.runs):
                    for kind in plan.servers:
                        pacing.append(run_pacing(kind, workdir, plan, lines, ramp, hold))
                        r = pacing[-1]
                        print(
                            f"    {kind} run {run + 1}/{plan.runs}: {r.calls} calls, p99 {r.p99_ms:.2f} ms, "
                            f"peak {r.peak_calls}",
                            flush=True,
                        )
        if "soak" in plan.modes:
            lines = plan.levels[0][0] if plan.levels else 1000
            for kind in plan.servers:
                print(f"soak: {kind}, {lines} lines, {plan.soak_minutes:g} minutes", flush=True)
                soaks.append((kind, lines, run_soak(kind, workdir, plan, lines, plan.soak_minutes)))
    finally:
        if saturation:
            print_saturation(saturation)
        if pacing:
            print_pacing(pacing, plan.pause)
            print_pacing_spread(pacing)
        for kind, lines, samples in soaks:
            print_soak(kind, lines, plan.soak_minutes, samples)
        print_notes(saturation + pacing)
        if plan.profile_dir:
            for path in sorted(plan.profile_dir.glob("*.prof")):
                print_profile(path)
        if args.keep:
            print(f"\nserver logs: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
