"""The engine's HTTP side (aiohttp, on the calls' own event loop): the wallboard, its live feed, the
incident form, /metrics, /healthz and /readyz.

Attached to a started Engine: it watches the engine's journal for live calls, hooks the FastAGI server's
command observer for the turnaround histogram, and reads the rest (AMI, journal, incidents) through
caches, so open boards cost the calls a fixed, small amount of work per second.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import attrs
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ivr.clock import SystemClock
from ivr.config import ConfigError, HttpSettings, parse_hostport
from ivr.http import auth, health, incident_form, page
from ivr.http.auth import Access, is_loopback
from ivr.http.board import BoardSources, snapshot
from ivr.http.feed import Feed
from ivr.http.keys import ACCESS, ENGINE_NAME, FEED_REFRESH, READINESS, SERVICES, TOPICS
from ivr.http.live import LiveCalls, observe, unobserve
from ivr.http.metrics import EngineMetrics
from ivr.http.queues import QueueWatch, menu_queues
from ivr.http.replies import json_response

log = logging.getLogger("ivr.http")

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def parse_bind(text: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); '0.0.0.0:8080', '[::1]:8080' as given."""
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    host, port = parse_hostport(text)
    if not host:
        raise ConfigError(f"http bind {text!r}: no host")
    return host, port


@attrs.frozen
class MenuTopic:
    """A topic an incident may name, with what the board shows for it (the id when the menu gives no
    names)."""

    id: str
    kk: str
    ru: str


def menu_topics(menus: Any) -> list[MenuTopic]:
    """The topics an incident may name: those the menus declare, or else those their nodes carry; the
    first menu that names a topic names it."""
    ids: dict[str, None] = {}
    named: dict[str, MenuTopic] = {}
    for menu in menus:
        for topic in menu.topics or sorted({n.topic for n in menu.nodes.values() if n.topic}):
            ids[topic] = None
            names = menu.topic_names.get(topic)
            if names is not None:
                named.setdefault(topic, MenuTopic(topic, names.kk, names.ru))
    return [named.get(topic) or MenuTopic(topic, topic, topic) for topic in ids]


class BoardServer:
    def __init__(self, engine: Any, settings: HttpSettings | None = None, *, interval: float = 1.0) -> None:
        self.engine = engine
        self.settings = settings or engine.settings.http
        services = engine.services
        state = services.state
        self.name = self.settings.name or (state.engine_id if state is not None else "ivr")
        self.live = LiveCalls()
        self.queues = QueueWatch(services.ami, lambda: menu_queues(engine.library.menus().values()))
        self.sources = BoardSources(
            self.name,
            self.live,
            self.queues,
            state,
            clock=lambda: services.clock.now(),  # looked up each time: tests may swap the clock
            timezone=engine.settings.timezone,
            test_clock=lambda: not isinstance(services.clock, SystemClock),
            hours=lambda: services.hours,
        )
        self.feed = Feed(self.snapshot, interval)
        self.metrics = EngineMetrics(
            self.live, lambda: self.queues.last, services, lambda: engine.server, lambda: engine.gc_pacer
        )
        self.access = Access(self.settings.token)
        self.readiness = health.Readiness(engine, self.queues.view)
        self.host, self.port = parse_bind(self.settings.bind or "0")
        self._runner: web.AppRunner | None = None

    async def snapshot(self) -> dict[str, Any]:
        return await snapshot(self.sources)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[auth.middleware(self.access)], client_max_size=64 * 1024)
        app[ACCESS] = self.access
        app[ENGINE_NAME] = self.name
        app[SERVICES] = self.engine.services
        # Read per request: a menu reload may add topics or rename them.
        app[TOPICS] = lambda: menu_topics(self.engine.library.menus().values())
        app[READINESS] = self.readiness
        app[FEED_REFRESH] = self.feed.nudge
        app.router.add_get("/", page.board)
        app.router.add_post(auth.LOGIN_PATH, auth.login)
        app.router.add_get("/events", self._events)
        app.router.add_get("/api/board", self._board_json)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", health.healthz)
        app.router.add_get("/readyz", health.readyz)
        app.router.add_post("/incidents", incident_form.add_incident)
        app.router.add_post("/incidents/{id}/end", incident_form.end_incident)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port (port 0 picks a free one)."""
        if self.engine.services.state is not None:
            observe(self.engine.services.state, self.live)
        if self.engine.server is not None:
            self.engine.server.command_observer = self.metrics.observe_agi
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        if self.access.token:
            policy = "token required from every client"
        else:
            policy = "no token set: this machine only"
            if not is_loopback(self.host) and self.host not in ("localhost",):
                log.warning("HTTP on %s without a token: remote clients will all get 401", self.host)
        log.info("wallboard on http://%s:%d/ (%s) as engine %s", self.host, self.port, policy, self.name)
        return self.port

    async def stop(self) -> None:
        if self.engine.server is not None and self.engine.server.command_observer == self.metrics.observe_agi:
            self.engine.server.command_observer = None
        if self.engine.services.state is not None:
            unobserve(self.engine.services.state, self.live)
        await self.feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers ---------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the board was closed
            async for message in self.feed.listen():
                await response.write(message)
        return response

    async def _board_json(self, request: web.Request) -> web.Response:
        return json_response(await self.snapshot(), headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.queues.view()  # fresh queue figures, at most one AMI round per second
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
