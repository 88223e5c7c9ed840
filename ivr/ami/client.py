"""AMI client for the engine: queue figures, events and originates, never an exception in a call.

Built on panoramisk's Manager (action/response matching, event callbacks), with these of its defects
worked around here rather than patched (panoramisk 1.4):
  * it decodes each recv() chunk on its own with errors='ignore', so a Cyrillic caller name split
    across two TCP reads loses characters -> `_IvrAmiProtocol` feeds bytes to our `AmiParser`;
  * it reconnects every `reconnect_timeout` seconds forever, logging at ERROR each time, and even
    after close() -> `_ManagedManager` never reconnects; `AmiClient` does, with exponential backoff,
    logging one line per state change;
  * it re-sends unanswered actions after a reconnect (an Originate could ring someone twice, late)
    -> the replay list is emptied on every disconnect;
  * a future for an action in flight when the socket drops is never resolved -> every request here
    waits on "reply or connection lost or timeout";
  * its keep-alive Ping ignores the reply, so a half-dead TCP connection is never noticed -> our
    keep-alive closes the connection when Ping goes unanswered;
  * an exception in an event callback escapes into data_received and kills the connection -> each
    subscriber is called inside its own try/except;
  * a failed login is not distinguished from a dropped socket -> the login reply is checked and a
    rejection is logged as such.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message as PanoramiskMessage

from ivr.ami.protocol import AmiParser, AmiProtocolError, HeaderInjectionError, Message, check_header
from ivr.config import AmiSettings

log = logging.getLogger(__name__)

DEFAULT_EVENTS = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "Hangup",
        "UserEvent",
        "FullyBooted",
        "Shutdown",
    }
)
# OriginateResponse "Reason:" codes (Asterisk's AST_CONTROL_* values).
ORIGINATE_REASONS = {
    0: "failed (no such extension or channel)",
    1: "hung up before answer",
    3: "no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}

_STATE_PHRASES = {
    "unreachable": "unreachable at",
    "rejected": "login rejected by",
    "lost": "connection lost to",
    "timeout": "not answering at",
}

EventCallback = Callable[[Message], Awaitable[None] | None]


@attrs.frozen
class QueueSummary:
    queue: str
    logged_in: int
    available: int
    callers: int
    hold_time: int  # seconds, app_queue's running average
    talk_time: int
    longest_hold_time: int


@attrs.frozen
class QueueMemberInfo:
    name: str
    interface: str
    status: int  # device state: 1 not in use, 2 in use, 5 unavailable, 6 ringing...
    paused: bool
    paused_reason: str
    in_call: bool
    calls_taken: int


@attrs.frozen
class QueueEntryInfo:
    position: int
    channel: str
    uniqueid: str
    caller_id_num: str
    caller_id_name: str
    wait: int  # seconds


@attrs.frozen
class QueueStatus:
    queue: str
    calls: int
    hold_time: int
    talk_time: int
    completed: int
    abandoned: int
    members: tuple[QueueMemberInfo, ...]
    entries: tuple[QueueEntryInfo, ...]


@attrs.frozen
class OriginateResult:
    success: bool
    reason: str
    reason_code: int | None = None
    uniqueid: str | None = None
    channel: str | None = None
    action_id: str | None = None


class Subscription:
    """Returned by subscribe(); call it (or .cancel()) to stop receiving events."""

    def __init__(self, client: AmiClient, callback: EventCallback, events: frozenset[str] | None) -> None:
        self._client = client
        self.callback = callback
        self.events = events

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def cancel(self) -> None:
        self._client._subscriptions.discard(self)

    __call__ = cancel


def _to_int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _panoramisk_message(message: Message) -> PanoramiskMessage:
    headers: dict[str, Any] = {}
    for key, value in message.headers:
        if key in headers:
            previous = headers[key]
            headers[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            headers[key] = value
    converted = PanoramiskMessage(headers)
    converted.ivr_message = message  # the ordered original, handed to our subscribers
    return converted


class _IvrAmiProtocol(AMIProtocol):
    """panoramisk's protocol with our incremental byte parser in front of its message handling."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.parser = AmiParser()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except AmiProtocolError as exc:
            log.warning("AMI: %s; dropping the connection", exc)
            self.transport.close()
            return
        if self.version is None and self.parser.version:
            self.version = self.parser.version
        for message in messages:
            self.handle_message(_panoramisk_message(message))


class _ManagedManager(Manager):
    """A Manager that reports connection events to its AmiClient instead of reconnecting itself."""

    def __init__(self, owner: AmiClient, lost: asyncio.Future[str], **config: Any) -> None:
        super().__init__(**config)
        self._owner = owner
        self.lost = lost
        # Nothing is ever replayed after a reconnect, so the replay hook has nothing to do.
        self.callbacks["FullyBooted"].remove(self.send_awaiting_actions)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # AmiClient saw the failure when awaiting the connect task
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = super().login(future)
        if ok:
            # Synchronously, so that the FullyBooted event right behind the reply already sees
            # the client connected.
            self._owner._logged_in(self)
        return ok

    def ping(self) -> None:
        self.pinger = None  # AmiClient pings and checks the reply itself

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()
        if not self.lost.done():
            if isinstance(exc, PanoramiskMessage):  # the Shutdown event
                reason = "Asterisk shut down"
            else:
                reason = f"connection closed ({exc})" if exc else "connection closed by Asterisk"
            self.lost.set_result(reason)


class AmiClient:
    """One long-lived AMI connection, re-established with backoff whenever it is lost.

    Every public call returns None (or a failed OriginateResult) when AMI is unavailable, slow or
    refuses; the reason is logged once per outage, never raised to the call handler.
    """

    def __init__(
        self,
        settings: AmiSettings,
        *,
        connect_timeout: float = 5.0,
        action_timeout: float = 5.0,
        ping_interval: float = 20.0,
    ) -> None:
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self._manager: _ManagedManager | None = None
        self._subscriptions: set[Subscription] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._state = "stopped"
        self._outage_logged = False
        self._connected_event = asyncio.Event()
        self._ids = itertools.count(1)
        self._id_prefix = f"ivr-{uuid.uuid4().hex[:8]}"

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; calls return None until logged in."""
        if not self.settings.enabled:
            log.info("AMI disabled (no [ami] host configured): queue figures and originate unavailable")
            return
        if self._supervisor is None:
            self._closing = False
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-client")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._manager is not None and not self._manager.lost.done()

    @property
    def state(self) -> str:
        """stopped, connecting, connected, unreachable, rejected, lost or timeout."""
        return self._state

    async def close(self) -> None:
        self._closing = True
        manager, self._manager = self._manager, None
        self._connected_event.clear()
        if manager is not None:
            if not manager.lost.done():
                manager.lost.set_result("client closed")
            manager.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
            self._supervisor = None
        self._state = "stopped"

    async def __aenter__(self) -> AmiClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _set_state(self, state: str, detail: str) -> None:
        if state == self._state:
            log.debug("AMI still %s: %s", state, detail)
            return
        self._state = state
        where = f"{self.settings.host}:{self.settings.port}"
        if state == "connected":
            log.info("AMI connected to %s as %r", where, self.settings.user)
            return
        log.warning(
            "AMI %s %s (%s); retrying with backoff %.3g-%.3g s",
            _STATE_PHRASES.get(state, state),
            where,
            detail,
            self.settings.reconnect_min,
            self.settings.reconnect_max,
        )

    async def _supervise(self) -> None:
        delay = self.settings.reconnect_min
        while not self._closing:
            self._connected_event.clear()
            state, detail, was_up = await self._session()
            if self._closing:
                return
            self._set_state(state, detail)
            if was_up:
                delay = self.settings.reconnect_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self) -> tuple[str, str, bool]:
        """Connect, log in, keep alive until lost. Returns (state, detail, was_logged_in)."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[str] = loop.create_future()
        manager = _ManagedManager(
            self,
            lost,
            host=self.settings.host,
            port=self.settings.port,
            username=self.settings.user,
            secret=self.settings.secret,
            loop=loop,
            protocol_factory=_IvrAmiProtocol,
            log=logging.getLogger("ivr.ami.panoramisk"),
        )
        manager.register_event("*", self._dispatch)
        try:
            try:
                await asyncio.wait_for(manager.connect(), self.connect_timeout)
            except TimeoutError:
                return "unreachable", f"no TCP connection within {self.connect_timeout:g} s", False
            except OSError as exc:
                return "unreachable", exc.strerror or str(exc), False
            login = manager.authenticated_future
            if login is None:
                return "lost", "connection closed before login", False
            await asyncio.wait(
                {login, lost}, timeout=self.action_timeout + 2, return_when=asyncio.FIRST_COMPLETED
            )
            if not login.done():
                if lost.done():
                    return "lost", lost.result(), False
                return "timeout", "no reply to Login", False
            reply = login.result()
            if not reply.success:
                return (
                    "rejected",
                    f"login as {self.settings.user!r}: {reply.get('Message', 'refused')}",
                    False,
                )
            await self._keep_alive(manager)
            return "lost", lost.result(), True
        finally:
            if self._manager is manager:
                self._manager = None
                self._connected_event.clear()
            if not lost.done():
                lost.set_result("client closed")
            manager.close()

    def _logged_in(self, manager: _ManagedManager) -> None:
        self._manager = manager
        self._outage_logged = False
        self._set_state("connected", "")
        self._connected_event.set()

    async def _keep_alive(self, manager: _ManagedManager) -> None:
        while not manager.lost.done():
            done, _ = await asyncio.wait({manager.lost}, timeout=self.ping_interval)
            if done:
                return
            reply = await self._request({"Action": "Ping"}, self.action_timeout, quiet=True)
            if reply is None and not manager.lost.done():
                manager.lost.set_result(f"no reply to Ping within {self.action_timeout:g} s")
                manager.close()

    # ---- events -----------------------------------------------------------------------------
    def subscribe(
        self, callback: EventCallback, events: Iterable[str] | None = DEFAULT_EVENTS
    ) -> Subscription:
        """Call `callback(message)` for each event named in `events` (None: every event).

        The callback may be a coroutine function; its errors are logged, never propagated.
        """
        subscription = Subscription(self, callback, None if events is None else frozenset(events))
        self._subscriptions.add(subscription)
        return subscription

    def _dispatch(self, manager: Manager, event: PanoramiskMessage) -> None:
        message: Message | None = getattr(event, "ivr_message", None)
        if message is None or message.event is None:
            return
        for subscription in list(self._subscriptions):
            if not subscription.wants(message.event):
                continue
            try:
                result = subscription.callback(message)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_callback_failure)
            except Exception:
                log.exception("AMI event subscriber %r failed on %s", subscription.callback, message.event)

    # ---- requests ---------------------------------------------------------------------------
    def _next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _unavailable(self, what: str, why: str) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("AMI unavailable (%s): %s returns no result until it is back", why, what)

    async def _request(self, headers: Mapping[str, Any], timeout: float, *, quiet: bool = False) -> Any:
        """Send one action; its reply (a panoramisk Message or list of them), or None."""
        name = str(headers.get("Action"))
        try:
            for key, value in headers.items():
                for item in value if isinstance(value, list | tuple) else (value,):
                    check_header(key, str(item))
        except HeaderInjectionError as exc:
            log.error("AMI %s not sent: %s", name, exc)
            return None
        manager = self._manager
        if manager is None or manager.lost.done():
            if not quiet:
                self._unavailable(name, f"not connected, {self._state}")
            return None
        action = Action(dict(headers))
        if "ActionID" not in headers:
            action["ActionID"] = self._next_action_id()
        future = manager.send_action(action)
        done, _ = await asyncio.wait(
            {future, manager.lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if future in done:
            return future.result()
        manager.protocol.responses.pop(action.id, None)
        if not quiet:
            why = manager.lost.result() if manager.lost.done() else f"no reply within {timeout:g} s"
            self._unavailable(name, why)
        return None

    async def queue_summary(self, queue: str) -> QueueSummary | None:
        reply = await self._request({"Action": "QueueSummary", "Queue": queue}, self.action_timeout)
        for item in _list_items(reply, "QueueSummary"):
            if item.get("Queue") == queue:
                return QueueSummary(
                    queue=queue,
                    logged_in=_to_int(item.get("LoggedIn")),
                    available=_to_int(item.get("Available")),
                    callers=_to_int(item.get("Callers")),
                    hold_time=_to_int(item.get("HoldTime")),
                    talk_time=_to_int(item.get("TalkTime")),
                    longest_hold_time=_to_int(item.get("LongestHoldTime")),
                )
        return None

    async def queue_status(self, queue: str) -> QueueStatus | None:
        reply = await self._request({"Action": "QueueStatus", "Queue": queue}, self.action_timeout)
        params = next((p for p in _list_items(reply, "QueueParams") if p.get("Queue") == queue), None)
        if params is None:
            return None
        members = tuple(
            QueueMemberInfo(
                name=m.get("Name", ""),
                interface=m.get("Location", ""),
                status=_to_int(m.get("Status")),
                paused=m.get("Paused") == "1",
                paused_reason=m.get("PausedReason", ""),
                in_call=m.get("InCall") == "1",
                calls_taken=_to_int(m.get("CallsTaken")),
            )
            for m in _list_items(reply, "QueueMember")
            if m.get("Queue") == queue
        )
        entries = tuple(
            QueueEntryInfo(
                position=_to_int(e.get("Position")),
                channel=e.get("Channel", ""),
                uniqueid=e.get("Uniqueid", ""),
                caller_id_num=e.get("CallerIDNum", ""),
                caller_id_name=e.get("CallerIDName", ""),
                wait=_to_int(e.get("Wait")),
            )
            for e in _list_items(reply, "QueueEntry")
            if e.get("Queue") == queue
        )
        return QueueStatus(
            queue=queue,
            calls=_to_int(params.get("Calls")),
            hold_time=_to_int(params.get("Holdtime")),
            talk_time=_to_int(params.get("TalkTime")),
            completed=_to_int(params.get("Completed")),
            abandoned=_to_int(params.get("Abandoned")),
            members=members,
            entries=entries,
        )

    async def originate(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        timeout_ms: int = 30000,
        action_id: str | None = None,
    ) -> OriginateResult:
        """Async Originate; waits for its OriginateResponse (ring time plus action_timeout)."""
        action_id = action_id or self._next_action_id()
        headers: dict[str, Any] = {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": channel,
            "Context": context,
            "Exten": exten,
            "Priority": str(priority),
            "Timeout": str(int(timeout_ms)),
            "Async": "true",
        }
        if caller_id is not None:
            headers["CallerID"] = caller_id
        if variables:
            bad = [name for name in variables if not name or "=" in name]
            if bad:
                return OriginateResult(False, f"invalid variable name {bad[0]!r}", action_id=action_id)
            headers["Variable"] = [f"{name}={value}" for name, value in variables.items()]
        reply = await self._request(headers, timeout_ms / 1000 + self.action_timeout)
        if reply is None:
            return OriginateResult(
                False, "AMI unavailable or no OriginateResponse in time", action_id=action_id
            )
        messages = [getattr(m, "ivr_message", None) for m in (reply if isinstance(reply, list) else [reply])]
        response = next((m for m in messages if m is not None and m.event == "OriginateResponse"), None)
        if response is None:
            first = messages[0]
            text = first.get("Message", "refused") if first is not None else "refused"
            return OriginateResult(False, text, action_id=action_id)
        code = _to_int(response.get("Reason"))
        uniqueid = response.get("Uniqueid")
        return OriginateResult(
            success=response.get("Response") == "Success",
            reason=ORIGINATE_REASONS.get(code, f"reason {code}"),
            reason_code=code,
            uniqueid=None if uniqueid in (None, "<unknown>") else uniqueid,
            channel=response.get("Channel"),
            action_id=action_id,
        )


def _list_items(reply: Any, event: str) -> list[Message]:
    if not isinstance(reply, list):
        return []
    items = (getattr(m, "ivr_message", None) for m in reply)
    return [m for m in items if m is not None and m.event == event]


def _log_callback_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("AMI event subscriber failed", exc_info=task.exception())
