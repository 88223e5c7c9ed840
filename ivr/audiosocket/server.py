"""The AudioSocket listener: a thin asyncio layer over the sans-I/O parser.

Asterisk connects to us (app_audiosocket, started by `EXEC AudioSocket <uuid>,<host:port>` from the
call's AGI session) and sends the UUID first; the call that asked for that UUID gets the connection.
The engine ends a session by sending the hangup message (00 00 00) and then reading until Asterisk closes:
closing with unread bytes would send an RST, which Asterisk takes as an error and hangs the caller up
(shared/asterisk/audiosocket: silence-server-resets).

One clock for every session: `MediaClock` calls each running session every 20 ms from one timer,
on an absolute schedule, so prompts are paced without a timer per call and without drift.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuid_module
from collections.abc import Callable
from typing import Protocol

import attrs

from ivr.audiosocket.protocol import (
    NEED_DATA,
    Audio,
    AudioSocketParser,
    Closed,
    Dtmf,
    ErrorMessage,
    ProtocolError,
    Uuid,
    audio_message,
    hangup_message,
)

log = logging.getLogger("ivr.audiosocket")

TICK = 0.020
MAX_CATCH_UP = 3  # after a stall, send at most this many frames at once; older ones are skipped
UUID_TIMEOUT = 5.0  # a connection that sends no UUID in this time is not Asterisk
FINISH_TIMEOUT = 2.0  # after our hangup message, Asterisk closes within a millisecond
EARLY_EVENTS = 500  # frames kept for a connection whose call has not picked it up yet (10 s)


class MediaHandler(Protocol):
    def on_audio(self, payload: bytes, rate: int) -> None: ...
    def on_dtmf(self, digit: str) -> None: ...
    def on_closed(self) -> None: ...


@attrs.define
class ClockStats:
    ticks: int = 0
    late_ticks: int = 0  # ticks that ran more than 10 ms late
    skipped: int = 0  # ticks dropped after a stall
    max_late: float = 0.0


class MediaClock:
    """Calls every registered callback once per 20 ms tick while any is registered."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._done = 0
        self.stats = ClockStats()

    def add(self, callback: Callable[[], None]) -> int:
        self._next += 1
        self._callbacks[self._next] = callback
        if self._timer is None:
            self._start = self._loop.time()
            self._done = 0
            self._timer = self._loop.call_at(self._start + TICK, self._tick)
        return self._next

    def remove(self, key: int) -> None:
        self._callbacks.pop(key, None)
        if not self._callbacks and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = self._loop.time()
        due = int((now - self._start) / TICK) - self._done
        late = now - (self._start + (self._done + 1) * TICK)
        stats = self.stats
        stats.ticks += 1
        if late > 0.010:
            stats.late_ticks += 1
        stats.max_late = max(stats.max_late, late)
        if due > MAX_CATCH_UP:
            stats.skipped += due - MAX_CATCH_UP
            self._done += due - MAX_CATCH_UP
            due = MAX_CATCH_UP
        for _ in range(max(due, 1)):
            self._done += 1
            for callback in list(self._callbacks.values()):
                try:
                    callback()
                except Exception:
                    log.exception("media tick failed")
        if self._callbacks:
            self._timer = self._loop.call_at(self._start + (self._done + 1) * TICK, self._tick)
        else:
            self._timer = None


class AudioSocketConnection(asyncio.Protocol):
    """One AudioSocket session from Asterisk."""

    def __init__(self, server: AudioSocketServer) -> None:
        self._server = server
        self._parser = AudioSocketParser("asterisk")
        self.transport: asyncio.Transport | None = None
        self.uuid: uuid_module.UUID | None = None
        self.handler: MediaHandler | None = None
        self._early: list[Audio | Dtmf] = []
        self.finishing = False
        self.closed: asyncio.Future[None] = server.loop.create_future()
        self.peer_closed = False  # Asterisk closed first: the caller hung up (or Asterisk gave up)
        self._timer: asyncio.TimerHandle | None = None
        self.frames_sent = 0

    # --- asyncio ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)
        self._timer = self._server.loop.call_later(UUID_TIMEOUT, self._no_uuid)

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._server.connections.discard(self)
        if self.uuid is not None:
            self._server._waiting.pop(self.uuid, None)
        if not self.finishing:
            self.peer_closed = True
        if not self.closed.done():
            self.closed.set_result(None)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.on_closed()

    # --- events ----------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        parser = self._parser
        try:
            parser.receive_data(data)
            while (event := parser.next_event()) is not NEED_DATA:
                if self.finishing:
                    continue  # drained, so closing later sends no RST
                kind = type(event)
                if kind is Audio or kind is Dtmf:
                    self._deliver(event)  # type: ignore[arg-type]
                elif kind is Uuid:
                    self._arrived(event.value)  # type: ignore[union-attr]
                elif kind is Closed:
                    self.peer_closed = not self.finishing
                elif kind is ErrorMessage:
                    log.warning("AudioSocket %s: error message %r", self.uuid, event.payload)  # type: ignore[union-attr]
        except ProtocolError as exc:
            log.warning("AudioSocket connection %s: %s; closing", self.uuid, exc)
            if self.transport is not None:
                self.transport.abort()

    def _deliver(self, event: Audio | Dtmf) -> None:
        handler = self.handler
        if handler is None:
            if len(self._early) < EARLY_EVENTS:
                self._early.append(event)
            return
        if type(event) is Audio:
            handler.on_audio(event.payload, event.rate)
        else:
            handler.on_dtmf(event.digit)  # type: ignore[union-attr]

    def _arrived(self, value: uuid_module.UUID) -> None:
        self._cancel_timer()
        self.uuid = value
        waiter = self._server._waiting.pop(value, None)
        if waiter is None or waiter.done():
            log.warning("AudioSocket connection for unknown call %s: ending it", value)
            self.finish()
            return
        waiter.set_result(self)

    def attach(self, handler: MediaHandler) -> None:
        """Start delivering frames (and those that came before) to `handler`."""
        self.handler = handler
        early, self._early = self._early, []
        for event in early:
            self._deliver(event)
        if self.closed.done():
            self.handler = None
            handler.on_closed()

    # --- sending ---------------------------------------------------------------------------------
    def send_audio(self, pcm: bytes, rate: int = 8000) -> None:
        transport = self.transport
        if transport is not None and not self.finishing and not transport.is_closing():
            transport.write(audio_message(pcm, rate))
            self.frames_sent += 1

    def finish(self) -> None:
        """End the session: Asterisk's AudioSocket() returns 0 and the AGI session goes on."""
        if self.finishing:
            return
        self.finishing = True
        self.handler = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(hangup_message())
        self._cancel_timer()
        self._timer = self._server.loop.call_later(FINISH_TIMEOUT, self._finish_timed_out)

    def _finish_timed_out(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _no_uuid(self) -> None:
        log.warning("AudioSocket connection sent no UUID within %g s; closing", UUID_TIMEOUT)
        if self.transport is not None:
            self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AudioSocketServer:
    """`await server.start()`; `server.expect(uuid)` before asking Asterisk to connect; `await stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9093) -> None:
        self.host = host
        self.port = port
        self.loop = asyncio.get_event_loop()
        self.clock = MediaClock(self.loop)
        self.connections: set[AudioSocketConnection] = set()
        self._waiting: dict[uuid_module.UUID, asyncio.Future[AudioSocketConnection]] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.clock = MediaClock(self.loop)
        self._server = await self.loop.create_server(
            lambda: AudioSocketConnection(self), self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def expect(self, value: uuid_module.UUID) -> asyncio.Future[AudioSocketConnection]:
        future: asyncio.Future[AudioSocketConnection] = self.loop.create_future()
        self._waiting[value] = future
        return future

    def forget(self, value: uuid_module.UUID) -> None:
        future = self._waiting.pop(value, None)
        if future is not None and not future.done():
            future.cancel()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.finish()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
