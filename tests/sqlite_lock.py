"""Another process's write lock on an engine's SQLite file (an admin's sqlite3 shell left in a transaction,
a backup): the realistic SQLite outage, for the tests of what callers and the board get meanwhile."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(name="short_lock_wait")
def short_lock_wait_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's wait for another process's lock, before the writer calls the database away: shortened."""
    monkeypatch.setattr("ivr.journal.db.BUSY_TIMEOUT", 0.05)


@contextlib.contextmanager
def write_lock(state_dir: str | Path) -> Iterator[sqlite3.Connection]:
    """Hold the write lock of the state directory's database until the block ends."""
    other = sqlite3.connect(Path(state_dir) / "ivr.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()
