"""A value fetched at most once per `max_age` seconds, with one fetch in flight for everyone who asks
meanwhile: twenty boards cost the database and AMI what one costs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    def __init__(
        self,
        fetch: Callable[[], Awaitable[T]],
        initial: T,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._clock = clock
        self.last = initial  # the last value fetched (or the initial one), without waiting
        self._at: float | None = None
        self._running: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self._at is not None and self._clock() - self._at < self._max_age:
            return self.last
        if self._running is None:
            self._running = asyncio.ensure_future(self._fetch())
        running = self._running
        try:
            # shield: one asker giving up (a board closed mid-refresh) does not cancel it for the rest
            value = await asyncio.shield(running)
        finally:
            if self._running is running and running.done():
                self._running = None  # a failed fetch is tried again by the next asker
        self.last, self._at = value, self._clock()
        return value
