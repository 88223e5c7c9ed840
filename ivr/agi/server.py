"""The FastAGI server: a thin asyncio layer over the sans-I/O parser and the Channel.

One asyncio.Protocol per connection (no stream reader/writer pair: less work per command, which is
what the per-call CPU budget is spent on). A connection that sends garbage, an over-long line, or
closes or stalls before its environment block ends is dropped with one log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ivr.agi.channel import CallEnded, Channel
from ivr.agi.protocol import (
    NEED_DATA,
    AgiParser,
    Closed,
    Environment,
    HangupNotice,
    ProtocolError,
    Reply,
)

log = logging.getLogger("ivr.agi")

_SWEEP_SLICE = 500  # connections the deadline watchdog checks before letting the loop serve calls

Handler = Callable[[Channel], Awaitable[None]]
# Picks the handler for a script name (agi_network_script); None = unknown script.
Router = Callable[[str], Handler | None]


@attrs.define
class ServerStats:
    connections: int = 0
    calls_started: int = 0
    calls_finished: int = 0
    hangups: int = 0
    dropped: int = 0  # protocol errors, timeouts before the environment block
    unknown_scripts: int = 0
    handler_errors: int = 0


class _AgiConnection(asyncio.Protocol):
    __slots__ = ("_parser", "_peername", "_server", "_transport", "channel", "connected_at", "task")

    def __init__(self, server: AgiServer) -> None:
        self._server = server
        self._parser = AgiParser(server.max_line)
        self._transport: asyncio.Transport | None = None
        self.connected_at = 0.0  # the watchdog drops it if no environment block came in time
        self._peername: Any = "?"  # (host, port, ...) from the transport
        self.channel: Channel | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self._peername = transport.get_extra_info("peername")
        self._server._connections.add(self)
        self._server.stats.connections += 1
        self.connected_at = self._server._loop.time()

    @property
    def _peer(self) -> str:
        """host:port, for log lines (formatted when one is written, not for every call)."""
        peer = self._peername
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def data_received(self, data: bytes) -> None:
        channel = self.channel
        if channel is not None:
            try:
                reply = self._parser.receive_reply(data)
            except ProtocolError as exc:
                self.drop(f"protocol error: {exc}")
                return
            if reply is not None:
                channel.feed_reply(reply)
                return
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        if self.channel is not None:
            self.channel.connection_lost()

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    return
                if type(event) is Reply:
                    if self.channel is not None:
                        self.channel.feed_reply(event)
                elif type(event) is HangupNotice:
                    if self.channel is not None:
                        self.channel.feed_hangup()
                elif type(event) is Environment:
                    self._start_call(event)
                elif type(event) is Closed:
                    return
        except ProtocolError as exc:
            self.drop(f"protocol error: {exc}")

    def drop(self, reason: str) -> None:
        self._server.stats.dropped += 1
        log.warning("dropping AGI connection from %s: %s", self._peer, reason)
        if self._transport is not None:
            self._transport.abort()
        if self.channel is not None:
            self.channel.connection_lost()

    def expire(self, now: float) -> None:
        """Called by the server's watchdog: enforce the environment and command timeouts."""
        channel, transport = self.channel, self._transport
        if channel is not None:
            channel.expire(now)
        elif now >= self.connected_at + self._server.env_timeout and transport and not transport.is_closing():
            self.drop(f"no complete AGI environment within {self._server.env_timeout:g} s")

    def _start_call(self, event: Environment) -> None:
        assert self._transport is not None
        self.channel = Channel(
            event.env,
            self._transport.write,
            self._server._loop,
            self._server.command_timeout,
            supervised=True,
            observer=self._server.command_observer,
        )
        peer = self._peername  # the Asterisk that called: its address
        self.channel.asterisk = peer[0] if isinstance(peer, tuple) else str(peer)
        self.task = self._server._loop.create_task(self._run(self.channel))

    async def _run(self, channel: Channel) -> None:
        server = self._server
        script = channel.env.script
        handler = server.router(script)
        server.stats.calls_started += 1
        started = time.monotonic()
        try:
            if handler is None:
                server.stats.unknown_scripts += 1
                # Hanging up would drop the caller: closing the session, below, hands the call back
                # to the dialplan, whose next priority can queue it.
                log.warning(
                    "unknown AGI script %r from %s (channel %s): handed back to the dialplan",
                    script,
                    self._peer,
                    channel.env.channel,
                )
                return
            await handler(channel)
        except CallEnded as exc:
            server.stats.hangups += 1
            log.info("call %s ended: %s", channel.env.uniqueid, exc)
        except asyncio.CancelledError:
            log.info("call %s stopped by engine shutdown", channel.env.uniqueid)
        except Exception:
            server.stats.handler_errors += 1
            log.exception("call %s: handler %r failed", channel.env.uniqueid, script)
        finally:
            server.stats.calls_finished += 1
            if log.isEnabledFor(logging.DEBUG):  # else its arguments are still worked out on every call
                log.debug("call %s done in %.3f s", channel.env.uniqueid, time.monotonic() - started)
            # Closing hands the call back to the dialplan: if the engine did not route it, the
            # dialplan's next priority (asterisk-conf: the operator queue) takes the caller.
            if self._transport is not None and not self._transport.is_closing():
                self._transport.close()


class AgiServer:
    """FastAGI listener: `await server.start()`, then `await server.stop(grace)`."""

    def __init__(
        self,
        router: Router,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        backlog: int = 1024,
        max_line: int = 8192,
        env_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.backlog = backlog
        self.max_line = max_line
        self.env_timeout = env_timeout
        self.command_timeout = command_timeout
        self.stats = ServerStats()
        # Optional: told (command, seconds) for every AGI reply (the /metrics histogram).
        self.command_observer: Callable[[str, float], None] | None = None
        self._connections: set[_AgiConnection] = set()
        self._server: asyncio.Server | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._loop = asyncio.get_event_loop()

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _AgiConnection(self), self.host, self.port, backlog=self.backlog, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._watchdog = self._loop.create_task(self._watch_deadlines())
        return self.port

    async def _watch_deadlines(self) -> None:
        """Every command and every environment block has a timeout; one sweep over the connections
        enforces them all (rather than a timer per command and per connection)."""
        # A second's precision is plenty for timeouts of 10 s and more; short ones (tests) sweep faster.
        interval = min(1.0, self.env_timeout / 4, self.command_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            await self.sweep_deadlines(self._loop.time())

    async def sweep_deadlines(self, now: float) -> None:
        """One pass of the watchdog: end every command and environment block overdue at `now`.

        In slices, serving calls in between: one pass over 5,000 connections took 2.4-2.7 ms, and with
        the journal's sweep on the same second it showed as a 5-6 ms stall of every call (4 of 15 stalls
        over 5 ms in a run at 5,000 lines). A connection gone since is harmless: nothing is pending."""
        connections = list(self._connections)
        for start in range(0, len(connections), _SWEEP_SLICE):
            if start:
                await asyncio.sleep(0)
            for connection in connections[start : start + _SWEEP_SLICE]:
                channel = connection.channel
                # Inline the common "waiting, not yet due" case: a loop pass, not a method call per
                # connection.
                if channel is None or (now >= channel.deadline and channel.busy):
                    connection.expire(now)

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self._connections if c.task is not None and not c.task.done())

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; let running calls finish for up to `grace` seconds; then end them.

        Ended calls have their AGI connection closed, so Asterisk continues the dialplan (to the
        operator queue in asterisk-conf) rather than dropping the caller.
        """
        if self._server is not None:
            self._server.close()
        tasks = [c.task for c in self._connections if c.task is not None and not c.task.done()]
        if tasks:
            log.info("waiting up to %g s for %d running calls", grace, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for connection in list(self._connections):
            if connection._transport is not None:
                connection._transport.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
