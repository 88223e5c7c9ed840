"""Live queue figures from this engine's own AMI, fetched at most once per `max_age` however many boards
and scrapes ask, so wallboards add a fixed, small load on Asterisk and the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ivr.http.cache import Cached
from ivr.menus.model import Menu, QueueNode
from ivr.texts import LANGUAGES


@attrs.frozen
class QueueFigures:
    name: str
    waiting: int
    longest_wait: int  # seconds
    logged_in: int
    available: int


@attrs.frozen
class QueuesView:
    ami: str  # "connected", "down: <state>" or "off" (not configured)
    queues: tuple[QueueFigures, ...] = ()

    @property
    def connected(self) -> bool:
        return self.ami == "connected"


def menu_queues(menus: Iterable[Menu]) -> list[str]:
    """Every queue a menu can send a caller to, kk then ru per node, each once, in menu order."""
    names: dict[str, None] = {}
    for menu in menus:
        for node in menu.nodes.values():
            if isinstance(node, QueueNode):
                for language in LANGUAGES:
                    if name := node.queue.get(language):
                        names[name] = None
    return list(names)


class QueueWatch:
    def __init__(self, ami: Any, queues: Callable[[], list[str]], max_age: float = 1.0) -> None:
        self._ami = ami
        self._queues = queues
        self._cached = Cached(self._fetch, QueuesView("off" if ami is None else "down: connecting"), max_age)

    async def view(self) -> QueuesView:
        return await self._cached.get()

    @property
    def last(self) -> QueuesView:
        """The figures of the last fetch, without asking AMI (for /metrics between board refreshes)."""
        return self._cached.last

    async def _fetch(self) -> QueuesView:
        ami = self._ami
        if ami is None:
            return QueuesView("off")
        if not ami.connected:
            return QueuesView(f"down: {ami.state}")
        names = self._queues()
        summaries = await asyncio.gather(*(ami.queue_summary(name) for name in names))
        if not ami.connected:
            return QueuesView(f"down: {ami.state}")
        # A queue Asterisk does not know (None) is left out rather than shown as an empty queue.
        figures = tuple(
            QueueFigures(name, s.callers, s.longest_hold_time, s.logged_in, s.available)
            for name, s in zip(names, summaries, strict=True)
            if s is not None
        )
        return QueuesView("connected", figures)
