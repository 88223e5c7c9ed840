"""One snapshot per interval for every open board (server-sent events).

A single task builds and encodes the snapshot while at least one board listens, and hands the same bytes
to each; a slow board only ever holds the newest one (a queue of one, replaced), so neither the number
of boards nor a stalled browser adds work on the calls' event loop beyond one write per board.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("ivr.http")

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def sse_message(payload: dict[str, Any]) -> bytes:
    return b"data: " + _ENCODE(payload).encode() + b"\n\n"


class Feed:
    def __init__(self, build: Callable[[], Awaitable[dict[str, Any]]], interval: float = 1.0) -> None:
        self._build = build
        self.interval = interval
        self._listeners: set[asyncio.Queue[bytes]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.snapshots = 0  # built so far (tests and the bench read it)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def listen(self) -> AsyncIterator[bytes]:
        """The board's messages, the newest first; ends when the feed closes."""
        inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._listeners.add(inbox)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="board-feed")
        try:
            while True:
                message = await inbox.get()
                if not message:
                    return
                yield message
        finally:
            self._listeners.discard(inbox)

    async def _run(self) -> None:
        while self._listeners:
            try:
                message = sse_message(await self._build())
            except Exception:
                log.exception("board: snapshot failed")
                message = b": snapshot failed\n\n"  # an SSE comment keeps the connection alive
            self.snapshots += 1
            for inbox in list(self._listeners):
                _replace(inbox, message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    def nudge(self) -> None:
        """Send a snapshot now rather than at the next tick (after an incident changed)."""
        self._wake.set()

    async def close(self) -> None:
        for inbox in list(self._listeners):
            _replace(inbox, b"")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _replace(inbox: asyncio.Queue[bytes], message: bytes) -> None:
    if inbox.full():
        inbox.get_nowait()
    inbox.put_nowait(message)
