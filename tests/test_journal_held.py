"""The rules of a database outage, without a database: which failures are one, when to try again, what
the cap keeps and drops, and the lines the log gets."""

from __future__ import annotations

import sqlite3

import attrs
import psycopg
import pytest

from ivr.journal.db import DatabaseAway, StateError
from ivr.journal.held import HeldWrites
from ivr.journal.outage import (
    RETRY_FIRST,
    RETRY_MAX,
    Outage,
    abandoned_line,
    describe,
    ended_line,
    unreachable,
)


@attrs.frozen
class W:
    ticket: int
    rows: int = 1


def sqlite_error(message: str, code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    "error",
    [
        DatabaseAway("cannot connect to 127.0.0.1:5432/ivr: connection refused"),
        psycopg.OperationalError("server closed the connection unexpectedly"),  # no SQLSTATE: no server
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.DiskFull("could not extend file"),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        sqlite_error("database is locked", sqlite3.SQLITE_BUSY),
        sqlite_error("database or disk is full", sqlite3.SQLITE_FULL),
        sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR | (3 << 8)),  # an extended code: IOERR_WRITE
        sqlite_error("unable to open database file", sqlite3.SQLITE_CANTOPEN),
    ],
    ids=describe,
)
def test_a_database_that_does_not_answer_is_an_outage(error: BaseException) -> None:
    assert unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("duplicate key value"),  # a bad write: it would fail again
        psycopg.errors.UndefinedTable("relation does not exist"),
        psycopg.errors.DeadlockDetected("deadlock detected"),  # the database answers: each write alone
        sqlite_error("no such table: calls", sqlite3.SQLITE_ERROR),
        sqlite3.IntegrityError("NOT NULL constraint failed"),
        StateError("the state database is closed"),
        ValueError("a bad row"),
    ],
    ids=describe,
)
def test_a_failing_write_on_a_database_that_answers_is_not_an_outage(error: BaseException) -> None:
    assert not unreachable(error)


def test_tries_come_twice_as_late_each_time_up_to_the_bound() -> None:
    outage = Outage.begin(100.0, "refused")
    waits = []
    now = 100.0
    for _ in range(8):
        assert not outage.due(now)
        waits.append(outage.retry_in(now))
        now = outage.retry_at
        assert outage.due(now) and outage.retry_in(now) == 0.0
        outage.failed_again(now, "refused")
    assert waits == [RETRY_FIRST, 0.5, 1.0, 2.0, 4.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]


def test_past_the_cap_the_oldest_go_a_whole_ticket_at_a_time() -> None:
    held: HeldWrites[W] = HeldWrites(cap=10)
    shipment = [W(1, 3), W(1, 2), W(1, 1)]  # a writer process's shipment: one ticket, several ops
    assert [held.hold(write) for write in shipment] == [[], [], []]
    assert held.hold(W(2, 4)) == []  # 10 rows: at the cap, not over it
    assert held.hold(W(3, 1)) == shipment  # the whole oldest ticket goes, not only its first op
    assert (held.rows, held.dropped_rows, held.first_ticket()) == (5, 6, 2)
    assert held.hold(W(4, 20)) == [W(2, 4), W(3, 1), W(4, 20)]  # alone over the cap: dropped too
    assert (held.rows, held.dropped_rows, len(held), held.first_ticket()) == (0, 31, 0, None)


def test_a_cap_of_nothing_drops_every_write_at_once() -> None:
    held: HeldWrites[W] = HeldWrites(cap=0)
    assert held.hold(W(1)) == [W(1)] and not held and held.dropped_rows == 1


def test_the_writes_tried_together_and_those_left_keep_their_order() -> None:
    held: HeldWrites[W] = HeldWrites(cap=100)
    for ticket in range(1, 7):
        held.hold(W(ticket, 10))
    chunk = held.front(max_rows=25)
    assert chunk == [W(1, 10), W(2, 10)]  # whole writes, not more rows than asked (unless one alone)
    assert held.front(max_rows=5) == [W(1, 10)]
    held.replace_front(len(chunk), [W(2, 10)])  # the first was written, the second not
    assert held.take_all() == [W(ticket, 10) for ticket in range(2, 7)]
    assert held.rows == 0


def test_the_log_lines_say_how_long_and_what_became_of_the_rows() -> None:
    outage = Outage.begin(100.0, "OperationalError: connection refused")
    outage.written, outage.dropped = 12_345, 0
    assert ended_line(outage, 163.24) == (
        "state database answers again after 63.2 s: 12,345 journal rows held were written"
    )
    outage.dropped = 678
    assert ended_line(outage, 163.24).endswith("were written, 678 dropped (over journal_hold_rows)")
    assert abandoned_line(outage, 42) == (
        "stopping with the state database unreachable (OperationalError: connection refused): 42 journal "
        "rows held are lost (12,345 written and 678 dropped earlier in this outage)"
    )
