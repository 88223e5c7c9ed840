"""One engine per name among the engines sharing a database: a lease row per engine, renewed while it runs.

An engine's name (`[http] name`, else host:pid) keys its calls in the journal, and at start an engine
closes the unfinished calls of its own name as an earlier run's. Two running engines with one name
would therefore close each other's live calls (and the board would mix their figures), so an engine
claims its name before anything else touches the journal and refuses to start when another engine
holds it: one that renewed its lease within LEASE_SECONDS and, on this machine, still runs. A lease
that ran out (the engine was killed, or its machine stopped) is taken over; a clean stop gives it back.

Times come from the engine's clock, like every other time in the journal (tests pin it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import attrs

from ivr.journal.db import Database, Dialect, StateError, Tx

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # an engine not heard of for this long has stopped
RENEW_EVERY = 15.0  # so a lease survives three missed renewals (a database hiccup)


class NameInUse(StateError):
    """Another running engine holds this engine's name."""


@attrs.frozen
class Holder:
    """Who holds a name: the engine's machine and process, when it started and last renewed."""

    host: str
    pid: int
    started_at: float
    seen_at: float

    def is_process(self, host: str, pid: int) -> bool:
        return (self.host, self.pid) == (host, pid)

    def has_stopped(self, now: float, host: str) -> bool:
        """Its lease ran out, or it was on this machine and its process is gone."""
        if now - self.seen_at > LEASE_SECONDS:
            return True
        return self.host == host and not process_running(self.pid)


def process_running(pid: int) -> bool:
    """A process of this machine with this id exists (run by any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, run by another user
        return True
    return True


_SELECT = "SELECT host, pid, started_at, seen_at FROM engines WHERE engine_id = ?"


class EngineLease:
    """Claims, renews and gives back this engine's name."""

    def __init__(self, db: Database, engine_id: str, now: Callable[[], float]) -> None:
        self.db = db
        self.engine_id = engine_id
        self.now = now
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lost = False  # renewed and found another engine holding the name

    async def claim(self) -> Holder | None:
        """Take the name, or raise NameInUse naming who holds it. Returns the stopped engine the name
        was taken over from, if its lease was still in the table."""
        now = self.now()

        def claim(tx: Tx) -> tuple[Holder | None, bool]:
            if tx.dialect is Dialect.POSTGRESQL:
                # Two engines starting at once with one name: the second waits here for the first's commit.
                tx.execute("SELECT pg_advisory_xact_lock(1415)")
            row = tx.one(_SELECT, (self.engine_id,))
            holder = Holder(str(row[0]), int(row[1]), float(row[2]), float(row[3])) if row else None
            if holder is not None and holder.is_process(self.host, self.pid):
                holder = None  # this process claiming again (an engine started twice in one process)
            if holder is not None and not holder.has_stopped(now, self.host):
                return holder, False
            tx.execute("DELETE FROM engines WHERE engine_id = ?", (self.engine_id,))
            tx.execute(
                "INSERT INTO engines (engine_id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?)",
                (self.engine_id, self.host, self.pid, now, now),
            )
            return holder, True

        # Refused outside the transaction: an engine name in use is an answer, not a failed write.
        holder, taken = await self.db.write(claim)
        if holder is not None and not taken:
            raise NameInUse(self._in_use(holder, now))
        return holder

    def _in_use(self, holder: Holder, now: float) -> str:
        return (
            f'another engine is running with the name "{self.engine_id}": {holder.host} (process '
            f"{holder.pid}), last heard of {max(0.0, now - holder.seen_at):.0f} s ago. Engines sharing a "
            "database must have different names, or each would close the other's calls: give this one "
            "its own [http] name, or stop the other first (a clean stop frees its name at once; a "
            f"killed engine's, once its process is gone, or on another machine after {LEASE_SECONDS:.0f} s)."
        )

    async def renew(self) -> None:
        """Mark the lease as alive; logs an error once if another engine has taken the name meanwhile."""

        def renew(tx: Tx) -> int:
            tx.execute(
                "UPDATE engines SET seen_at = ? WHERE engine_id = ? AND host = ? AND pid = ?",
                (self.now(), self.engine_id, self.host, self.pid),
            )
            return tx.rowcount

        if await self.db.write(renew) == 0 and not self.lost:
            self.lost = True
            log.error(
                'the name "%s" was taken over by another engine while this one could not renew its lease '
                "(a database outage longer than %.0f s?): both now journal calls under it; restart one of "
                "them with another [http] name",
                self.engine_id,
                LEASE_SECONDS,
            )

    async def release(self) -> None:
        """A clean stop: the name is free at once for the engine's next run or a replacement."""
        await self.db.write(
            lambda tx: tx.execute(
                "DELETE FROM engines WHERE engine_id = ? AND host = ? AND pid = ?",
                (self.engine_id, self.host, self.pid),
            )
        )
