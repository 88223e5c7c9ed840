"""What the HTTP handlers share, as typed aiohttp keys (the app's and each request's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ivr.http.auth import Access
    from ivr.http.health import Readiness
    from ivr.http.server import MenuTopic

ACCESS: web.AppKey[Access] = web.AppKey("access")
ENGINE_NAME: web.AppKey[str] = web.AppKey("engine_name")
SERVICES: web.AppKey[Any] = web.AppKey("services")  # ivr.engine.services.EngineServices
TOPICS: web.AppKey[Callable[[], list[MenuTopic]]] = web.AppKey("topics")  # the menus' topics, now
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
FEED_REFRESH: web.AppKey[Callable[[], None]] = web.AppKey("feed_refresh")
WHO: web.RequestKey[str] = web.RequestKey("who")  # how the client was let in (see auth.Access.who)
