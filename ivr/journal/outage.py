"""The state database not answering, seen from its writer: which failures mean that, when to try again,
and the lines the log gets (one when an outage begins, one when it ends, one if rows are dropped); and
seen from each of its readers (`Unanswered`: the incidents' cache, the board, the engine's lease, the
callback dialer), which log one line when it stops answering them and one when it answers again.

Sans-I/O: times are given (the writer's monotonic clock), nothing here sleeps, connects or logs.
"""

from __future__ import annotations

import sqlite3

import attrs

# Tries of what is held: 0.25 s after the failure, then twice as long each time, at most RETRY_MAX apart.
RETRY_FIRST = 0.25
RETRY_MAX = 5.0

# SQLite: the file is locked by another process for longer than the busy timeout, the disk is full or
# failing, the file or its folder cannot be opened or written. Not SQLITE_ERROR (a mistake in the SQL).
_SQLITE_AWAY = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# PostgreSQL SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk full, out of
# memory, too many connections), 57 operator intervention (shutdown, crash, terminated backend).
_POSTGRESQL_AWAY = frozenset({"08", "53", "57"})
_READ_ONLY = "25006"  # a standby after a failover: it answers, but takes no writes until promoted


class Unreachable(Exception):
    """Marks a failure to connect (ivr.journal.db raises it as a StateError too)."""


class NoAnswer(Unreachable):
    """A read not answered within its reader's patience: a server hung, or its packets dropped."""


def unreachable(exc: BaseException) -> bool:
    """The database cannot take writes now, though a later try may succeed: hold, do not drop."""
    if isinstance(exc, Unreachable):
        return True
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_AWAY
    if not type(exc).__module__.startswith("psycopg"):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate[:2] in _POSTGRESQL_AWAY or sqlstate == _READ_ONLY
    # No SQLSTATE: no answer from a server at all (connection refused, lost, closed).
    return type(exc).__name__ == "OperationalError"


def describe(exc: BaseException) -> str:
    """An error in one line, as the log and the waiters get it."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


UNANSWERED = "the state database does not answer: "  # how a write someone waits for fails in an outage


def _why(exc: BaseException) -> str:
    """The database's own error, in one line, without the words a reader's log line says itself."""
    text = describe(exc)
    message = text.partition(": ")[2]
    return message[len(UNANSWERED) :] if message.startswith(UNANSWERED) else text


@attrs.define
class Unanswered:
    """One reader's view of an outage, however often it asks meanwhile (once a second, once a call):
    `failed` says True for the failure that begins it and `answered` gives how long it lasted, so the
    reader logs one line at each end of it. Times are the caller's monotonic clock."""

    began: float | None = None  # None while the database answers this reader
    error: str = ""  # the last failure, in one line

    @property
    def away(self) -> bool:
        return self.began is not None

    def failed(self, exc: BaseException, now: float) -> bool:
        """Another failure to reach the database; True when it begins an outage (log it)."""
        self.error = _why(exc)
        if self.began is not None:
            return False
        self.began = now
        return True

    def answered(self, now: float) -> float | None:
        """The database answered: the seconds it did not, when this ends an outage (log it), else None."""
        if self.began is None:
            return None
        lasted, self.began, self.error = now - self.began, None, ""
        return lasted


@attrs.define
class Outage:
    """One spell of the database not answering: since when, the last error, when to try again, and
    what became of the rows held meanwhile."""

    began: float
    error: str
    retry_at: float
    wait: float = RETRY_FIRST
    written: int = 0  # rows held and then written
    dropped: int = 0  # rows dropped over the cap
    cap_reported: bool = False  # the line about dropping is logged once an outage

    @classmethod
    def begin(cls, now: float, error: str) -> Outage:
        return cls(began=now, error=error, retry_at=now + RETRY_FIRST)

    def failed_again(self, now: float, error: str) -> None:
        self.error = error
        self.wait = min(self.wait * 2, RETRY_MAX)
        self.retry_at = now + self.wait

    def retry_in(self, now: float) -> float:
        return max(0.0, self.retry_at - now)

    def due(self, now: float) -> bool:
        return now >= self.retry_at


def began_line(outage: Outage, cap: int) -> str:
    return (
        f"state database unreachable ({outage.error}): the journal's rows wait in memory, in order "
        f"(at most {cap:,}), and are written when it answers (tried again at most {RETRY_MAX:g} s apart); "
        "writes someone waits for fail until then"
    )


def dropping_line(held: int, cap: int) -> str:
    return (
        f"journal: {held:,} rows held, as many as journal_hold_rows allows: the oldest are dropped "
        "from now on while the database stays away (counted in ivr_journal_dropped_rows_total)"
    )


def ended_line(outage: Outage, now: float) -> str:
    line = f"state database answers again after {now - outage.began:.1f} s: {outage.written:,} journal rows held were written"
    if outage.dropped:
        line += f", {outage.dropped:,} dropped (over journal_hold_rows)"
    return line


def abandoned_line(outage: Outage, lost: int) -> str:
    line = (
        f"stopping with the state database unreachable ({outage.error}): {lost:,} journal rows held are lost"
    )
    if outage.written or outage.dropped:
        line += f" ({outage.written:,} written and {outage.dropped:,} dropped earlier in this outage)"
    return line
