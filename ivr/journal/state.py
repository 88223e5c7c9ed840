"""The shared state the engine uses: journal, incidents, callbacks over one database."""

from __future__ import annotations

import os
import socket

import attrs

from ivr.clock import SYSTEM_CLOCK, Clock
from ivr.config import Settings
from ivr.journal.callbacks import CallbackStore
from ivr.journal.db import Database, Target
from ivr.journal.incidents import IncidentStore
from ivr.journal.journal import Journal
from ivr.journal.rows_process import RowsProcess


def default_engine_id() -> str:
    """host:pid names an engine uniquely among the engines sharing one database."""
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.define
class State:
    db: Database
    journal: Journal
    incidents: IncidentStore
    callbacks: CallbackStore
    engine_id: str
    timezone: str
    rows: RowsProcess | None = None  # the journal's writer process, when it has one

    async def close(self) -> None:
        """Commit everything still queued or held by the journal and close the connections."""
        self.journal.close()
        if self.rows is not None:
            await self.rows.close()  # before the database: rows it could not write go to its thread
        await self.db.close()


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
    )
    await db.open()
    rows = None
    if journal_writer == "process":
        rows = RowsProcess(db)
        await rows.start()
    engine = engine_id or default_engine_id()
    return State(
        db=db,
        journal=Journal(db, settings.timezone, engine, now=clock.time, rows=rows),
        rows=rows,
        incidents=IncidentStore(db, now=clock.time),
        callbacks=CallbackStore(db, now=clock.time),
        engine_id=engine,
        timezone=settings.timezone,
    )
