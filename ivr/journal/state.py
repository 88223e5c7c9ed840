"""The shared state the engine uses: journal, incidents, callbacks over one database."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter

import attrs

from ivr.clock import SYSTEM_CLOCK, Clock
from ivr.config import Settings
from ivr.journal.callbacks import CallbackStore
from ivr.journal.db import CLOSE_WITHIN, Database, Target, Tx
from ivr.journal.engines import process_running
from ivr.journal.incidents import IncidentStore
from ivr.journal.journal import Journal
from ivr.journal.rows_process import RowsProcess
from ivr.journal.timeutil import zone
from ivr.journal.writes import end_calls


def default_engine_id() -> str:
    """host:pid names an engine uniquely among the engines sharing one database."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _a_process_of(host: str, engine_id: str) -> bool:
    """host:pid: an engine named by its process, not by its settings."""
    name, _, pid = engine_id.rpartition(":")
    return name == host and pid.isdigit()


def _gone(host: str, engine_id: str) -> bool:
    """An engine of this machine whose process is no longer running."""
    return _a_process_of(host, engine_id) and not process_running(int(engine_id.rpartition(":")[2]))


@attrs.define
class State:
    db: Database
    journal: Journal
    incidents: IncidentStore
    callbacks: CallbackStore
    engine_id: str
    timezone: str
    rows: RowsProcess | None = None  # the journal's writer process, when it has one

    # What both writers (the thread, and the writer process when there is one) have in hand.
    @property
    def pending_writes(self) -> int:
        return self.db.pending_writes + (self.rows.pending_writes if self.rows else 0)

    @property
    def held_rows(self) -> int:
        return self.db.held_rows + (self.rows.held_rows if self.rows else 0)

    @property
    def dropped_rows(self) -> int:
        return self.db.dropped_rows + (self.rows.dropped_rows if self.rows else 0)

    async def hand_back_orphans(self, now: float) -> list[tuple[str, int]]:
        """Calls an earlier run of this engine left unfinished: it was killed, or its machine stopped.
        Their callers went back to the dialplan when the connection dropped, so they are journalled as
        handed back, and the board stops counting them as in the IVR. An earlier run is this engine's
        own name (a named engine), or this machine with a process id no longer running. Returns each
        engine id whose calls were closed, with how many."""
        host = socket.gethostname()

        def unfinished(tx: Tx) -> list[tuple[str, str, float]]:
            return tx.all(
                "SELECT call_id, engine_id, started_at FROM calls "
                "WHERE outcome IS NULL AND (engine_id = ? OR engine_id LIKE ?)",
                (self.engine_id, f"{host}:%"),
            )

        named = not _a_process_of(host, self.engine_id)  # then its calls are an earlier run's
        orphans = [
            (call_id, engine, started) for call_id, engine, started in await self.db.read(unfinished)
            if (named and engine == self.engine_id) or _gone(host, engine)
        ]  # fmt: skip
        if orphans:
            tz = zone(self.timezone)
            # never before it began (a test deployment's clock starts again at its --clock moment)
            rows = [(c, max(now, float(started)), "handed_back", None, e, tz) for c, e, started in orphans]
            await self.db.write(lambda tx: end_calls(tx, rows))
        return sorted(Counter(engine for _, engine, _ in orphans).items())

    async def close(self, within: float = CLOSE_WITHIN) -> None:
        """Commit everything still queued or held by the journal and close the connections, in `within`
        seconds at most: while the database does not answer, each writer tries once more and gives up
        (what it holds is lost, and logged)."""
        deadline = time.monotonic() + within
        self.journal.close()
        if self.rows is not None:
            # before the database: rows it could not write go to its thread
            await self.rows.close(timeout=deadline - time.monotonic())
        await self.db.close(within=deadline - time.monotonic())


async def open_state(
    settings: Settings,
    engine_id: str | None = None,
    *,
    batch_window: float = 0.05,
    synchronous: str = "NORMAL",
    clock: Clock = SYSTEM_CLOCK,
    journal_writer: str = "thread",
) -> State:
    """Open (and migrate) the database the settings name: PostgreSQL when database_url is set,
    else SQLite at state_dir/ivr.db. Raises StateError with the reason when it cannot.

    `journal_writer` "process" writes the journal's rows from a child process (ivr.journal.rows_process).
    The engine passes its `journal_writer` setting; tools that write no calls keep the thread."""
    db = Database(
        Target.from_settings(settings.state_dir, settings.database_url),
        batch_window=batch_window,
        synchronous=synchronous,
        hold_rows=settings.journal_hold_rows,
    )
    await db.open()
    rows = None
    if journal_writer == "process":
        rows = RowsProcess(db, hold_rows=settings.journal_hold_rows)
        await rows.start()
    engine = engine_id or default_engine_id()
    return State(
        db=db,
        journal=Journal(db, settings.timezone, engine, now=clock.time, rows=rows),
        rows=rows,
        incidents=IncidentStore(db, now=clock.time, timezone=settings.timezone),
        callbacks=CallbackStore(db, now=clock.time),
        engine_id=engine,
        timezone=settings.timezone,
    )
