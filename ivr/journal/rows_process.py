"""The journal's rows written by a child process, so that no second thread in the engine competes with
the event loop for the GIL.

Why: the writer thread (ivr.journal.db) holds the GIL for its Python work and takes it back after every
SQLite step; at 5,000 lines the event loop then waits for it (perf caught the loop waiting for the GIL
while the writer waited for it too, a CPU idle). Alternating runs at 5,000 lines, six rounds: p99 at or
under the thread's in four (README, "What a call costs"). What it costs: the loop pickles what it ships
(0.04 ms a call more of the loop's CPU in bench_journal.py), so it is an option
(`journal_writer = "process"`), not the default.

Only the journal's shipments (db.Rows: starts, events, ends) go this way; every other write (callback
requests, incidents: few, and awaited for their results) stays on the writer thread.

The pipes, no sockets:
- parent -> child (its stdin): pickles, each after its length (4 bytes, little-endian). The first says
  where to write: (dialect, location, synchronous, batch window, rows held at most, SQLite's busy
  timeout); then one per shipment: (ticket, the Rows of its starts, events and ends).
  The location (a PostgreSQL URL may hold a password) never appears on a command line.
- child -> parent (its stdout): lines. `ready` once connected (the parent waits for it). `ok N`:
  everything up to ticket N is committed (or failed). `failed N text`:
  ticket N could not be written (sent before the `ok` that covers it), or was dropped while held.
  `held R D text`: the database does not answer (text), R rows are held and D were dropped so far
  (sent after each batch while rows are held, and once with R 0 when they are written).
- the child gathers what arrives within the batch window into one transaction (db.write_batch, as the
  writer thread does), and ends when its stdin does: it writes what it has read, then exits. So a
  `kill -9` of the engine loses only what the journal had not shipped yet: what is in the pipe is
  still written, unless the database does not answer: then the child tries what it holds once more,
  and what is still held is lost.
- during an outage the child holds the shipments (ivr.journal.held, as the writer thread would) and
  keeps reading the pipe, so the engine's side never blocks or buffers; the parent keeps each shipment
  until it is acknowledged (to hand it to the thread should the child die), so the held rows are in
  both processes, both bounded by the same cap: a dropped shipment is `failed`, then acknowledged.

If the child cannot start or dies, the rows it has not acknowledged go to the writer thread, and every
later shipment too: nothing acknowledged is lost, one error line says what happened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import select
import struct
import sys
import time
from collections.abc import Awaitable
from typing import Any

from ivr.journal.db import (
    CLOSE_WITHIN,
    HOLD_ROWS,
    Ack,
    BatchReport,
    Database,
    Dialect,
    Rows,
    StateError,
    Target,
    WriteHeld,
    settle,
)

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")
_MAX_FRAME = 1 << 28  # a shipment is a few hundred KiB at most; anything near this is not ours
_KEEP_FAILURES = 10_000
_READY_WITHIN = 30.0  # seconds for the child to start and connect (a cold start imports the package)
# Not `-m ivr.journal.rows_process`: the package imports this module before runpy would run it again.
_CHILD = "import sys; from ivr.journal.rows_process import main; sys.exit(main())"


class RowsProcess:
    """The parent's side: `await start()`, `submit_all(shipment)` (returns an awaitable acknowledgement),
    `await flush()`, `await close()`."""

    def __init__(self, db: Database, hold_rows: int = HOLD_ROWS) -> None:
        self._db = db
        self._hold_rows = hold_rows
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_ticket = 0
        self._acked = 0
        self._unacked: dict[int, list[Rows]] = {}  # shipments by ticket, in order
        self._failures: dict[int, str] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._handed_back: Awaitable[Any] | None = None  # the thread's ack of the last rows handed back
        self._relay: asyncio.Task[None] | None = None
        self._closing = False
        self.broken = False  # the writer thread has taken over
        self.commits = 0  # the child's transactions so far (benchmarks)
        self._outage = ""  # the child's last word on a database that does not answer, while it holds rows
        self._held_rows = 0
        self._dropped_rows = 0

    @property
    def pending_writes(self) -> int:
        """Shipments sent and not yet acknowledged (the journal backlog /metrics reports)."""
        return len(self._unacked)

    @property
    def held_rows(self) -> int:
        """Rows the child holds because the database does not answer (the thread counts its own)."""
        return self._held_rows

    @property
    def dropped_rows(self) -> int:
        """Rows the child dropped while holding them, over the cap (the thread counts its own)."""
        return self._dropped_rows

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        db = self._db
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except Exception as exc:  # no executable, no child watcher...: the thread is always there
            log.error(
                "journal: the writer process did not start (%s); the writer thread writes its rows", exc
            )
            self.broken = True
            return
        self._send(
            (
                db.dialect.value,
                db.target.location,
                db.synchronous,
                db.batch_window,
                self._hold_rows,
                db.busy_timeout,
            )
        )
        # Ready once it has connected: a child that cannot (or takes too long) leaves the rows to the
        # thread from the start.
        assert self._process.stdout is not None
        try:
            first: bytes | None = await asyncio.wait_for(self._process.stdout.readline(), _READY_WITHIN)
        except TimeoutError:
            first = None
        if first != b"ready\n":
            if self._process.returncode is None and first != b"":  # still running: stop it
                self._process.kill()
            code = await self._process.wait()
            if first is None:
                reason = f"no word from it within {_READY_WITHIN:g} s"
            elif first:
                reason = f"it said {first[:80]!r}"
            else:
                reason = f"it ended with status {code}; its error is in the log above"
            log.error(
                "journal: the writer process did not start (%s); the writer thread writes its rows", reason
            )
            self.broken = True
            return
        self._reader = asyncio.get_running_loop().create_task(self._read_acknowledgements())

    def submit_all(self, shipment: list[Rows]) -> Awaitable[Any]:
        """Send one shipment (the journal's starts, events and ends since the last), committed together."""
        if self.broken:
            return self._db.submit_all(shipment)
        self._next_ticket += 1
        ticket = self._next_ticket
        self._unacked[ticket] = shipment
        self._send((ticket, shipment))
        return Ack(self.wait, ticket)

    async def flush(self) -> None:
        """Wait until every shipment submitted so far is committed."""
        await self.wait(self._next_ticket)

    async def wait(self, ticket: int) -> None:
        if ticket > self._acked:
            if self.broken:
                if self._handed_back is not None:
                    await self._handed_back
            elif self._outage:  # no one waits for an outage to end
                raise _held(self._outage)
            else:
                future = asyncio.get_running_loop().create_future()
                self._waiters.append((ticket, future))
                await future
        message = self._failures.get(ticket)
        if message is not None:
            raise StateError(f"journal rows not written: {message}")

    async def close(self, timeout: float = CLOSE_WITHIN) -> None:
        """End the child's input and wait for it to write what it has (during an outage: one more try,
        then what it holds is lost), `timeout` seconds at most; rows it did not acknowledge go to the
        writer thread (which must still be open)."""
        self._closing = True
        process, reader = self._process, self._reader
        if process is None or reader is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout)
        except TimeoutError:
            log.error("journal: the writer process did not finish within %g s; stopping it", timeout)
            process.kill()
            await reader

    # -- the parent's side of the pipes ----------------------------------------------------------

    def _send(self, message: object) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        if process.stdin.is_closing():
            return  # the child is gone: the reader hands its rows to the thread
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(_LENGTH.pack(len(data)) + data)
        except (ConnectionError, RuntimeError):  # gone meanwhile: the reader hands its rows to the thread
            return

    async def _read_acknowledgements(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            while line := await process.stdout.readline():
                self._on_line(line.decode(errors="replace").rstrip("\n"))
        except Exception:
            log.exception("journal: reading the writer process's acknowledgements failed")
        code = await process.wait()
        if self._closing and not self._unacked:
            return
        log.error(
            "journal: the writer process ended (exit status %s) with %d shipments not acknowledged; "
            "the writer thread writes them and every later one",
            code,
            len(self._unacked),
        )
        self._hand_back()

    def _on_line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        number = rest.partition(" ")[0]
        if word == "held":
            self._on_held(rest)
            return
        if word not in ("ok", "failed") or not number.isdigit():
            log.warning("journal: unexpected line from the writer process: %r", line[:80])
            return
        if word == "ok":
            self.commits += 1
            ticket = int(number)
            unacked = self._unacked
            while unacked:
                first = next(iter(unacked))
                if first > ticket:
                    break
                del unacked[first]
            self._acked = max(self._acked, ticket)
            self._wake()
        else:
            self._failures[int(number)] = rest.partition(" ")[2]
            while len(self._failures) > _KEEP_FAILURES:
                del self._failures[next(iter(self._failures))]

    def _on_held(self, rest: str) -> None:
        held, dropped, error = [*rest.split(" ", 2), "", ""][:3]
        if not held.isdigit() or not dropped.isdigit():
            log.warning("journal: unexpected line from the writer process: %r", ("held " + rest)[:80])
            return
        self._held_rows, self._dropped_rows = int(held), int(dropped)
        self._outage = error if self._held_rows else ""
        if self._outage:
            waiters, self._waiters = self._waiters, []
            settle([(future, None, _held(self._outage)) for _, future in waiters])

    def _wake(self) -> None:
        still = []
        for ticket, future in self._waiters:
            if ticket > self._acked:
                still.append((ticket, future))
            elif not future.done():
                future.set_result(None)
        self._waiters = still

    def _hand_back(self) -> None:
        """The child is gone: its unacknowledged rows, and every later shipment, go to the thread."""
        self.broken = True
        self._outage = ""
        self._held_rows = 0
        last: Awaitable[Any] | None = None
        for shipment in self._unacked.values():
            last = self._db.submit_all(shipment)
        self._unacked.clear()
        waiters, self._waiters = self._waiters, []
        if last is None:
            settle([(future, None, None) for _, future in waiters])
            return
        self._handed_back = last
        # Kept: the loop holds only a weak reference to a task.
        self._relay = asyncio.get_running_loop().create_task(_relay(last, waiters))


def _held(error: str) -> WriteHeld:
    return WriteHeld(
        f"not written yet: {error}; the journal's writer process holds it and writes it when the "
        "database answers"
    )


async def _relay(ack: Awaitable[Any], waiters: list[tuple[int, asyncio.Future[None]]]) -> None:
    """Complete the waiters of rows handed back once the thread has committed them."""
    failure: BaseException | None = None
    try:
        await ack
    except Exception as exc:
        failure = exc
    settle([(future, None, failure) for _, future in waiters])


# -- the child ------------------------------------------------------------------------------------


class FrameReader:
    """Length-prefixed pickles from a file descriptor, read as they come."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def read(self, timeout: float | None) -> tuple[list[Any], bool]:
        """The frames that arrive within `timeout` seconds (None: wait for one), and whether the
        stream has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frames = self._frames()
            if frames:
                return frames, False
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                return [], False
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                if self._buffer:
                    log.error(
                        "the journal's pipe ended inside a shipment (%d bytes dropped)", len(self._buffer)
                    )
                return [], True
            self._buffer += chunk

    def _frames(self) -> list[Any]:
        frames = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, start)
            if size > _MAX_FRAME:
                raise StateError(f"a shipment of {size} bytes on the journal's pipe: not from the engine")
            end = start + _LENGTH.size + size
            if len(buffer) < end:
                break
            frames.append(pickle.loads(buffer[start + _LENGTH.size : end]))
            start = end
        del buffer[:start]
        return frames


def serve(reader: FrameReader, acknowledge: Any) -> None:
    """The child's loop: a batch per batch window, acknowledged after its commit, until the end. While
    the database does not answer, what arrives is held and the reads wait for the next try at most."""
    setup, ended = reader.read(None)
    if not setup:
        return
    dialect, location, synchronous, window, hold_rows, busy_timeout = setup.pop(0)
    db = Database(
        Target(Dialect(dialect), location),
        batch_window=window,
        synchronous=synchronous,
        hold_rows=hold_rows,
        busy_timeout=busy_timeout,
    )
    db.connect_for_batches()
    acknowledge(b"ready\n")
    shipments: list[tuple[int, list[Rows]]] = setup
    told = _Told()
    try:
        while shipments or not ended:
            if not shipments:
                # Asleep until the engine ships, or until what is held is due to be tried again.
                shipments, ended = reader.read(db.retry_in())
            if shipments and not ended:
                # Sleep through the batch window rather than wait on the pipe: what the engine ships
                # meanwhile wakes nobody, one wake-up a batch as the writer thread has.
                time.sleep(window)
                more, ended = reader.read(0)
                shipments.extend(more)
            if shipments or db.held_rows:
                report = db.write_batch([(ticket, op) for ticket, ops in shipments for op in ops])
                if lines := told.lines(report):
                    acknowledge(lines)
                shipments = []
        if lines := told.lines(db.finish_batches()):
            acknowledge(lines)
    finally:
        db.close_for_batches()


class _Told:
    """What the child has told the engine: each report as the lines that say what changed."""

    def __init__(self) -> None:
        self.resolved = 0
        self.held = 0

    def lines(self, report: BatchReport) -> bytes:
        lines = [f"failed {ticket} {_one_line(exc)}\n" for ticket, exc in report.failed.items()]
        if report.resolved_through > self.resolved:
            self.resolved = report.resolved_through
            lines.append(f"ok {report.resolved_through}\n")
        if report.held_rows or self.held:
            self.held = report.held_rows
            lines.append(f"held {report.held_rows} {report.dropped_rows} {report.outage or '-'}\n")
        return "".join(lines).encode()


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def _acknowledge(data: bytes) -> None:
    try:
        os.write(1, data)
    except BrokenPipeError:  # the engine is gone; what it sent is still written
        pass


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s (journal writer process): %(message)s"
    )
    try:
        serve(FrameReader(0), _acknowledge)
    except Exception:
        log.exception("the journal's writer process failed")
        return 1
    return 0
