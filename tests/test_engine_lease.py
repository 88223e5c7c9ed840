"""An engine's name is held by one running engine at a time, on SQLite and on a shared PostgreSQL."""

from __future__ import annotations

import pytest

from ivr.config import Settings
from ivr.journal.engines import LEASE_SECONDS, EngineLease, NameInUse
from ivr.journal.state import open_state
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)

NOW = 1_795_000_000.0


async def held_elsewhere(db, name: str, seen_at: float) -> None:
    """Another machine's engine holding `name`, last renewed at `seen_at`."""
    await db.write(
        lambda tx: tx.execute(
            "INSERT INTO engines (engine_id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?)",
            (name, "ivr-b.example", 4242, seen_at - 600, seen_at),
        )
    )


async def test_a_name_renewed_within_a_lease_is_refused_then_taken_over(backend, caplog) -> None:
    state = await open_state(Settings(**backend), "ivr-a")
    try:
        await held_elsewhere(state.db, "ivr-a", NOW)
        now = NOW + LEASE_SECONDS  # exactly a lease since its last renewal: still held
        lease = EngineLease(state.db, "ivr-a", lambda: now)
        with pytest.raises(NameInUse, match=r"ivr-b\.example \(process 4242\)"):
            await lease.claim()
        now += 1
        taken_from = await lease.claim()
        assert (taken_from.host, taken_from.pid) == ("ivr-b.example", 4242)
        rows = await state.db.read(lambda tx: tx.all("SELECT engine_id, host, seen_at FROM engines"))
        assert rows == [("ivr-a", lease.host, now)]

        # The other engine comes back and takes the name while this one cannot renew: said once.
        await state.db.write(lambda tx: tx.execute("UPDATE engines SET host = 'ivr-b.example'"))
        await lease.renew()
        await lease.renew()
        assert lease.lost and caplog.text.count('the name "ivr-a" was taken over by another engine') == 1

        other = EngineLease(state.db, "ivr-b", lambda: now)  # another name is no one's business
        assert await other.claim() is None
        await other.release()
        assert await state.db.read(lambda tx: tx.all("SELECT engine_id FROM engines")) == [("ivr-a",)]
    finally:
        await state.close()
