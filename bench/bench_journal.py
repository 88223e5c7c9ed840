"""Journal write cost per call at 1,000 concurrent calls, on SQLite and PostgreSQL.

Each simulated call starts, visits nodes and sends inputs (12 events) with a pause before each step
as a caller listening to a prompt would, then ends; calls start spread over a few seconds. The same
load runs once without a journal, so the difference in this process's CPU time (utime + stime, the
writer thread included) is what the journal costs per call. Also printed: commit count (group
commit), and the acknowledgement delay of events (submit -> durable), p50/p99.
PostgreSQL's own server CPU is not in these figures (it is another process).

    .venv/bin/python bench/bench_journal.py [--calls 1000] [--pause-ms 20 150] [--pg URL | --no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ivr.config import Settings
from ivr.journal import OUTCOMES, open_state

STEPS = 12


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def caller(n: int, journal, pause: tuple[float, float], spread: float, delays: list[float]) -> None:
    rng = random.Random(n)
    await asyncio.sleep(rng.uniform(0, spread))
    call_id = f"bench-{n}"
    if journal is not None:
        journal.call_started(call_id, time.time(), f"+7701{n:07d}", "kk", "1414")
    for step in range(STEPS):
        await asyncio.sleep(rng.uniform(*pause))
        if journal is None:
            continue
        sent = time.perf_counter()
        if step % 3 == 0:
            ack = journal.event(call_id, "node", f"node{step}", {})
        elif step % 3 == 1:
            ack = journal.event(call_id, "dtmf", f"node{step}", {"digits": "1"})
        else:
            ack = journal.event(call_id, "speech", f"node{step}", {"text": "кезек", "confidence": 0.87})
        if step == STEPS - 1:  # sample the acknowledgement delay of the last event of each call
            await ack
            delays.append(time.perf_counter() - sent)
    if journal is not None:
        journal.call_ended(call_id, OUTCOMES[n % len(OUTCOMES)], f"topic{n % 7}")


async def run(
    calls: int, settings: Settings | None, pause: tuple[float, float], spread: float
) -> dict[str, float]:
    state = await open_state(settings) if settings else None
    delays: list[float] = []
    cpu0, wall0 = cpu(), time.perf_counter()
    await asyncio.gather(
        *(caller(n, state.journal if state else None, pause, spread, delays) for n in range(calls))
    )
    if state:
        await state.journal.flush()
    figures = {"cpu": cpu() - cpu0, "wall": time.perf_counter() - wall0}
    if state:
        figures["batches"] = state.db.batches
        delays.sort()
        figures["ack_p50"] = statistics.median(delays)
        figures["ack_p99"] = delays[int(len(delays) * 0.99) - 1]
        stored = await state.db.read(lambda tx: tx.one("SELECT COUNT(*) FROM call_events")[0])
        assert stored == calls * STEPS, f"{stored} events stored, expected {calls * STEPS}"
        await state.close()
    return figures


def report(name: str, calls: int, base: dict[str, float], loaded: dict[str, float]) -> None:
    extra = (loaded["cpu"] - base["cpu"]) / calls
    print(
        f"{name:<11} {calls} calls x {STEPS + 2} writes: journal CPU {extra * 1e3:.3f} ms/call "
        f"({extra / (STEPS + 2) * 1e6:.1f} us/write), process CPU {loaded['cpu'] / calls * 1e3:.3f} ms/call "
        f"(without journal {base['cpu'] / calls * 1e3:.3f}); wall {loaded['wall']:.2f} s; "
        f"{int(loaded['batches'])} commits; ack delay p50 {loaded['ack_p50'] * 1e3:.1f} ms "
        f"p99 {loaded['ack_p99'] * 1e3:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--pause-ms", type=float, nargs=2, default=(20, 150), metavar=("MIN", "MAX"))
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which calls start")
    parser.add_argument(
        "--pg", metavar="URL", help="PostgreSQL URL (default: a throwaway server from tests/pg.py)"
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    pause = (args.pause_ms[0] / 1000, args.pause_ms[1] / 1000)

    base = asyncio.run(run(args.calls, None, pause, args.spread))
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(run(args.calls, Settings(state_dir=tmp), pause, args.spread))
        report("SQLite", args.calls, base, sqlite)
    if args.no_pg:
        return 0
    url = args.pg
    if not url:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pg import fresh_database_url

        try:
            url = fresh_database_url()
        except BaseException as exc:  # pytest.skip outside pytest: no server binaries here
            print(f"PostgreSQL  skipped: {exc}")
            return 0
    postgres = asyncio.run(run(args.calls, Settings(database_url=url), pause, args.spread))
    report("PostgreSQL", args.calls, base, postgres)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
