"""The journal writer's CPU per call, in a tight loop: the rows of 1,000 ended calls of 12 events each,
written as the writer writes them (insert_calls, insert_events, end_calls: one transaction each, as
one batch of each kind), SQLite and PostgreSQL.

Each figure is the writer thread's CPU time (CLOCK_THREAD_CPUTIME_ID) across the awaited write:
statements, JSON, COPY, commit, the batch's own handling. Printed as min / median / max over the runs,
in microseconds per call. PostgreSQL's own server CPU is not in it (another process).

    .venv/bin/python bench/bench_journal_writer.py [--calls 1000] [--runs 9] [--no-pg] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.journal import open_state
from ivr.journal.db import Rows
from ivr.journal.timeutil import zone
from ivr.journal.writes import end_calls, insert_calls, insert_events

EVENTS = 12
TZ = zone("Asia/Almaty")


def call_rows(tag: str, calls: int) -> dict[str, tuple[Any, list[Any]]]:
    """What the journal hands the writer for `calls` calls: starts, each call's events as one run, ends."""
    starts, runs, ends = [], [], []
    for n in range(calls):
        call_id, at = f"{tag}-{n}@10.0.0.1", 1.764e9 + n
        starts.append((call_id, at, f"+7701{n:07d}", "kk", "1414", "engine", TZ))
        runs.append((call_id, [event(seq, at + seq * 0.5) for seq in range(1, EVENTS + 1)]))
        ends.append((call_id, at + 30, "self_served", f"topic{n % 7}", "engine", TZ))
    return {"starts": (insert_calls, starts), "events": (insert_events, runs), "ends": (end_calls, ends)}


def event(seq: int, at: float) -> tuple[Any, ...]:
    if seq == 3:
        return (seq, at, "language", "welcome", {"language": "ru", "how": "dtmf"})
    kind, data = (
        ("node", None),
        ("dtmf", {"digits": "1"}),
        ("speech", {"text": "кезек", "confidence": 0.87}),
    )[seq % 3]
    return (seq, at, kind, f"node{seq}", data)


def writer_cpu(thread_id: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread_id))


async def run(settings: Settings, calls: int, runs: int) -> dict[str, list[float]]:
    state = await open_state(settings)
    figures: dict[str, list[float]] = {"starts": [], "events": [], "ends": [], "total": []}
    try:
        writer = state.db.writer_thread_id
        for r in range(runs):
            total = 0.0
            for kind, (write, rows) in call_rows(f"w{r}-{time.time_ns()}", calls).items():
                before = writer_cpu(writer)
                await state.db.submit(Rows(write, rows))
                spent = (writer_cpu(writer) - before) / calls * 1e6
                figures[kind].append(spent)
                total += spent
            figures["total"].append(total)
    finally:
        await state.close()
    return figures


def report(name: str, calls: int, figures: dict[str, list[float]]) -> None:
    print(
        f"{name}: writer CPU per call, us, min / median / max of {len(figures['total'])} runs of {calls} calls"
    )
    for kind, values in figures.items():
        print(f"  {kind:7s} {min(values):6.1f} / {statistics.median(values):6.1f} / {max(values):6.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            report("SQLite", args.calls, asyncio.run(run(Settings(state_dir=tmp), args.calls, args.runs)))
    if args.no_pg:
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import fresh_database_url

    try:
        url = fresh_database_url()
    except BaseException as exc:  # pytest.skip outside pytest: no server binaries here
        print(f"PostgreSQL: skipped: {exc}")
        return 0
    report("PostgreSQL", args.calls, asyncio.run(run(Settings(database_url=url), args.calls, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
