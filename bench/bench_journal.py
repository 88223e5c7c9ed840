"""Journal cost per call at 1,000 concurrent calls, on SQLite and PostgreSQL.

Each simulated call starts, visits nodes and sends inputs (12 events) with a pause before each step
as a caller listening to a prompt would, then ends; calls start spread over a few seconds. Nothing on
the call path waits for the journal, as in the engine; every 10th call awaits its end's
acknowledgement to sample how long a call takes to become durable (end -> committed, p50/p99).

The same load runs without a journal just before each run with one, and the figures per call are:

- event loop, in the journal's calls: the loop thread's CPU time (CLOCK_THREAD_CPUTIME_ID) inside
  each call_started / event / call_ended, summed (the clock reads' own cost measured and taken off);
- event loop, whole thread: the loop thread's CPU with the journal minus without. It also holds
  what the journal makes the loop do besides its calls (wake-ups, garbage), but the load's own
  CPU (~0.5 ms a call) varies by more than the journal's share from run to run: read it as a bound;
- writer: the writer's own CPU time (statements, JSON, COPY, commits; SQLite's work is in it): the
  writer thread (`--writer thread`, the default, as `ivr serve` runs) or the journal's writer process
  (`--writer process`, `journal_writer = "process"`);
- process: the whole process (getrusage: every thread, user + system) and the writer process, with
  minus without.

Each is printed as min / median / max over the runs. PostgreSQL's own server CPU is not in these
figures (it is another process).

    .venv/bin/python bench/bench_journal.py [--calls 1000] [--runs 3] [--pause-ms 20 150] [--pg URL | --no-pg]
        [--writer process|thread]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ivr.config import Settings
from ivr.engine.gc_pacing import GcPacer
from ivr.journal import OUTCOMES, open_state

STEPS = 12
WRITES = STEPS + 2
SAMPLE_EVERY = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(thread_id: int | None) -> float:
    if thread_id is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread_id))


def child_cpu(pid: int | None) -> float:
    """utime + stime of a child process (the journal's writer), in seconds."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def step_event(journal, call_id: str, step: int) -> None:
    if step % 3 == 0:
        journal.event(call_id, "node", f"node{step}", {})
    elif step % 3 == 1:
        journal.event(call_id, "dtmf", f"node{step}", {"digits": "1"})
    else:
        journal.event(call_id, "speech", f"node{step}", {"text": "кезек", "confidence": 0.87})


class NoJournal:
    """Stands in for the journal in the run without one: the same calls, timed the same way."""

    def call_started(self, *args) -> None:
        pass

    def event(self, *args) -> None:
        pass

    def call_ended(self, *args) -> None:
        pass


class Load:
    """One run's callers and what they measure: the loop's CPU inside the journal's calls."""

    def __init__(self, tag: str, journal, pause: tuple[float, float], spread: float) -> None:
        self.tag, self.journal, self.pause, self.spread = tag, journal, pause, spread
        self.in_calls = 0.0  # seconds of this thread's CPU inside journal calls
        self.delays: list[float] = []
        self.overhead = clock_overhead()
        if journal is not None:
            # What was handed over leaves for the writer from a timer on the loop: time that too.
            ship = journal._ship
            journal._ship = lambda: self.timed(ship)

    def timed(self, fn, *args):
        start = time.thread_time()
        result = fn(*args)
        self.in_calls += time.thread_time() - start - self.overhead
        return result

    async def caller(self, n: int) -> None:
        journal = self.journal or NoJournal()
        rng = random.Random(n)
        await asyncio.sleep(rng.uniform(0, self.spread))
        call_id = f"{self.tag}-{n}"
        self.timed(
            journal.call_started,
            call_id,
            time.time(),
            f"+7701{n:07d}",
            "kk",
            "1414",
        )
        for step in range(STEPS):
            await asyncio.sleep(rng.uniform(*self.pause))
            self.timed(step_event, journal, call_id, step)
        sent = time.perf_counter()
        outcome = OUTCOMES[n % len(OUTCOMES)]
        ack = self.timed(journal.call_ended, call_id, outcome, f"topic{n % 7}")
        if self.journal is not None and n % SAMPLE_EVERY == 0:
            await ack
            self.delays.append(time.perf_counter() - sent)


def clock_overhead() -> float:
    """What a pair of thread_time() reads adds to the interval between them."""
    samples = []
    for _ in range(2000):
        start = time.thread_time()
        samples.append(time.thread_time() - start)
    return statistics.median(samples)


async def run(
    calls: int, settings: Settings | None, pause: tuple[float, float], spread: float
) -> dict[str, float]:
    pacer = GcPacer()  # garbage collection as `ivr serve` paces it
    pacer.start()
    try:
        return await _run(calls, settings, pause, spread)
    finally:
        pacer.stop()


async def _run(
    calls: int, settings: Settings | None, pause: tuple[float, float], spread: float
) -> dict[str, float]:
    state = await open_state(settings, journal_writer=settings.journal_writer) if settings else None
    writer = state.db.writer_thread_id if state else None
    child = state.rows.pid if state and state.rows else None  # the journal's writer process
    load = Load(f"bench{time.time_ns()}", state.journal if state else None, pause, spread)
    loop0, writer0, process0, child0 = time.thread_time(), thread_cpu(writer), process_cpu(), child_cpu(child)
    await asyncio.gather(*(load.caller(n) for n in range(calls)))
    if state:
        await state.journal.flush()
    in_child = child_cpu(child) - child0
    figures = {
        "in_calls": load.in_calls,
        "loop": time.thread_time() - loop0,
        "writer": thread_cpu(writer) - writer0 + in_child,
        "process": process_cpu() - process0 + in_child,
    }
    if state:
        figures["commits"] = state.db.batches + (state.rows.commits if state.rows else 0)
        delays = sorted(load.delays)
        figures["ack_p50"] = statistics.median(delays)
        figures["ack_p99"] = delays[max(0, int(len(delays) * 0.99) - 1)]
        stored = await state.db.read(lambda tx: stored_events(tx, load.tag))
        assert stored == calls * STEPS, f"{stored} events stored, expected {calls * STEPS}"
        await state.close()
    return figures


def stored_events(tx, tag: str) -> int:
    """Events stored for this run's calls: one row per hand-over, its events a JSON array."""
    runs = tx.all("SELECT events FROM call_event_runs WHERE call_id LIKE ?", (tag + "-%",))
    return sum(len(json.loads(events)) for (events,) in runs)


def spread_of(values: list[float], scale: float = 1e3, digits: int = 3) -> str:
    return " / ".join(
        f"{v * scale:.{digits}f}" for v in (min(values), statistics.median(values), max(values))
    )


def measure(
    name: str, calls: int, runs: int, make_settings, pause: tuple[float, float], spread: float
) -> None:
    in_calls, loop, writer, process, commits, p50, p99 = [], [], [], [], [], [], []
    for _ in range(runs):
        base = asyncio.run(run(calls, None, pause, spread))
        loaded = asyncio.run(run(calls, make_settings(), pause, spread))
        in_calls.append((loaded["in_calls"] - base["in_calls"]) / calls)
        loop.append((loaded["loop"] - base["loop"]) / calls)
        writer.append(loaded["writer"] / calls)
        process.append((loaded["process"] - base["process"]) / calls)
        commits.append(loaded["commits"])
        p50.append(loaded["ack_p50"])
        p99.append(loaded["ack_p99"])
    print(
        f"{name}: {calls} calls x {WRITES} writes, {runs} runs, per call in ms, min / median / max\n"
        f"  event loop   {spread_of(in_calls)} in the journal's calls; "
        f"{spread_of(loop)} for the whole loop thread (noisy)\n"
        f"  writer       {spread_of(writer)}\n"
        f"  process      {spread_of(process)}\n"
        f"  commits {spread_of(commits, 1, 0)}; end -> durable p50 {spread_of(p50, 1e3, 1)} ms, "
        f"p99 {spread_of(p99, 1e3, 1)} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, nargs=2, default=(20, 150), metavar=("MIN", "MAX"))
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which calls start")
    parser.add_argument(
        "--pg", metavar="URL", help="PostgreSQL URL (default: a throwaway server from tests/pg.py)"
    )
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--writer", choices=("thread", "process"), default="thread", help="who writes the journal's rows"
    )
    args = parser.parse_args()
    pause = (args.pause_ms[0] / 1000, args.pause_ms[1] / 1000)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(1_000_000))
            measure(
                f"SQLite, the writer {args.writer}",
                args.calls,
                args.runs,
                lambda: Settings(state_dir=f"{tmp}/{next(counter)}", journal_writer=args.writer),
                pause,
                args.spread,
            )
    if args.no_pg:
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import fresh_database_url

    if args.pg:
        make = lambda: Settings(database_url=args.pg, journal_writer=args.writer)  # noqa: E731
    else:
        try:
            fresh_database_url()
        except BaseException as exc:  # pytest.skip outside pytest: no server binaries here
            print(f"PostgreSQL: skipped: {exc}")
            return 0
        make = lambda: Settings(database_url=fresh_database_url(), journal_writer=args.writer)  # noqa: E731
    measure(f"PostgreSQL, the writer {args.writer}", args.calls, args.runs, make, pause, args.spread)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
