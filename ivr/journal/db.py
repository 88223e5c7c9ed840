"""One database behind the shared state: SQLite by default, PostgreSQL for several engines.

Nothing here runs on the event loop. Writes go through one writer thread (the journal's rows through
a writer process of their own, ivr.journal.rows_process, which runs `write_batch`) that commits them in
groups (group commit): the first write of a batch wakes it, it then sleeps `batch_window` seconds
while company gathers (later writes do not wake it: one wake-up per batch, not per write), a write
someone awaits urgently cuts the wait short, and every future of the batch completes only once its
transaction is committed. Reads run on a second thread with their own connection.

SQLite durability: WAL with synchronous=NORMAL. A commit returns once its pages are written to the
WAL file by write(2), i.e. they are in the kernel's page cache; a crash of this process (kill -9,
os._exit, a segfault) cannot lose them, only a power loss or kernel crash can lose the last few
transactions. FULL would add an fsync per commit (one per batch thanks to group commit) to survive
power loss too; `synchronous="FULL"` selects it.

Both backends run the same SQL, written with `?` parameter markers (translated to `%s` for psycopg).
"""

from __future__ import annotations

import asyncio
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

from ivr.journal.schema import MIGRATIONS

log = logging.getLogger(__name__)


class StateError(RuntimeError):
    """The state database is unusable or misconfigured; the message says why."""


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


def _connect_sqlite(path: str, synchronous: str, read_only: bool) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; the writer says BEGIN IMMEDIATE itself so that
    # it holds the write lock from the first statement (claims across processes depend on that).
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    connection.execute("PRAGMA busy_timeout = 30000")
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


def _connect_postgresql(url: str, autocommit: bool) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg ships with the test extras
        raise StateError(
            "database_url is PostgreSQL but psycopg is not installed: pip install 'psycopg[binary]'"
        ) from exc
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StateError(f"cannot connect to {url.split('@')[-1]}: {exc}".strip()) from exc


@attrs.define
class _Item:
    op: Op
    future: asyncio.Future[Any] | None  # for functions, whose result someone awaits
    loop: asyncio.AbstractEventLoop | None
    urgent: bool
    ticket: int = 0  # for plain statements: their place in the commit order


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
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StateError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.target = target
        self.dialect = target.dialect
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.synchronous = synchronous.upper()
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

    # -- lifecycle -------------------------------------------------------------------------

    def _connect(self, read_only: bool) -> Any:
        if self.dialect is Dialect.SQLITE:
            return _connect_sqlite(self.target.location, self.synchronous, read_only)
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

    def write_batch(self, ops: Sequence[tuple[int, Op]]) -> dict[int, BaseException]:
        """Run (ticket, op) pairs in one transaction on the calling thread, as the writer thread runs a
        batch (when the batch fails, each op again in a transaction of its own); returns the failures
        by ticket."""
        self._failed.clear()
        self._run_batch([_Item(op, None, None, False, ticket) for ticket, op in ops])
        return dict(self._failed)

    def close_for_batches(self) -> None:
        if self._write_connection is not None:
            self._write_connection.close()
            self._write_connection = None

    async def close(self) -> None:
        """Commit everything queued, then stop both threads."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            self._queue.put(_STOP)
            await loop.run_in_executor(None, self._writer.join)
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
        try:
            if self.dialect is Dialect.POSTGRESQL:
                self._write_connection.rollback()
            elif self._write_connection.in_transaction:
                self._write_connection.execute("ROLLBACK")
        except Exception:  # the connection may be gone; the next batch reconnects
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

    async def _wait_for(self, ticket: int) -> None:
        if ticket > self._committed:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._waiters.setdefault(loop, []).append((ticket, future))
            # The writer publishes `_committed` before it looks for waiters: checking again after
            # registering means a commit in between is never missed.
            if ticket > self._committed:
                await future
        failure = self._failed.get(ticket)
        if failure is not None:
            raise failure

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._waiters.get(loop)
        if not waiters:
            return
        committed = self._committed
        still = []
        for ticket, future in waiters:
            if ticket > committed:
                still.append((ticket, future))
            elif not future.done():
                future.set_result(None)
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
            first = self._queue.get()  # an idle engine's writer sleeps here
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
            self._run_batch(batch)
            self._publish()
        self._drain_on_stop()
        if self._write_connection is not None:
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
            self._run_batch(rest)
        self._publish()

    def _publish(self) -> None:
        for loop in self._loops:
            if self._waiters.get(loop):
                try:
                    loop.call_soon_threadsafe(self._wake, loop)
                except RuntimeError:  # the loop is closed; its callers no longer listen
                    pass

    def _run_batch(self, batch: list[_Item]) -> None:
        ordered = sorted(
            batch, key=lambda item: item.op.phase if isinstance(item.op, Write | Rows) else _PHASE_OF_FN
        )
        try:
            self._ensure_connection()
            results = self._execute(ordered)
        except Exception as exc:
            self._rollback()
            if len(ordered) == 1:
                log.error("state write failed: %s", exc, exc_info=not _is_expected(exc))
                if ordered[0].ticket:
                    self._failed[ordered[0].ticket] = exc
                    while len(self._failed) > _KEEP_FAILURES:
                        del self._failed[next(iter(self._failed))]
                self._resolve([(ordered[0], None, exc)])
                return
            # One bad write must not sink the others: run each in its own transaction.
            for item in ordered:
                self._run_batch([item])
            return
        self.batches += 1
        self._resolve(list(zip(ordered, results, [None] * len(ordered), strict=True)))

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

    def _resolve(self, outcomes: list[tuple[_Item, Any, BaseException | None]]) -> None:
        # Items come in queue order, so the last ticket is the highest; the GIL makes this assignment
        # atomic, and waiters check it again after registering (see _wait_for).
        top = max((item.ticket for item, _, _ in outcomes), default=0)
        if top > self._committed:
            self._committed = top
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for item, result, exc in outcomes:
            if item.future is not None and item.loop is not None:
                by_loop.setdefault(item.loop, []).append((item.future, result, exc))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(settle, settled)
            except RuntimeError:  # the loop is closed; its callers no longer listen
                pass

    # -- reads -----------------------------------------------------------------------------

    async def read(self, fn: Callable[[Tx], Any]) -> Any:
        """Run `fn(tx)` on the reader thread and return its result."""
        if self._closed:
            raise StateError("the state database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._read, fn)

    def _read(self, fn: Callable[[Tx], Any]) -> Any:
        if self._read_connection is None or (
            self.dialect is Dialect.POSTGRESQL and self._read_connection.closed
        ):
            self._read_connection = self._connect(True)
        return fn(Tx(self._read_connection, self.dialect))


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
