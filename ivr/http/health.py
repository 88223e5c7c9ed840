"""/healthz and /readyz for a load balancer in front of several engines.

/healthz: the process and its event loop answer (no dependency is consulted, so a database outage does
not get every engine restarted at once). /readyz: this engine can take calls: menus loaded, every
prompt they need on disk (as the engine last found, looking every 10 s; it synthesises what it finds
missing), the journal writer answers. AMI is reported but not required, since calls
still run (without queue figures) while it is down; so is a database that does not answer, whose rows
the journal holds in memory meanwhile (ivr.journal.db): every engine sharing it would otherwise leave
the balancer at once, and the callers would get no IVR at all. Each check is cached for a second so
frequent probes cost nothing; 503 with the failing checks when not ready, and from the moment the
engine is told to stop (its FastAGI listener closes then, while running calls finish).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ivr.http.cache import Cached
from ivr.http.keys import ENGINE_NAME, READINESS
from ivr.http.queues import QueuesView
from ivr.http.replies import json_response
from ivr.journal.db import StateError
from ivr.journal.outage import describe, unreachable

JOURNAL_TIMEOUT = 2.0


class Readiness:
    def __init__(self, engine: Any, queues: Callable[[], Awaitable[QueuesView]]) -> None:
        self._engine = engine
        self._queues = queues  # the cached AMI view: its state is reported, never required
        self._journal = Cached(self._journal_check, ("", False), max_age=1.0)

    async def _journal_check(self) -> tuple[str, bool]:
        """What is wrong with the journal ("" when nothing), and whether that keeps calls away."""
        state = self._engine.services.state
        if state is None:
            return "no journal", True
        try:
            # A round trip through the writer thread: it is alive and the database answers (an empty
            # transaction may never reach the server, and passed with PostgreSQL down).
            await asyncio.wait_for(state.db.write(lambda tx: tx.one("SELECT 1")), JOURNAL_TIMEOUT)
        except TimeoutError:
            # A database that neither answers nor refuses yet, or a backlog being written after an
            # outage: every engine sharing it at once, and calls do not wait for the journal.
            return (
                f"degraded: no commit in {JOURNAL_TIMEOUT:g} s; {state.held_rows} journal rows held in memory",
                False,
            )
        except Exception as exc:
            # Our own errors say what they are; a driver's gets its class name. One line either way.
            said = " ".join(str(exc).split()) if isinstance(exc, StateError) else describe(exc)
            if unreachable(exc):  # refused, lost, shut down: the journal holds its rows meanwhile
                return (
                    f"degraded: {said}; {state.held_rows} journal rows held in memory until it answers",
                    False,
                )
            return said, True
        return "", False

    async def checks(self) -> tuple[bool, dict[str, str]]:
        names = self._engine.library.names()
        # The engine looks every 10 s, and synthesises any it finds missing: ready again once it has.
        missing = self._engine.missing_prompts
        journal, journal_blocks = await self._journal.get()
        checks = {
            "menus": "ok: " + ", ".join(names) if names else "no menu loaded",
            "prompts": "ok" if not missing else f"{len(missing)} missing, e.g. {missing[0]}",
            "journal": journal or "ok",
            "ami": (await self._queues()).ami,
        }
        stopping = getattr(self._engine, "stopping", False)
        if stopping:  # the listener is closed: a balancer must send calls elsewhere now
            checks["engine"] = "stopping: no new calls"
        ready = bool(names) and not missing and not journal_blocks and not stopping
        return ready, checks


async def healthz(request: web.Request) -> web.Response:
    return json_response({"alive": True, "engine": request.app[ENGINE_NAME]})


async def readyz(request: web.Request) -> web.Response:
    ready, checks = await request.app[READINESS].checks()
    body = {"ready": ready, "engine": request.app[ENGINE_NAME], "checks": checks}
    return json_response(body, status=200 if ready else 503)  # an engine name or error in Cyrillic as it is
