"""CPU instructions per call, counted by valgrind's callgrind: the one measure of the AGI layer and the
engine that this shared virtual machine does not move from run to run (CPU time per call moves by
20-30% between runs minutes apart; instruction counts repeat to within a fraction of a percent).

Each case runs twice in a fresh process under callgrind, once placing no calls and once placing
--calls, after the same warm-up; the difference divided by the calls is printed. Counts are user-space
instructions of every thread (the kernel's share, the sockets, is not in them):

  bare-task, fake transport   the flow's 8 commands from one task per call awaiting a future per
                              reply, nothing parsed (bench_agi.py's yardstick), on a transport that
                              answers on the next loop pass: no sockets, no kernel
  ours, fake transport        the AGI layer (AgiServer's connection, parser, Channel) with the same
                              8-command flow, on the same transport
  ours, no commands           the AGI layer's fixed cost: a handler that returns at once
  ours + load generator       sockets, and bench/loadgen.py's fake Asterisk in the same process
  engine + load generator     the whole engine (menus/1414.yaml, SQLite journal, its writer thread)
                              with the same load generator: 14 commands a call

The replies come from bench/loadgen.py's fake Asterisk in every case.

    .venv/bin/python bench/bench_instructions.py [--calls 2000] [--engine-calls 200] [--cases ...]

Needs valgrind (Debian: apt-get install valgrind). Takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agi import (
    ENGINE_ANSWERS,
    SHORT_FLOW_ANSWERS,
    BareTaskFlow,
    route_1414,
    short_flow,
    start_engine,
)
from loadgen import FakeAsterisk, LoadStats, _Call, saturate

from ivr.testing.fake_caller import env_block

CASES = ("bare-task", "ours", "ours-nothing", "ours-sockets", "engine-sockets")
LABELS = {
    "bare-task": "bare-task, fake transport",
    "ours": "ours, fake transport",
    "ours-nothing": "ours, no commands",
    "ours-sockets": "ours + load generator",
    "engine-sockets": "engine + load generator",
}
WARM_CALLS = 20  # before the count starts in both processes: first-call costs (imports, caches) cancel
_COLLECTED = re.compile(rb"Collected : (\d+)")


class FakeTransport(asyncio.Transport):
    """Answers each command as loadgen's fake Asterisk does, on the next pass of the loop; closing
    ends the call. No socket, so the count holds only the server's Python and the loop's."""

    def __init__(self, protocol: asyncio.Protocol, answers: tuple[str, ...], ended: asyncio.Future[None]):
        super().__init__()
        self._protocol = protocol
        self._loop = ended.get_loop()
        self._ended = ended
        self._closing = False
        self._asterisk = _Call(None, answers, LoadStats(), ended, None, 1)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        for line in data.split(b"\n")[:-1]:
            self._loop.call_soon(self._protocol.data_received, self._asterisk._answer(line))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)
            self._loop.call_soon(self._ended.set_result, None)

    def abort(self) -> None:
        self.close()


async def _nothing(channel: object) -> None:
    """A handler that sends no command: what a call costs the AGI layer before its first command."""


async def _fake_transport_calls(case: str, calls: int, concurrency: int = 200) -> None:
    from ivr.agi.server import AgiServer, _AgiConnection

    handler = _nothing if case == "ours-nothing" else short_flow
    server = AgiServer(route_1414(handler))  # never listens here
    loop = asyncio.get_running_loop()
    env = env_block("1414")
    remaining = calls

    async def line() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            # The server's own connection protocol, handed a transport as a listening socket would.
            protocol = BareTaskFlow() if case == "bare-task" else _AgiConnection(server)
            ended = loop.create_future()
            protocol.connection_made(FakeTransport(protocol, SHORT_FLOW_ANSWERS, ended))
            protocol.data_received(env)
            await ended

    await asyncio.gather(*(line() for _ in range(min(concurrency, calls))))


async def _socket_calls(case: str, calls: int) -> None:
    from ivr.engine.gc_pacing import GcPacer

    if case == "engine-sockets":
        engine, port = await start_engine(Path(tempfile.mkdtemp(prefix="bench-instructions-")))
        engine.pace_garbage_collection()
        answers, stop = ENGINE_ANSWERS, engine.stop
    else:
        from ivr.agi.server import AgiServer

        server = AgiServer(route_1414(short_flow), "127.0.0.1", 0)
        port = await server.start()
        GcPacer().start()
        answers, stop = SHORT_FLOW_ANSWERS, server.stop
    asterisk = FakeAsterisk("127.0.0.1", port)
    await saturate(asterisk, answers, WARM_CALLS, 10)
    if calls:
        await saturate(asterisk, answers, calls, 50)
    await stop()


def child(case: str, calls: int) -> None:
    import gc

    import uvloop

    if case.endswith("-sockets"):
        uvloop.run(_socket_calls(case, calls))
        return
    gc.collect()
    gc.freeze()
    gc.disable()  # as the engine runs: collections paced, none in a short run
    uvloop.run(_fake_transport_calls(case, WARM_CALLS))
    if calls:
        uvloop.run(_fake_transport_calls(case, calls))


def instructions(case: str, calls: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        case,
        str(calls),
    ]
    done = subprocess.run(command, capture_output=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{case} under callgrind failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls counted, fake-transport cases")
    parser.add_argument("--engine-calls", type=int, default=200, help="calls counted, socket cases")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions needs valgrind (Debian: apt-get install valgrind)")
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {', '.join(unknown)}: choose from {', '.join(CASES)}")
    print(f"instructions per call (callgrind, user space, every thread; Python {sys.version.split()[0]})")
    counted: dict[str, float] = {}
    for case in cases:
        calls = args.engine_calls if case.endswith("-sockets") else args.calls
        counted[case] = (instructions(case, calls) - instructions(case, 0)) / calls
        print(f"  {LABELS[case]:<28}{counted[case]:>12,.0f}   ({calls} calls)", flush=True)
    if "ours" in counted and "bare-task" in counted:
        # The fake transport's own answering is in both: the difference is the AGI layer's code.
        print(f"  {'ours above bare-task':<28}{counted['ours'] - counted['bare-task']:>12,.0f}")


if __name__ == "__main__":
    main()
