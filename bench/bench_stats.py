"""`ivr stats` over a year of a busy centre: ~2.2 million calls in a SQLite journal.

Generates the calls straight into the `calls` table (bulk insert, synchronous=OFF: this is a
benchmark fixture, not the engine's write path), with daytime peaks, quieter weekends, a few flood
days and incidents, then rebuilds the hourly rollup the journal keeps at call end, and times:
  - the full-year report computed in process (the SQL the command runs), and with each filter;
  - the `ivr stats` command end to end as a subprocess (interpreter start included), with --chart.
Reuses the database in --dir if it is there.

    .venv/bin/python bench/bench_stats.py [--calls 2200000] [--dir /tmp/ivr-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from ivr.journal.db import Database, Target
from ivr.journal.stats import StatsQuery, compute, rebuild_rollup, render_text
from ivr.journal.timeutil import zone

TZ = "Asia/Almaty"
TOPICS = ["egov", "booking", "home_visit", "vehicles", "documents", "outside_remit", "outage", "operator", ""]
TOPIC_WEIGHTS = [22, 25, 8, 10, 12, 9, 6, 5, 3]
OUTCOMES = ["self_served", "queued", "abandoned", "callback", "failed", "transferred"]
OUTCOME_WEIGHTS = [42, 38, 9, 5, 2, 4]
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 20, 22, 21, 18, 19, 20, 19, 17, 14, 9, 6, 4, 3, 2, 1]


def generate(path: Path, calls: int, year: int = 2025) -> None:
    db = Database(Target.from_settings(str(path.parent), ""))
    db.open_sync()  # creates and migrates the schema
    asyncio.run(db.close())
    tz = zone(TZ)
    rng = random.Random(1414)
    days = [date(year, 1, 1) + timedelta(days=n) for n in range(365)]
    floods = set(rng.sample(range(365), 6))  # outage days: everyone calls at once
    day_weights = [
        (3.0 if n in floods else 1.0) * (0.45 if d.weekday() >= 5 else 1.0) for n, d in enumerate(days)
    ]
    midnight = [datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() for d in days]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")
    started = time.perf_counter()
    chunk = 200_000
    sql = (
        "INSERT INTO calls (call_id, started_at, caller, language, menu, engine_id, ended_at, outcome, topic, day, hour) "
        "VALUES (?, ?, ?, ?, '1414', 'bench', ?, ?, ?, ?, ?)"
    )
    for offset in range(0, calls, chunk):
        n = min(chunk, calls - offset)
        day_index = rng.choices(range(365), day_weights, k=n)
        hours = rng.choices(range(24), HOUR_WEIGHTS, k=n)
        topics = rng.choices(TOPICS, TOPIC_WEIGHTS, k=n)
        outcomes = rng.choices(OUTCOMES, OUTCOME_WEIGHTS, k=n)
        languages = rng.choices(("kk", "ru"), (55, 45), k=n)
        rows = []
        for i in range(n):
            start = midnight[day_index[i]] + hours[i] * 3600 + rng.random() * 3600
            rows.append(
                (
                    f"b{offset + i}", start, f"+7701{(offset + i) % 10_000_000:07d}", languages[i],
                    start + 120, outcomes[i], topics[i] or None, days[day_index[i]].isoformat(), hours[i],
                )
            )  # fmt: skip
        connection.execute("BEGIN")
        connection.executemany(sql, rows)
        connection.execute("COMMIT")
    for n in sorted(floods):
        start = midnight[n] + 9 * 3600
        connection.execute(
            "INSERT INTO incidents (text_kk, text_ru, topics, starts_at, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("Жүйеде ақау", "Сбой в системе", '["booking"]', start, start + 6 * 3600, start),
        )
    print(f"generated {calls:,} calls in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    connection.execute("BEGIN")
    rows = rebuild_rollup(_Tx(connection))
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    print(f"rollup rebuilt: {rows:,} rows in {time.perf_counter() - started:.1f} s")


class _Tx:
    """Just enough of ivr.journal.db.Tx over a bare SQLite connection for rebuild_rollup."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params=()):
        return self.connection.execute(sql, params)

    def one(self, sql: str, params=()):
        return self.connection.execute(sql, params).fetchone()

    def all(self, sql: str, params=()):
        return self.connection.execute(sql, params).fetchall()


def time_report(path: Path, query: StatsQuery) -> tuple[float, int]:
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    report = compute(_Tx(connection), query, TZ)
    render_text(report)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, report.calls


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2_200_000)
    parser.add_argument("--dir", type=Path, help="state directory holding ivr.db (generated if missing)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ivr-bench-stats-"))
    path = (args.dir or workdir) / "ivr.db"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, args.calls)
    print(f"database {path}: {path.stat().st_size / 1e6:.0f} MB")
    queries = {
        "full year": StatsQuery(),
        "--lang ru": StatsQuery(language="ru"),
        "--topic booking": StatsQuery(topic="booking"),
        "--from 2025-03-01 --to 2025-05-31": StatsQuery(start=date(2025, 3, 1), end=date(2025, 5, 31)),
    }
    for name, query in queries.items():
        elapsed, calls = time_report(path, query)
        print(f"report {name:<36} {calls:>10,} calls  {elapsed:.3f} s")
    config = workdir / "ivr.toml"
    config.write_text(f'state_dir = "{path.parent}"\ntimezone = "{TZ}"\n')
    chart = workdir / "stats.html"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ivr.journal.cli", "-c", str(config), "stats", "--chart", str(chart)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr)
        return 1
    print(f"`ivr stats --chart` command, full year, process start to exit: {elapsed:.3f} s ({chart})")
    print("\n".join(done.stdout.splitlines()[:2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
