"""Do open wallboards slow the calls? Paced-load turnaround p99 of the full engine with its HTTP side on,
with no board open and with 20 boards open and refreshing (server-sent events, one snapshot a second:
live calls, AMI queue figures, today's journal figures, incidents).

The engine (menus/1414.yaml, SQLite journal, AMI, clock fixed inside opening hours) runs in a child
process, as `ivr serve --http` would, the fake Asterisk manager (ivr.testing.fake_ami) in another; the
load generator (bench/loadgen.py) and the boards' browsers (aiohttp clients reading /events) in this one. The two variants
alternate, each run with a fresh engine; min/median/max over the runs are printed, since one run's p99
on a shared machine moves by more than the effect being measured.

    .venv/bin/python bench/bench_board.py                 # 3 runs of each, 1,000 lines: about 2 minutes
    .venv/bin/python bench/bench_board.py --runs 5 --lines 2000
    .venv/bin/python bench/bench_board.py --quick          # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agi import ENGINE_ANSWERS, check_flow, open_hours_clock, own_cpu_seconds, raise_fd_limit, run_loop
from loadgen import FakeAsterisk, human_pause, paced, percentile, saturate

HOST = "127.0.0.1"
BOARDS = (0, 20)


# --- server side (child process) ------------------------------------------------------------------
async def _serve(state_dir: str, ami_port: int) -> None:
    from ivr.config import AmiSettings, HttpSettings
    from ivr.engine.app import Engine
    from ivr.engine.services import EngineServices
    from ivr.engine.simulate import FixedHours
    from ivr.http.server import BoardServer
    from ivr.testing.engine_fixtures import project_settings

    Path(state_dir, "spool").mkdir(parents=True, exist_ok=True)
    ami = AmiSettings(host=HOST if ami_port else "", port=ami_port, user="ivr", secret="test")
    settings = project_settings(Path(state_dir), ami=ami)
    services = EngineServices(settings=settings, hours=FixedHours(True), clock=open_hours_clock())
    engine = Engine(settings, services)
    port = await engine.start()
    if services.ami is not None:
        await services.ami.wait_connected(5)
    board = BoardServer(engine, HttpSettings(bind=f"{HOST}:0", name="bench"))
    http_port = await board.start()
    engine.pace_garbage_collection()  # as `ivr serve` does after start-up
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"READY {port} {http_port}", flush=True)
    await stop.wait()
    snapshots = board.feed.snapshots
    await board.stop()
    await engine.stop(2.0)
    print("STATS " + json.dumps({"snapshots": snapshots, **attrs.asdict(engine.server.stats)}), flush=True)


async def _serve_ami() -> None:
    """The fake Asterisk manager in a process of its own, so its replies wait neither for the engine's
    event loop nor for the load generator's."""
    from ivr.testing.board_fixtures import stock_queues
    from ivr.testing.fake_ami import FakeAmi

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeAmi("ivr", "test") as ami:
        stock_queues(ami)
        print(f"READY {ami.port}", flush=True)
        await stop.wait()


def serve_main(state_dir: str, ami_port: int) -> int:
    import uvloop

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(_serve(state_dir, ami_port))
    return 0


# --- parent side ----------------------------------------------------------------------------------
@attrs.define
class Run:
    boards: int
    p50_ms: float
    p99_ms: float
    calls: int
    failed: int
    server_cpu_s: float
    board_messages: int
    snapshots: int


class Child:
    """A child process of this script that prints READY and its ports, and stops on SIGTERM."""

    def __init__(self, workdir: Path, label: str, *flags: str) -> None:
        self.log = (workdir / f"{label}.log").open("wb")
        command = [sys.executable, __file__, *flags]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log)
        line = self.process.stdout.readline().decode()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"{label} did not start; see {workdir / label}.log")
        self.ports = [int(port) for port in line.split()[1:]]
        self.stats: dict[str, int] = {}

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        self.log.close()
        for line in out.decode().splitlines():
            if line.startswith("STATS "):
                self.stats = json.loads(line[6:])


async def open_board(http_port: int, received: list[int], index: int) -> None:
    """One wallboard: the page once, then its live feed, as a browser keeps it open."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{HOST}:{http_port}/") as page:
            await page.read()
        async with session.get(f"http://{HOST}:{http_port}/events") as feed:
            async for line in feed.content:
                if line.startswith(b"data: "):
                    received[index] += 1


async def measure(
    engine: Child, boards: int, lines: int, ramp: float, hold: float, pause: tuple[float, float]
) -> Run:
    commands, _ = await check_flow("engine", engine.ports[0])
    warm = FakeAsterisk(HOST, engine.ports[0], expect_commands=len(commands))
    await saturate(warm, ENGINE_ANSWERS, 200, 100)
    received = [0] * boards
    viewers = [asyncio.create_task(open_board(engine.ports[1], received, i)) for i in range(boards)]
    while boards and min(received) == 0:  # every board is open and has its first snapshot
        await asyncio.sleep(0.05)
    asterisk = FakeAsterisk(HOST, engine.ports[0], expect_commands=len(commands), delay=human_pause(*pause))
    cpu0 = engine.cpu_seconds()
    await paced(asterisk, ENGINE_ANSWERS, lines, ramp, hold)
    cpu = engine.cpu_seconds() - cpu0
    for viewer in viewers:
        viewer.cancel()
    await asyncio.gather(*viewers, return_exceptions=True)
    turnarounds = asterisk.stats.turnarounds
    return Run(
        boards=boards,
        p50_ms=1000 * percentile(turnarounds, 0.5),
        p99_ms=1000 * percentile(turnarounds, 0.99),
        calls=asterisk.stats.calls_done,
        failed=asterisk.stats.calls_failed,
        server_cpu_s=cpu,
        board_messages=sum(received),
        snapshots=0,
    )


async def one_run(workdir: Path, label: str, boards: int, args: argparse.Namespace) -> Run:
    ami = Child(workdir, f"{label}-ami", "--serve-ami")
    try:
        state = workdir / label
        state.mkdir(parents=True)
        engine = Child(
            workdir,
            label,
            "--serve",
            "--state-dir",
            str(state),
            "--ami-port",
            str(ami.ports[0] if not args.no_ami else 0),
        )
        try:
            run = await measure(engine, boards, args.lines, args.ramp, args.hold, tuple(args.pause))
        finally:
            await asyncio.to_thread(engine.stop)
    finally:
        await asyncio.to_thread(ami.stop)
    run.snapshots = int(engine.stats.get("snapshots", 0))
    return run


def spread(values: Sequence[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\npaced load: {args.lines} lines, ramp {args.ramp:g} s + hold {args.hold:g} s, callers pause "
        f"{args.pause[0]:g}-{args.pause[1]:g} s; {args.runs} runs each (turnaround = reply written -> next command)"
    )
    print(
        f"{'boards':>6}  {'p99 ms min/median/max':>23}  {'p50 ms median':>13}  {'calls':>6}  {'failed':>6}"
        f"  {'engine CPU s':>12}  {'snapshots':>9}  {'board msgs':>10}"
    )
    medians = {}
    for boards in BOARDS:
        rows = [r for r in runs if r.boards == boards]
        medians[boards] = statistics.median(r.p99_ms for r in rows)
        print(
            f"{boards:>6}  {spread([r.p99_ms for r in rows]):>23}  {statistics.median(r.p50_ms for r in rows):13.2f}"
            f"  {statistics.median(r.calls for r in rows):6.0f}  {sum(r.failed for r in rows):6d}"
            f"  {statistics.median(r.server_cpu_s for r in rows):12.2f}"
            f"  {statistics.median(r.snapshots for r in rows):9.0f}  {statistics.median(r.board_messages for r in rows):10.0f}"
        )
    base, loaded = medians[BOARDS[0]], medians[BOARDS[-1]]
    change = 100 * (loaded - base) / base if base and not math.isnan(base) else math.nan
    print(f"median p99 with {BOARDS[-1]} boards vs none: {change:+.1f}% (target: within 10%)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    p.add_argument("--lines", type=int, default=1000, help="phone lines of the paced load (default 1000)")
    p.add_argument("--ramp", type=float, default=5.0, help="seconds over which lines start (default 5)")
    p.add_argument("--hold", type=float, default=10.0, help="seconds lines keep calling after the ramp")
    p.add_argument("--pause", type=float, nargs=2, default=(0.2, 1.5), metavar=("LOW", "HIGH"))
    p.add_argument("--quick", action="store_true", help="smoke run: 200 lines, short ramp and hold")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-ami", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-ami", action="store_true", help="engine without AMI (no queue figures on the boards)"
    )
    p.add_argument("--state-dir", help=argparse.SUPPRESS)
    p.add_argument("--ami-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.lines, args.ramp, args.hold, args.runs = 200, 1.0, 3.0, 3
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    if args.serve:
        return serve_main(args.state_dir, args.ami_port)
    if args.serve_ami:
        import uvloop

        uvloop.run(_serve_ami())
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench_board-"))
    started, gen0 = time.perf_counter(), own_cpu_seconds()
    runs: list[Run] = []
    for n in range(args.runs):
        for boards in BOARDS:
            run = run_loop(one_run(workdir, f"run{n}-boards{boards}", boards, args))
            print(
                f"  run {n + 1}, {boards:2d} boards: p99 {run.p99_ms:6.2f} ms, p50 {run.p50_ms:5.2f} ms, "
                f"{run.calls} calls ({run.failed} failed), engine CPU {run.server_cpu_s:.2f} s",
                flush=True,
            )
            runs.append(run)  # type: ignore[arg-type]
    report(runs, args)
    print(
        f"({time.perf_counter() - started:.0f} s; load generator CPU {own_cpu_seconds() - gen0:.1f} s; logs in {workdir})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
