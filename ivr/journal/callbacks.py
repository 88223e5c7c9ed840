"""Callback requests: stored durably, claimed by exactly one engine, released if that engine dies.

States: pending -> dialing -> done | failed, and dialing -> pending again via retry_later.
A claim is a lease: the claiming engine owns the callback until `lease_until`; if it dies, the
lease runs out and the next claim (by any engine) takes the callback over. Exclusivity across
processes comes from the database: SQLite runs the claim inside BEGIN IMMEDIATE (one writer at a
time, reading the newest data), PostgreSQL selects the row FOR UPDATE SKIP LOCKED. Every method that
acts for an engine checks that the engine still holds the lease, so a late engine whose lease was
taken over cannot finish someone else's callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import attrs

from ivr.journal.db import Database, Dialect, Tx
from ivr.journal.timeutil import Moment, from_epoch, to_epoch

STATES = ("pending", "dialing", "done", "failed")
FINAL = ("done", "failed")

_COLUMNS = (
    "id, number, language, queue, topic, call_id, state, attempts, last_error, next_attempt_at, "
    "engine_id, lease_until, created_at, updated_at"
)


class LeaseLost(RuntimeError):
    """The engine no longer holds this callback (its lease ran out and another engine took it)."""


@attrs.frozen
class Callback:
    id: int
    number: str
    language: str
    queue: str
    topic: str
    call_id: str
    state: str
    attempts: int
    last_error: str
    next_attempt_at: datetime
    engine_id: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime


def _callback(row: tuple) -> Callback:
    values = list(row)
    values[0] = int(values[0])
    for index in (9, 11, 12, 13):
        values[index] = from_epoch(values[index])
    return Callback(*values)


def _check_number(number: str) -> str:
    cleaned = (number or "").strip()
    digits = cleaned[1:] if cleaned.startswith("+") else cleaned
    if not digits.isdigit() or not 3 <= len(digits) <= 20:
        raise ValueError(f"callback number {number!r} must be 3-20 digits, optionally after '+'")
    return cleaned


class CallbackStore:
    def __init__(self, db: Database, now: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = now  # epoch seconds from the engine's clock (pinned in tests)

    async def request(
        self, number: str, language: str, queue: str, topic: str | None = None, call_id: str | None = None
    ) -> int:
        """Store a request; the same call asking twice gets the first request's id back."""
        number = _check_number(number)
        if not language or not queue:
            raise ValueError("a callback needs the caller's language and the queue to call back from")
        now = self._now()
        call_id = call_id or ""
        params = (number, language, queue, topic or "", call_id, now, now, now)

        def insert(tx: Tx) -> int:
            if call_id:
                row = tx.one(
                    "INSERT INTO callbacks (number, language, queue, topic, call_id, next_attempt_at, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (call_id) WHERE call_id <> '' DO NOTHING RETURNING id",
                    params,
                )
                if row is None:
                    row = tx.one("SELECT id FROM callbacks WHERE call_id = ?", (call_id,))
            else:
                row = tx.one(
                    "INSERT INTO callbacks (number, language, queue, topic, call_id, next_attempt_at, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    params,
                )
            return int(row[0])

        return await self._db.write(insert)

    async def claim(
        self, engine_id: str, now: Moment | None = None, lease_seconds: float = 120.0
    ) -> Callback | None:
        """Take exactly one due callback for this engine (pending and due, or dialing with an expired
        lease), or None when there is none. Oldest due first."""
        if not engine_id:
            raise ValueError("claim needs the engine's id")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        moment = self._now() if now is None else to_epoch(now, "now")
        lock = " FOR UPDATE SKIP LOCKED" if self._db.dialect is Dialect.POSTGRESQL else ""

        def take(tx: Tx) -> Callback | None:
            found = tx.one(
                "SELECT id, state, engine_id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id LIMIT 1" + lock,
                (moment,),
            )
            if found is None:
                found = tx.one(
                    "SELECT id, state, engine_id FROM callbacks WHERE state = 'dialing' AND lease_until <= ? "
                    "ORDER BY lease_until, id LIMIT 1" + lock,
                    (moment,),
                )
            if found is None:
                return None
            callback_id, state, previous = found
            note = f"lease of engine {previous} expired" if state == "dialing" else None
            row = tx.one(
                "UPDATE callbacks SET state = 'dialing', engine_id = ?, lease_until = ?, attempts = attempts + 1, "
                "last_error = COALESCE(?, last_error), updated_at = ? WHERE id = ? RETURNING " + _COLUMNS,
                (engine_id, moment + lease_seconds, note, self._now(), callback_id),
            )
            return _callback(row)

        return await self._db.write(take)

    async def renew(
        self, callback_id: int, engine_id: str, lease_seconds: float, now: Moment | None = None
    ) -> None:
        """Extend the lease of a callback still being dialled (a long wait for a free operator)."""
        moment = self._now() if now is None else to_epoch(now, "now")
        await self._owned_update(
            callback_id, engine_id, "lease_until = ?, updated_at = ?", (moment + lease_seconds, self._now())
        )

    async def finish(self, callback_id: int, engine_id: str, outcome: str) -> None:
        """Final outcome: 'done' (the caller was reached) or 'failed' (given up)."""
        if outcome not in FINAL:
            raise ValueError(f"callback outcome {outcome!r} must be 'done' or 'failed'")
        await self._owned_update(
            callback_id, engine_id, "state = ?, lease_until = NULL, updated_at = ?", (outcome, self._now())
        )

    async def retry_later(
        self,
        callback_id: int,
        engine_id: str,
        error: str,
        delay: float,
        now: Moment | None = None,
        *,
        attempted: bool = True,
    ) -> None:
        """Back to pending, due again after `delay` seconds, remembering why this attempt failed.
        `attempted=False`: nobody was dialled (no free operator), so the claim is not counted as one of
        the callback's attempts."""
        if delay < 0:
            raise ValueError("delay must not be negative")
        moment = self._now() if now is None else to_epoch(now, "now")
        uncount = "" if attempted else "attempts = attempts - 1, "
        await self._owned_update(
            callback_id,
            engine_id,
            "state = 'pending', engine_id = NULL, lease_until = NULL, "
            + uncount
            + "last_error = ?, next_attempt_at = ?, updated_at = ?",
            (error or "", moment + delay, self._now()),
        )

    async def reopen(self, callback_id: int, error: str, delay: float, max_attempts: int) -> str | None:
        """A callback recorded done whose citizen the queue then gave back (nobody took them): pending
        again after `delay` seconds, or failed once `max_attempts` were made. Returns the new state, or
        None when the callback is not done (unknown, or another engine reopened it first)."""
        moment = self._now()

        def update(tx: Tx) -> str | None:
            row = tx.one(
                "UPDATE callbacks SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END, "
                "engine_id = NULL, lease_until = NULL, last_error = ?, next_attempt_at = ?, updated_at = ? "
                "WHERE id = ? AND state = 'done' RETURNING state",
                (max_attempts, error, moment + delay, moment, callback_id),
            )
            return None if row is None else str(row[0])

        return await self._db.write(update)

    async def _owned_update(self, callback_id: int, engine_id: str, assignments: str, params: tuple) -> None:
        def update(tx: Tx) -> bool:
            tx.execute(
                f"UPDATE callbacks SET {assignments} WHERE id = ? AND engine_id = ? AND state = 'dialing'",
                (*params, callback_id, engine_id),
            )
            return tx.rowcount == 1

        if not await self._db.write(update):
            raise LeaseLost(f"callback {callback_id} is not being dialled by engine {engine_id!r} any more")

    async def get(self, callback_id: int) -> Callback | None:
        def load(tx: Tx) -> Callback | None:
            row = tx.one(f"SELECT {_COLUMNS} FROM callbacks WHERE id = ?", (callback_id,))
            return None if row is None else _callback(row)

        return await self._db.read(load)

    async def list(self, state: str | None = None) -> list[Callback]:
        if state is not None and state not in STATES:
            raise ValueError(f"state {state!r} is not one of {', '.join(STATES)}")

        def load(tx: Tx) -> list[Callback]:
            if state is None:
                rows = tx.all(f"SELECT {_COLUMNS} FROM callbacks ORDER BY id")
            else:
                rows = tx.all(f"SELECT {_COLUMNS} FROM callbacks WHERE state = ? ORDER BY id", (state,))
            return [_callback(r) for r in rows]

        return await self._db.read(load)
