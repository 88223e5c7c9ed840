"""One database behind the shared state: SQLite by default, PostgreSQL for several engines.

Nothing here runs on the event loop. Writes go through one writer thread (the journal's rows through
a writer process of their own, ivr.journal.rows_process, which runs `write_batch`) that commits them in
groups (group commit): the first write of a batch wakes it, it then sleeps `batch_window` seconds
while company gathers (later writes do not wake it: one wake-up per batch, not per write), a write
someone awaits urgently cuts the wait short, and every future of the batch completes only once its
transaction is committed. Reads run on a second thread with their own connection.

While the database cannot be reached (ivr.journal.outage says which failures mean that), the journal's
writes (Write, Rows: no one on a call waits for them) are held in order (ivr.journal.held, at most
`hold_rows` rows, the oldest dropped past that) and tried again with a backoff of up to 5 s, and written
when it answers; a write someone waits for (a function: a callback request, /readyz's round trip) is
tried at once, after what is held, and fails at once when the database still does not answer, as does
awaiting a held write's acknowledgement. Both writers (this thread, and the journal's writer process
through `write_batch`) do this with the same code. Retried rows change nothing twice: every statement
of ivr.journal.writes is idempotent (ON CONFLICT DO NOTHING, the first outcome of a call wins and only
it counts in the rollup), so a batch whose commit was lost on the way back and is written again is
harmless.

SQLite durability: WAL with synchronous=NORMAL. A commit returns once its pages are written to the
WAL file by write(2), i.e. they are in the kernel's page cache; a crash of this process (kill -9,
os._exit, a segfault) cannot lose them, only a power loss or kernel crash can lose the last few
transactions. FULL would add an fsync per commit (one per batch thanks to group commit) to survive
power loss too; `synchronous="FULL"` selects it.

Both backends run the same SQL, written with `?` parameter markers (translated to `%s` for psycopg).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from ivr.journal.held import HeldWrites
from ivr.journal.outage import (
    UNANSWERED,
    Outage,
    Unreachable,
    abandoned_line,
    began_line,
    describe,
    dropping_line,
    ended_line,
    unreachable,
)
from ivr.journal.schema import MIGRATIONS

log = logging.getLogger(__name__)


class StateError(RuntimeError):
    """The state database is unusable or misconfigured; the message says why."""


class DatabaseAway(StateError, Unreachable):
    """The database does not answer (down, refusing connections, locked, full); the message says why."""


class WriteHeld(StateError):
    """Awaited during an outage: the write is held in memory and written when the database answers
    (unless the engine stops first or the cap drops it)."""


class WriteDropped(StateError):
    """The write was held during an outage and then dropped: over the cap, or the engine stopped."""


HOLD_ROWS = 100_000  # rows held at most during an outage (Settings.journal_hold_rows' default)
HELD_ROWS_PER_COMMIT = 20_000  # what is held is written in transactions of about this many rows
CLOSE_WITHIN = 10.0  # seconds close() waits for the writer at most (one last try of what is held)


class Dialect(enum.Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@attrs.frozen
class Write:
    """A plain statement without a result; consecutive ones with the same SQL share one executemany.

    `phase` orders a batch: rows other statements depend on (a call's row) go before the rest;
    within one phase the order of submission is kept.
    """

    sql: str
    params: Sequence[Any]
    phase: int = 1


@attrs.frozen
class Rows:
    """Rows for one writer-side function: every Rows of a batch with the same `run` and phase is
    merged and run as `run(tx, rows)`, once. The function works on the writer thread, so whatever it
    derives from the rows (JSON, local day and hour) costs the event loop nothing; with one
    executemany per statement per batch, a batch of a thousand calls is a handful of statements."""

    run: Callable[[Tx, list[Any]], Any]
    rows: list[Any]
    phase: int = 1


WriteFn = Callable[["Tx"], Any]
Op = Write | Rows | WriteFn

_PHASE_OF_FN = 5


class Tx:
    """The cursor of one transaction, taking `?` parameter markers on both backends."""

    def __init__(self, connection: Any, dialect: Dialect, staged: set[str] | None = None) -> None:
        self.connection = connection
        self.dialect = dialect
        self._cursor = connection.cursor()
        self._staged = set() if staged is None else staged  # temporary tables this connection has

    def stage(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """PostgreSQL: COPY rows into the temporary table `table` (`columns` as in CREATE TABLE),
        emptied at commit, for a set-based statement to read. About 2 us a row on the writer thread,
        against 9-15 for executemany or a multi-row INSERT (psycopg parses the long statement each
        time in Python)."""
        if table not in self._staged:
            self._cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS"
            )
            self._staged.add(table)
        with self._cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def sql(self, text: str) -> str:
        return _translate(text) if self.dialect is Dialect.POSTGRESQL else text

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self.sql(text), params)
        return self._cursor

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        head, values, tail = _split_values(text)
        if self.dialect is Dialect.POSTGRESQL and values:
            # One multi-row INSERT per chunk: one round trip instead of one per row.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                statement = head + ", ".join([values] * len(chunk)) + tail
                self._cursor.execute(self.sql(statement), [value for row in chunk for value in row])
            return
        self._cursor.executemany(self.sql(text), rows)

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(text, params).fetchone()

    def all(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.execute(text, params).fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


_ROWS_PER_INSERT = 1000
_split_cache: dict[str, tuple[str, str, str]] = {}


def _split_values(text: str) -> tuple[str, str, str]:
    """'INSERT ... VALUES (?, ?) ON CONFLICT ...' -> ('INSERT ... VALUES ', '(?, ?)', ' ON CONFLICT ...');
    values is empty for any other statement."""
    found = _split_cache.get(text)
    if found is None:
        marker = text.find(" VALUES (")
        if not text.lstrip().upper().startswith("INSERT") or marker < 0:
            found = (text, "", "")
        else:
            start = marker + len(" VALUES ")
            end = text.index(")", start) + 1
            found = (text[:start], text[start:end], text[end:])
        _split_cache[text] = found
    return found


_translated: dict[str, str] = {}


def _translate(text: str) -> str:
    # Our SQL never holds a literal '?' or '%', so a plain replacement is exact.
    found = _translated.get(text)
    if found is None:
        found = _translated[text] = text.replace("?", "%s")
    return found


@attrs.frozen
class Target:
    """Where the state lives: a SQLite file or a PostgreSQL URL."""

    dialect: Dialect
    location: str  # file path or URL

    @classmethod
    def from_settings(cls, state_dir: str, database_url: str) -> Target:
        url = database_url.strip()
        if url:
            if url.startswith(("postgresql://", "postgres://")):
                return cls(Dialect.POSTGRESQL, url)
            raise StateError(
                f"database_url {url.split('@')[-1]!r}: only postgresql:// URLs are supported; "
                "leave it empty to use SQLite under state_dir"
            )
        return cls(Dialect.SQLITE, str(Path(state_dir) / "ivr.db"))

    def describe(self) -> str:
        if self.dialect is Dialect.SQLITE:
            return f"SQLite {self.location}"
        return "PostgreSQL " + self.location.split("@")[-1]  # never print the password


# How long a SQLite statement waits for another process's lock before it fails (SQLITE_BUSY): for the
# writer, the database is then away, and the journal's rows are held. While it is, each try waits
# OUTAGE_BUSY_TIMEOUT at most, so that a write someone waits for fails in a second or two, not in a minute.
BUSY_TIMEOUT = 30.0
OUTAGE_BUSY_TIMEOUT = 1.0


def _connect_sqlite(path: str, synchronous: str, read_only: bool, busy_timeout: float) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; the writer says BEGIN IMMEDIATE itself so that
    # it holds the write lock from the first statement (claims across processes depend on that).
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    _set_busy_timeout(connection, busy_timeout)
    if not read_only:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(
                f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network filesystem?"
            )
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    if read_only:
        connection.execute("PRAGMA query_only = ON")
    return connection


def _set_busy_timeout(connection: sqlite3.Connection, seconds: float) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


# libpq settings: give up on a connection whose server has not answered for 30 s (sent data not
# acknowledged, or keepalive probes unanswered).
_DEAD_PEER = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "4",
    "tcp_user_timeout": "30000",
}


def _connect_postgresql(url: str, autocommit: bool) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg ships with the test extras
        raise StateError(
            "database_url is PostgreSQL but psycopg is not installed: pip install 'psycopg[binary]'"
        ) from exc
    from psycopg.conninfo import conninfo_to_dict

    # A server whose packets stop (a network gone half-dead) neither answers nor refuses: without these
    # a statement would wait for the kernel's own TCP timeout, some 15 minutes, and the writer with it.
    # The URL's own values, if it has any, win.
    params = {**_DEAD_PEER, **conninfo_to_dict(url)}
    try:
        return psycopg.connect(autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        raise DatabaseAway(f"cannot connect to {url.split('@')[-1]}: {exc}".strip()) from exc


@attrs.define
class _Item:
    op: Op
    future: asyncio.Future[Any] | None  # for functions, whose result someone awaits
    loop: asyncio.AbstractEventLoop | None
    urgent: bool
    ticket: int = 0  # for plain statements: their place in the commit order

    @property
    def rows(self) -> int:
        """Rows it writes (the cap on what is held during an outage counts these)."""
        return len(self.op.rows) if isinstance(self.op, Rows) else 1

    @property
    def holdable(self) -> bool:
        """No one on a call waits for it: held during an outage, not failed."""
        return isinstance(self.op, Write | Rows)


@attrs.frozen
class BatchReport:
    """What `write_batch` did, for the journal's writer process to tell the engine."""

    failed: dict[int, BaseException]  # tickets not written: a bad write, or dropped while held
    resolved_through: int  # every ticket up to this one is committed or failed
    held_rows: int  # rows held, the database not answering
    dropped_rows: int  # rows dropped while held since the writer started
    outage: str  # the database's error while it does not answer, else ""


class Ack:
    """Awaitable acknowledgement of a plain write, or of a journal shipment to the writer process
    (ivr.journal.rows_process): completes once it is committed. `wait(ticket)` is its writer's.

    Costs nothing until awaited, so fire-and-forget journal writes create no future at all: the
    writer publishes the highest committed ticket after each commit and wakes only real waiters.
    """

    __slots__ = ("_ticket", "_wait")

    def __init__(self, wait: Callable[[int], Coroutine[Any, Any, None]], ticket: int) -> None:
        self._wait = wait
        self._ticket = ticket

    def __await__(self) -> Any:
        return self._wait(self._ticket).__await__()


_KEEP_FAILURES = 10_000


_STOP = object()


class Database:
    """Writer thread with group commit, reader thread, migrations on open."""

    def __init__(
        self,
        target: Target,
        *,
        batch_window: float = 0.05,
        max_batch: int = 5000,
        synchronous: str = "NORMAL",
        hold_rows: int = HOLD_ROWS,
        busy_timeout: float | None = None,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StateError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.target = target
        self.dialect = target.dialect
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.synchronous = synchronous.upper()
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout  # SQLite's
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._hurry = threading.Event()  # set by an urgent write: the batch window ends now
        self._writer: threading.Thread | None = None
        self._write_connection: Any = None
        self._staged: set[str] = set()  # temporary tables of the write connection (Tx.stage)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ivr-state-read")
        self._read_connection: Any = None
        self._closed = False
        self.batches = 0  # commits so far, for benchmarks
        # Group-commit acknowledgements of plain writes (see Ack).
        self._ticket_lock = threading.Lock()
        self._last_ticket = 0
        self._committed = 0
        self._failed: dict[int, BaseException] = {}
        self._waiters: dict[asyncio.AbstractEventLoop, list[tuple[int, asyncio.Future[Any]]]] = {}
        self._loops: frozenset[asyncio.AbstractEventLoop] = frozenset()
        self._settled: list[tuple[_Item, Any, BaseException | None]] = []  # futures to complete at publish
        # The writer's side of an outage: written by the writer only; the loop reads _held_error.
        self._seen = 0  # the highest ticket the writer has taken
        self._held: HeldWrites[_Item] = HeldWrites(hold_rows)
        self._outage: Outage | None = None
        self._held_error: str | None = None  # published: awaiting an uncommitted ticket fails at once

    # -- lifecycle -------------------------------------------------------------------------

    def _connect(self, read_only: bool) -> Any:
        if self.dialect is Dialect.SQLITE:
            return _connect_sqlite(self.target.location, self.synchronous, read_only, self.busy_timeout)
        return _connect_postgresql(self.target.location, autocommit=read_only)

    async def open(self) -> None:
        """Connect, apply pending migrations, start the writer; raises StateError when unusable."""
        loop = asyncio.get_running_loop()
        self._write_connection = await loop.run_in_executor(self._reader, self._connect, False)
        await loop.run_in_executor(self._reader, self._migrate)
        self._writer = threading.Thread(target=self._write_loop, name="ivr-state-write", daemon=True)
        self._writer.start()

    def open_sync(self) -> None:
        """The same as open() for scripts without an event loop (benchmarks, bulk loads)."""
        self._write_connection = self._connect(False)
        self._migrate()
        self._writer = threading.Thread(target=self._write_loop, name="ivr-state-write", daemon=True)
        self._writer.start()

    def connect_for_batches(self) -> None:
        """Connect for writes without starting the writer thread: for a process that runs its batches
        itself with `write_batch` (ivr.journal.rows_process). The schema is its parent's business."""
        self._write_connection = self._connect(False)

    def write_batch(self, ops: Sequence[tuple[int, Op]]) -> BatchReport:
        """Run (ticket, op) pairs in one transaction on the calling thread, as the writer thread runs a
        batch (when the batch fails, each op again in a transaction of its own; when the database does
        not answer, they are held). With no ops: a try of what is held, if one is due."""
        self._failed.clear()
        self._write([_Item(op, None, None, False, ticket) for ticket, op in ops])
        return self._report()

    def finish_batches(self) -> BatchReport:
        """The last batch: one more try of what is held; what is still held then is lost (logged)."""
        self._failed.clear()
        self._last_try()
        return self._report()

    def retry_in(self) -> float | None:
        """Seconds until what is held is tried again; None when nothing is held."""
        if self._outage is None or not self._held:
            return None
        return self._outage.retry_in(time.monotonic())

    def _report(self) -> BatchReport:
        return BatchReport(
            failed=dict(self._failed),
            resolved_through=self._resolved_through(),
            held_rows=self._held.rows,
            dropped_rows=self._held.dropped_rows,
            outage=self._outage.error if self._outage is not None else "",
        )

    def close_for_batches(self) -> None:
        if self._write_connection is not None:
            self._write_connection.close()
            self._write_connection = None

    async def close(self, within: float = CLOSE_WITHIN) -> None:
        """Commit everything queued, then stop both threads. While the database does not answer, the
        writer tries once more and gives up; and close() waits for it `within` seconds at most (a
        server that neither answers nor refuses), then leaves it behind (a daemon thread)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            self._queue.put(_STOP)
            writer = self._writer
            await loop.run_in_executor(None, writer.join, max(within, 0.0))
            if writer.is_alive():
                log.error(
                    "the state database's writer did not finish within %g s (the database does not answer): "
                    "what it has not written when the process exits is lost (%d journal rows held)",
                    within,
                    self._held.rows,
                )
        await loop.run_in_executor(self._reader, self._close_reader)
        self._reader.shutdown(wait=True)

    def _close_reader(self) -> None:
        if self._read_connection is not None:
            self._read_connection.close()
            self._read_connection = None

    def _migrate(self) -> None:
        tx = Tx(self._write_connection, self.dialect)
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at DOUBLE PRECISION NOT NULL)"
        )
        if self.dialect is Dialect.POSTGRESQL:
            self._write_connection.commit()
        self._begin()
        try:
            if self.dialect is Dialect.POSTGRESQL:
                # Several engines may start at once; one applies the migrations, the others wait.
                tx.execute("SELECT pg_advisory_xact_lock(1414)")
            row = tx.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(row[0]) if row else 0
            newest = len(MIGRATIONS)
            if current > newest:
                raise StateError(
                    f"{self.target.describe()} has schema version {current}, newer than this program "
                    f"knows ({newest}); upgrade the ivr package"
                )
            for version in range(current + 1, newest + 1):
                for statement in MIGRATIONS[version - 1](self.dialect):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, time.time())
                )
                log.info("state schema migrated to version %d (%s)", version, self.target.describe())
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _begin(self) -> None:
        if self.dialect is Dialect.SQLITE:
            self._write_connection.execute("BEGIN IMMEDIATE")
        # psycopg opens a transaction with the first statement on a non-autocommit connection.

    def _commit(self) -> None:
        self._write_connection.commit() if self.dialect is Dialect.POSTGRESQL else self._write_connection.execute(
            "COMMIT"
        )

    def _rollback(self) -> None:
        self._staged.clear()  # a temporary table created in the failed transaction is gone
        connection = self._write_connection
        try:
            if self.dialect is Dialect.POSTGRESQL:
                if connection is not None and not connection.closed:  # a lost one has nothing to undo
                    connection.rollback()
            elif connection.in_transaction:
                connection.execute("ROLLBACK")
        except Exception as exc:  # the connection may be gone; the next batch reconnects
            if not unreachable(exc):
                log.exception("rollback failed")

    # -- writes ----------------------------------------------------------------------------

    def submit(self, op: Op, *, urgent: bool = False) -> Awaitable[Any]:
        """Queue a write; awaiting the result gives the op's result once it is committed.

        Callers on the call path may drop it: a failure is logged by the writer.
        """
        if self._closed or self._writer is None:
            raise StateError("the state database is closed")
        loop = asyncio.get_running_loop()
        if isinstance(op, Write | Rows):
            if loop not in self._loops:
                self._loops = self._loops | {loop}
            with self._ticket_lock:  # tickets enter the queue in order, whichever thread submits
                self._last_ticket += 1
                ticket = self._last_ticket
                self._queue.put(_Item(op, None, None, urgent, ticket))
            if urgent:
                self._hurry.set()
            return Ack(self._wait_for, ticket)
        future = loop.create_future()
        future.add_done_callback(_retrieve)
        self._queue.put(_Item(op, future, loop, urgent))
        if urgent:
            self._hurry.set()
        return future

    def submit_all(self, ops: Sequence[Rows]) -> Awaitable[Any]:
        """Queue several writes in order (a journal shipment); the last one's acknowledgement covers
        them all, tickets committing in order."""
        ack: Awaitable[Any] | None = None
        for op in ops:
            ack = self.submit(op)
        assert ack is not None, "an empty shipment"
        return ack

    @property
    def writer_thread_id(self) -> int | None:
        """The writer thread's id (benchmarks read its CPU clock)."""
        return self._writer.ident if self._writer is not None else None

    @property
    def pending_writes(self) -> int:
        """Writes submitted and not yet committed, a journal shipment counting as one (the backlog
        /metrics reports; events a call still holds are not in it)."""
        return max(0, self._last_ticket - self._committed)

    @property
    def held_rows(self) -> int:
        """Journal rows held because the database does not answer (0 while it does)."""
        return self._held.rows

    @property
    def dropped_rows(self) -> int:
        """Journal rows dropped while held, over the cap, since the writer started."""
        return self._held.dropped_rows

    async def _wait_for(self, ticket: int) -> None:
        if ticket > self._committed:
            if self._held_error is None:
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                self._waiters.setdefault(loop, []).append((ticket, future))
                # The writer publishes `_committed` and `_held_error` before it looks for waiters:
                # checking again after registering means neither is missed.
                if ticket > self._committed and self._held_error is None:
                    await future
                else:
                    future.cancel()  # _wake skips it
            held = self._held_error
            if ticket > self._committed and held is not None:
                raise _held(held)
        failure = self._failed.get(ticket)
        if failure is not None:
            raise failure

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._waiters.get(loop)
        if not waiters:
            return
        committed = self._committed
        held = self._held_error
        still = []
        for ticket, future in waiters:
            if future.done():
                continue
            if ticket <= committed:
                future.set_result(None)
            elif held is not None:  # no one waits for an outage to end
                future.set_exception(_held(held))
            else:
                still.append((ticket, future))
        self._waiters[loop] = still

    def submit_nowait(self, op: Op) -> None:
        """Queue a write with no one to tell (bulk loads from scripts); committed with its batch."""
        if self._closed or self._writer is None:
            raise StateError("the state database is closed")
        self._queue.put(_Item(op, None, None, False))

    async def write(self, op: Op) -> Any:
        """Run one write now (cutting the batch window short) and return its result once committed."""
        return await self.submit(op, urgent=True)

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed."""
        await self.write(lambda tx: None)

    def _write_loop(self) -> None:
        stopping = False
        backlog = False
        while not stopping:
            try:
                # An idle engine's writer sleeps here; during an outage, until the next try.
                first = self._queue.get(timeout=self.retry_in())
            except queue.Empty:
                self._write([])
                self._publish()
                continue
            if first is _STOP:
                break
            if not (first.urgent or backlog) and self.batch_window > 0:
                # Sleep while the batch gathers: writes put meanwhile wake nobody (a blocking get with
                # a timeout would be woken by each of them); an urgent one sets _hurry.
                self._hurry.wait(self.batch_window)
            self._hurry.clear()
            batch = [first]
            while True:
                if len(batch) >= self.max_batch:
                    backlog = True
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    backlog = False
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            self._publish()
        self._drain_on_stop()
        if self._write_connection is not None:
            with contextlib.suppress(Exception):  # a lost connection may fail to close
                self._write_connection.close()

    def _drain_on_stop(self) -> None:
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                rest.append(item)
        if rest:
            self._write(rest)
        self._last_try()
        self._publish()

    def _publish(self) -> None:
        """After each step of the writer: what is resolved, whether the rest is held, and the futures
        of the functions it ran; then the waiters of each loop are woken."""
        self._committed = self._resolved_through()
        self._held_error = self._outage.error if self._outage is not None and self._held else None
        settled, self._settled = self._settled, []
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for item, result, exc in settled:
            if item.future is not None and item.loop is not None:
                by_loop.setdefault(item.loop, []).append((item.future, result, exc))
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(settle, futures)
            except RuntimeError:  # the loop is closed; its callers no longer listen
                pass
        for loop in self._loops:
            if self._waiters.get(loop):
                try:
                    loop.call_soon_threadsafe(self._wake, loop)
                except RuntimeError:  # the loop is closed; its callers no longer listen
                    pass

    def _resolved_through(self) -> int:
        """Every ticket up to this one is committed or failed: the held ones are the oldest not."""
        first = self._held.first_ticket()
        return self._seen if first is None else first - 1

    # -- one step of the writer: write, or hold while the database does not answer --------------

    def _write(self, batch: list[_Item]) -> None:
        """Write a batch. While writes are held, its journal writes are held behind them (their order
        is the commit order), and what is held is tried again when due, or at once for a function
        someone waits for, which fails at once if the database still does not answer."""
        for item in reversed(batch):
            if item.ticket:
                self._seen = max(self._seen, item.ticket)
                break
        if self._held:
            waited = []
            for item in batch:
                if item.holdable:
                    self._hold(item)
                else:
                    waited.append(item)
            assert self._outage is not None
            if not waited and not self._outage.due(time.monotonic()):
                return
            if not self._write_held():
                self._fail(waited, _unanswered(self._outage.error))
                return
            batch = waited
        if not batch:
            return
        left, error = self._attempt(batch)
        if error is None:
            self._answered()
            return
        self._not_answered(error)
        for item in left:
            if item.holdable:
                self._hold(item)
            elif item.future is not None:
                self._settled.append((item, None, error))

    def _attempt(self, items: list[_Item]) -> tuple[list[_Item], BaseException | None]:
        """Run items in one transaction; when that fails for another reason than the database's
        absence, each in its own (one bad write must not sink the others). Returns the items not
        run because the database does not answer (in their order: some of them may be committed),
        and its error."""
        ordered = sorted(items, key=_phase)
        try:
            self._ensure_connection()
            results = self._execute(ordered)
        except Exception as exc:
            self._rollback()
            if unreachable(exc):
                return items, exc
            if len(ordered) == 1:
                log.error("state write failed: %s", exc, exc_info=not _is_expected(exc))
                self._fail(ordered, exc)
                return [], None
            for index, item in enumerate(ordered):
                _, error = self._attempt([item])
                if error is not None:
                    rest = {id(item) for item in ordered[index:]}
                    return [item for item in items if id(item) in rest], error
            return [], None
        self.batches += 1
        for item, result in zip(ordered, results, strict=True):
            if item.future is not None:
                self._settled.append((item, result, None))
        return [], None

    def _write_held(self) -> bool:
        """Write what is held, oldest first, a transaction per HELD_ROWS_PER_COMMIT rows; False when
        the database does not answer (the rest stays held)."""
        outage = self._outage
        assert outage is not None
        while self._held:
            chunk = self._held.front(HELD_ROWS_PER_COMMIT)
            before = self._held.rows
            left, error = self._attempt(chunk)
            self._held.replace_front(len(chunk), left)
            outage.written += before - self._held.rows
            if error is not None:
                outage.failed_again(time.monotonic(), describe(error))
                return False
        self._answered()
        return True

    def _last_try(self) -> None:
        """Stopping: what is held is tried once more, and what is still held is lost (one line)."""
        if not self._held:
            return
        if self._write_held():
            return
        assert self._outage is not None
        lost = self._held.take_all()
        log.error("%s", abandoned_line(self._outage, sum(item.rows for item in lost)))
        self._fail(lost, WriteDropped(f"not written: the engine stopped while {self._outage.error}"))

    def _hold(self, item: _Item) -> None:
        outage = self._outage
        assert outage is not None
        dropped = self._held.hold(item)
        if not dropped:
            return
        rows = sum(gone.rows for gone in dropped)
        if not outage.cap_reported:
            outage.cap_reported = True
            log.error("%s", dropping_line(self._held.rows + rows, self._held.cap))
        outage.dropped += rows
        self._fail(dropped, WriteDropped(f"dropped: over journal_hold_rows while {outage.error}"))

    def _fail(self, items: list[_Item], exc: BaseException) -> None:
        """These items are not written: their waiters (a ticket, a future) get `exc`."""
        for item in items:
            if item.ticket:
                self._failed[item.ticket] = exc
            if item.future is not None:
                self._settled.append((item, None, exc))
        while len(self._failed) > _KEEP_FAILURES:
            del self._failed[next(iter(self._failed))]

    def _not_answered(self, error: BaseException) -> None:
        now = time.monotonic()
        if self._outage is None:
            self._outage = Outage.begin(now, describe(error))
            log.error("%s", began_line(self._outage, self._held.cap))
            self._wait_for_locks(min(self.busy_timeout, OUTAGE_BUSY_TIMEOUT))
        else:
            self._outage.failed_again(now, describe(error))

    def _answered(self) -> None:
        if self._outage is not None and not self._held:
            log.warning("%s", ended_line(self._outage, time.monotonic()))
            self._outage = None
            self._wait_for_locks(self.busy_timeout)

    def _wait_for_locks(self, seconds: float) -> None:
        """SQLite: how long the writer's statements wait for another process's lock."""
        if self.dialect is Dialect.SQLITE and self._write_connection is not None:
            with contextlib.suppress(sqlite3.Error):  # a file that cannot be read keeps the old timeout
                _set_busy_timeout(self._write_connection, seconds)

    def _ensure_connection(self) -> None:
        if self.dialect is Dialect.POSTGRESQL and (
            self._write_connection is None or self._write_connection.closed
        ):
            self._write_connection = self._connect(False)
            self._staged.clear()

    def _execute(self, items: list[_Item]) -> list[Any]:
        """Run a batch (sorted by phase) in one transaction; the results are in the items' order."""
        tx = Tx(self._write_connection, self.dialect, self._staged)
        results: list[Any] = [None] * len(items)
        # Steps in order: consecutive Writes of one SQL share an executemany; all Rows of one phase
        # and function are merged at the place of the first; a function runs alone.
        steps: list[tuple[str, Any, Any]] = []
        merged: dict[tuple[int, Any], list[Any]] = {}
        for index, item in enumerate(items):
            op = item.op
            if isinstance(op, Rows):
                rows = merged.get((op.phase, op.run))
                if rows is None:
                    rows = merged[(op.phase, op.run)] = []
                    steps.append(("rows", op.run, rows))
                rows.extend(op.rows)
            elif isinstance(op, Write):
                last = steps[-1] if steps else None
                if last is not None and last[0] == "write" and last[1] == op.sql:
                    last[2].append(op.params)
                else:
                    steps.append(("write", op.sql, [op.params]))
            else:
                steps.append(("fn", op, index))
        self._begin()
        for kind, what, arg in steps:
            if kind == "rows":
                what(tx, arg)
            elif kind == "write":
                if len(arg) == 1:
                    tx.execute(what, arg[0])
                else:
                    tx.executemany(what, arg)
            else:
                results[arg] = what(tx)
        self._commit()
        return results

    # -- reads -----------------------------------------------------------------------------

    async def read(self, fn: Callable[[Tx], Any]) -> Any:
        """Run `fn(tx)` on the reader thread and return its result."""
        if self._closed:
            raise StateError("the state database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._read, fn)

    def _read(self, fn: Callable[[Tx], Any]) -> Any:
        fresh = self._read_connection is None or (
            self.dialect is Dialect.POSTGRESQL and self._read_connection.closed
        )
        if fresh:
            self._read_connection = self._connect(True)
        try:
            return fn(Tx(self._read_connection, self.dialect))
        except Exception as exc:
            # A PostgreSQL connection lost while it was idle (the server restarted since the last read)
            # fails its next statement: once more on a new one, or every reader would see an outage of
            # its own after the database is back. Reads change nothing, so a second try is harmless.
            if fresh or self.dialect is not Dialect.POSTGRESQL or not self._read_connection.closed:
                raise
            if not unreachable(exc):
                raise
        self._read_connection = self._connect(True)
        return fn(Tx(self._read_connection, self.dialect))


def _phase(item: _Item) -> int:
    return item.op.phase if isinstance(item.op, Write | Rows) else _PHASE_OF_FN


def _held(error: str) -> WriteHeld:
    return WriteHeld(
        f"not written yet: {error}; the journal holds it in memory and writes it when the database answers"
    )


def _unanswered(error: str) -> DatabaseAway:
    """What a function someone waits for gets while the database does not answer."""
    return DatabaseAway(f"{UNANSWERED}{error}")


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Fire-and-forget callers never look at the future; the writer has already logged the failure.
    if not future.cancelled():
        future.exception()


def settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Give each future not yet done its result, or its exception when one is given."""
    for future, result, exc in settled:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)


def _is_expected(exc: BaseException) -> bool:
    """Failures that say all there is in one line: no traceback for them (a database that went away
    would otherwise fill the log with one per batch)."""
    if isinstance(exc, (ValueError, LookupError, StateError)):
        return True
    return type(exc).__name__ == "OperationalError"  # psycopg's and sqlite3's: the server or file is away
