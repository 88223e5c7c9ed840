"""A fake Asterisk Manager Interface over real TCP, answering as the recorded Asterisk 22.10.1 does.

Every reply layout here (header names, their order, the position of ActionID, message texts) is taken
from shared/asterisk/ami/*.txt; tests/test_fake_ami.py replays those transcripts against this server
and compares. What the fake does NOT model is the dialplan: an Originate does not produce the
Newchannel/Newexten/Hangup storm of a real call. Queue life is driven instead by scripted state and
helpers (caller_join/caller_leave/caller_abandon) that emit the recorded event layouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable

import attrs

from ivr.ami.protocol import AmiParser, AmiProtocolError, Message, banner_bytes, serialize

log = logging.getLogger(__name__)

Pairs = list[tuple[str, str]]

# Device states as app_queue reports them in "Status:" (ast_device_state).
DEVICE_UNKNOWN, NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD = range(9)
DEVICE_STATE_TEXT = {
    DEVICE_UNKNOWN: "Unknown",
    NOT_INUSE: "Not in use",
    INUSE: "In use",
    BUSY: "Busy",
    INVALID: "Invalid",
    UNAVAILABLE: "Unavailable",
    RINGING: "Ringing",
    RINGINUSE: "Ring+Inuse",
    ONHOLD: "On Hold",
}
# OriginateResponse "Reason:" codes (AST_CONTROL_*): 0 failed, 1 hangup, 3 no answer, 4 answered,
# 5 busy, 8 congestion.
REASON_ANSWERED = 4
REASON_FAILED = 0

ASTERISK_VERSION = "22.10.1"
AMI_VERSION = "11.0.0"
VERSION_LINE = (
    f"Asterisk {ASTERISK_VERSION} built by root @ vm on a x86_64 running Linux on 2026-11-24 20:16:00 UTC"
)
UNKNOWN = "<unknown>"

# Event name -> Privilege header, for events pushed with emit() without an explicit privilege.
EVENT_PRIVILEGE = {
    "UserEvent": "user,all",
    "FullyBooted": "system,all",
    "Shutdown": "system,all",
    "Reload": "system,all",
    "Newexten": "dialplan,all",
    "VarSet": "dialplan,all",
}
AGENT_EVENTS = ("Queue", "Agent")


def privilege_for(event: str) -> str:
    if event in EVENT_PRIVILEGE:
        return EVENT_PRIVILEGE[event]
    if event.startswith(AGENT_EVENTS):
        return "agent,all"
    return "call,all"


@attrs.define
class QueueMember:
    interface: str
    name: str = ""  # MemberName; Asterisk shows the interface when none was given
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = attrs.field(factory=lambda: int(time.time()))
    in_call: bool = False
    status: int = NOT_INUSE
    paused: bool = False
    paused_reason: str = ""
    wrapuptime: int = 0
    ringinuse: bool = True

    def __attrs_post_init__(self) -> None:
        self.name = self.name or self.interface
        self.state_interface = self.state_interface or self.interface

    @property
    def logged_in(self) -> bool:
        return self.status not in (UNAVAILABLE, INVALID)

    @property
    def available(self) -> bool:
        return self.logged_in and self.status in (NOT_INUSE, DEVICE_UNKNOWN) and not self.paused


@attrs.define
class QueueCaller:
    channel: str
    uniqueid: str
    linkedid: str = ""
    caller_id_num: str = UNKNOWN
    caller_id_name: str = UNKNOWN
    connected_line_num: str = ""
    connected_line_name: str = ""
    language: str = "en"
    account_code: str = ""
    context: str = "default"
    exten: str = "s"
    dialplan_priority: int = 1
    queue_priority: int = 0
    joined_at: float = attrs.field(factory=time.monotonic)
    original_position: int = 0

    def __attrs_post_init__(self) -> None:
        self.linkedid = self.linkedid or self.uniqueid
        self.connected_line_num = self.connected_line_num or self.caller_id_num
        self.connected_line_name = self.connected_line_name or self.caller_id_name

    def waited(self) -> int:
        return int(time.monotonic() - self.joined_at)

    def snapshot(self) -> Pairs:
        """The standard channel snapshot block that starts every channel event."""
        return [
            ("Channel", self.channel),
            ("ChannelState", "6"),
            ("ChannelStateDesc", "Up"),
            ("CallerIDNum", self.caller_id_num),
            ("CallerIDName", self.caller_id_name),
            ("ConnectedLineNum", self.connected_line_num),
            ("ConnectedLineName", self.connected_line_name),
            ("Language", self.language),
            ("AccountCode", self.account_code),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.dialplan_priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]


@attrs.define
class QueueState:
    """What app_queue knows about one queue; counters are set by the test, not simulated."""

    name: str
    strategy: str = "ringall"
    max: int = 0
    members: list[QueueMember] = attrs.field(factory=list)
    callers: list[QueueCaller] = attrs.field(factory=list)
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    service_level: int = 0
    service_level_perf: float = 0.0
    service_level_perf2: float = 0.0
    weight: int = 0

    def member(self, interface: str) -> QueueMember | None:
        return next((m for m in self.members if m.interface.lower() == interface.lower()), None)

    def caller(self, channel: str) -> QueueCaller | None:
        return next((c for c in self.callers if c.channel == channel), None)

    def longest_hold(self) -> int:
        return max((c.waited() for c in self.callers), default=0)


@attrs.frozen
class OriginateOutcome:
    """What a scripted Originate does. Reason defaults to 4 (answered) or 0 (failed)."""

    success: bool = True
    reason: int | None = None
    delay: float = 0.0  # seconds before OriginateResponse (async) or the reply (sync)
    join_queue: str | None = None  # after answering, the called leg waits in this queue
    language: str = "en"
    dialplan_priority: int = 1  # priority of Queue() in the dialplan, shown in queue events
    answer_after: float | None = None  # seconds in the queue before an agent takes the call
    # A callback ([ivr-callback-queue] in asterisk-conf): after answering, the queue gives the citizen
    # back with this QUEUESTATUS (TIMEOUT, JOINEMPTY...), and the dialplan sends UserEvent IVRCallback.
    queue_status: str | None = None
    given_back_after: float = 0.2  # seconds from the answer to that UserEvent

    @property
    def reason_code(self) -> int:
        if self.reason is not None:
            return self.reason
        return REASON_ANSWERED if self.success else REASON_FAILED


@attrs.frozen
class _OriginateRule:
    outcome: OriginateOutcome
    channel: str | None
    context: str | None

    def matches(self, action: Message) -> bool:
        if self.channel is not None and not fnmatch.fnmatchcase(action.get("Channel", ""), self.channel):
            return False
        return self.context is None or fnmatch.fnmatchcase(action.get("Context", ""), self.context)


def parse_caller_id(text: str | None) -> tuple[str, str]:
    """'"IVR Tester" <79001234567>' -> ('79001234567', 'IVR Tester'); missing parts are <unknown>."""
    if not text:
        return UNKNOWN, UNKNOWN
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].rpartition("<")
        name = name.strip().strip('"').strip()
        return number.strip() or UNKNOWN, name or UNKNOWN
    return text, UNKNOWN


def _event_tv() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


# CLI commands the fake knows, as word tuples; used to phrase "No such command" like Asterisk does.
CLI_COMMANDS = (
    ("!",),
    ("core", "show", "version"),
    ("core", "show", "help"),
    ("core", "show", "channels"),
    ("core", "stop", "now"),
    ("queue", "show"),
    ("module", "show"),
    ("dialplan", "show"),
    ("manager", "show", "commands"),
)


def _cli_prefix_known(words: list[str]) -> bool:
    """Asterisk's find_cli(words, -1): an exact command, or a mismatch only on both last words."""
    for command in CLI_COMMANDS:
        i = 0
        while i < len(words) and i < len(command) and words[i].lower() == command[i]:
            i += 1
        if i == len(command):
            if len(words) == len(command):
                return True
            continue
        if i == len(words):
            continue
        if i == len(words) - 1 and i == len(command) - 1:
            return True
    return False


def _cli_best_help(words: list[str]) -> str:
    """The "type 'core show help X'" hint: words up to and including the first unknown one."""
    for x in range(len(words)):
        if not _cli_prefix_known(words[: x + 1]):
            return " ".join(words[: x + 1])
    return " ".join(words)


class _Session:
    """One client connection: its parser, login state and event mask."""

    def __init__(self, ami: FakeAmi, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ami = ami
        self.reader = reader
        self.writer = writer
        self.parser = AmiParser(expect_banner=False)
        self.user: str | None = None
        self.event_classes: frozenset[str] | None = None  # None: all events; empty: none
        self.session_id = f"0x{id(self):x}"
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.remote_address = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local_address = f"IPV4/TCP/{local[0]}/{local[1]}"
        self.session_tv = _event_tv()
        self.closed = False

    @property
    def logged_in(self) -> bool:
        return self.user is not None

    def wants(self, privilege: str) -> bool:
        if self.event_classes is None:
            return True
        classes = {c.strip().lower() for c in privilege.split(",")} - {"all"}
        return bool(classes & self.event_classes)

    def send(self, *messages: Pairs) -> None:
        if self.closed:
            return
        self.writer.write(b"".join(serialize(m) for m in messages))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def security_event(self, event: str, severity: str, *extra: tuple[str, str]) -> Pairs:
        return [
            ("Event", event),
            ("Privilege", "security,all"),
            ("EventTV", _event_tv()),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            *extra,
        ]


Handler = Callable[[_Session, Message], "asyncio.Future[None] | None"]


class FakeAmi:
    """Asyncio AMI server. `async with FakeAmi(username="ivr", secret="test") as ami: port = ami.port`."""

    def __init__(
        self,
        username: str = "ivr",
        secret: str = "test",
        *,
        auth_failure_delay: float = 1.0,
        users: dict[str, str] | None = None,
    ) -> None:
        self.users = dict(users) if users is not None else {username: secret}
        self.auth_failure_delay = auth_failure_delay
        self.host = "127.0.0.1"
        self.port = 0
        self.actions: list[Message] = []  # every action received, from every connection
        self.queues: dict[str, QueueState] = {}
        self.device_states: dict[str, int] = {}  # interface -> Status for members added by QueueAdd
        self.variables: dict[str, str] = {}  # globals set by Setvar without a Channel
        self.processed_calls = 0
        # True: actions are logged but never answered, like an Asterisk stuck on a lock.
        self.unresponsive = False
        self.started_at = time.time()
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # delayed originate outcomes, agent answers
        self._serving: set[asyncio.Task[None]] = set()  # one per connection
        self._rules: list[_OriginateRule] = []
        # Asterisk numbers channels process-wide ("Local/x@y-00000023;1"); tests may set where it is.
        self.next_channel_number = 0x20
        self._uniqueid_seq = 64
        self._handed_out: dict[str, int] = {}
        self._action_arrived = asyncio.Event()
        self._handlers: dict[str, Handler] = {
            "login": self._login,
            "logoff": self._logoff,
            "ping": self._ping,
            "corestatus": self._core_status,
            "coresettings": self._core_settings,
            "command": self._command,
            "events": self._events,
            "userevent": self._user_event,
            "originate": self._originate,
            "queuestatus": self._queue_status,
            "queuesummary": self._queue_summary,
            "queueadd": self._queue_add,
            "queueremove": self._queue_remove,
            "queuepause": self._queue_pause,
            "setvar": self._setvar,
            "hangup": self._hangup,
        }

    # ---- life cycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.host = host
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started_at = time.time()
        return self.port

    async def close(self) -> None:
        """Stop listening and drop every connection without a word (a crash, not a shutdown)."""
        await self._stop_listening()
        for task in list(self._tasks):
            task.cancel()
        for session in list(self._sessions):
            session.close()
        # Connection handlers end by themselves once their sockets are closed; cancelling them
        # would make asyncio's stream callback log the CancelledError.
        pending = [*self._tasks, *self._serving]
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def shutdown(self) -> None:
        """What `core stop now` does: Event: Shutdown to logged-in clients, then close everything."""
        self.emit("Shutdown", ("Shutdown", "Cleanly"), ("Restart", "False"))
        for session in list(self._sessions):
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
        for queue in self.queues.values():
            queue.callers.clear()
        await self.close()

    async def restart(self) -> int:
        """Listen again on the same port, as a restarted Asterisk would."""
        return await self.start(self.host, self.port)

    async def __aenter__(self) -> FakeAmi:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def clients(self) -> int:
        """Logged-in connections."""
        return sum(1 for s in self._sessions if s.logged_in and not s.closed)

    # ---- scripting --------------------------------------------------------------------------
    def set_queue(self, queue: QueueState) -> QueueState:
        self.queues[queue.name] = queue
        return queue

    def queue(self, name: str) -> QueueState:
        if name not in self.queues:
            raise KeyError(f"FakeAmi has no queue {name!r} (known: {', '.join(self.queues) or 'none'})")
        return self.queues[name]

    def add_member(self, queue: str, interface: str, **fields: object) -> QueueMember:
        member = QueueMember(interface, **fields)  # type: ignore[arg-type]
        self.queue(queue).members.append(member)
        return member

    def script_originate(
        self, outcome: OriginateOutcome, *, channel: str | None = None, context: str | None = None
    ) -> None:
        """Originates whose Channel (and Context) match these globs get `outcome`; newest rule wins."""
        self._rules.insert(0, _OriginateRule(outcome, channel, context))

    def add_caller(
        self,
        queue: str,
        channel: str,
        *,
        caller_id_num: str = UNKNOWN,
        caller_id_name: str = UNKNOWN,
        waited: float = 0.0,
        language: str = "en",
        context: str = "default",
        exten: str = "s",
        dialplan_priority: int = 1,
        uniqueid: str | None = None,
        linkedid: str = "",
    ) -> QueueCaller:
        """Put a caller in the queue silently (state only); caller_join() also emits the event."""
        state = self.queue(queue)
        caller = QueueCaller(
            channel,
            uniqueid or self._next_uniqueid(),
            linkedid,
            caller_id_num,
            caller_id_name,
            language=language,
            context=context,
            exten=exten,
            dialplan_priority=dialplan_priority,
            joined_at=time.monotonic() - waited,
            original_position=len(state.callers) + 1,
        )
        state.callers.append(caller)
        return caller

    def caller_join(self, queue: str, channel: str, **fields: object) -> QueueCaller:
        caller = self.add_caller(queue, channel, **fields)  # type: ignore[arg-type]
        count = len(self.queue(queue).callers)
        self.emit(
            "QueueCallerJoin",
            *caller.snapshot(),
            ("Queue", queue),
            ("Position", str(count)),
            ("Count", str(count)),
        )
        return caller

    def caller_leave(self, queue: str, channel: str) -> QueueCaller:
        """The caller left the queue to an agent: QueueCallerLeave, hold time averaged in."""
        state = self.queue(queue)
        caller, position = self._remove_caller(state, channel)
        # app_queue's recalc_holdtime: new = (3 * old + this call's hold) / 4.
        state.holdtime = (state.holdtime * 3 + caller.waited()) >> 2
        self._emit_leave(state, caller, position)
        return caller

    def caller_abandon(self, queue: str, channel: str) -> QueueCaller:
        """The caller hung up while waiting: QueueCallerAbandon then QueueCallerLeave."""
        state = self.queue(queue)
        caller, position = self._remove_caller(state, channel)
        state.abandoned += 1
        self.emit(
            "QueueCallerAbandon",
            *caller.snapshot(),
            ("Queue", queue),
            ("Position", str(position)),
            ("OriginalPosition", str(caller.original_position)),
            ("HoldTime", str(caller.waited())),
        )
        self._emit_leave(state, caller, position)
        return caller

    def _remove_caller(self, state: QueueState, channel: str) -> tuple[QueueCaller, int]:
        caller = state.caller(channel)
        if caller is None:
            raise KeyError(f"no caller {channel!r} waiting in queue {state.name!r}")
        position = state.callers.index(caller) + 1
        state.callers.remove(caller)
        return caller, position

    def _emit_leave(self, state: QueueState, caller: QueueCaller, position: int) -> None:
        self.emit(
            "QueueCallerLeave",
            *caller.snapshot(),
            ("Queue", state.name),
            ("Position", str(position)),
            ("Count", str(len(state.callers))),
        )

    def emit(
        self, event: str, *pairs: tuple[str, str], privilege: str | None = None, **headers: object
    ) -> None:
        """Push an event to every logged-in client whose event mask lets it through."""
        message: Pairs = [("Event", event), ("Privilege", privilege or privilege_for(event))]
        message += [(k, str(v)) for k, v in pairs]
        message += [(k, str(v)) for k, v in headers.items()]
        serialize(message)  # refuse injected CR/LF before anything is written
        for session in list(self._sessions):
            if session.logged_in and session.wants(message[1][1]):
                session.send(message)

    async def wait_for_action(self, name: str, timeout: float = 5.0) -> Message:
        """Actions called `name`, one per call, in arrival order; waits for the next one if needed."""
        key = name.lower()
        while True:
            matching = self.received(name)
            handed = self._handed_out.get(key, 0)
            if handed < len(matching):
                self._handed_out[key] = handed + 1
                return matching[handed]
            await asyncio.wait_for(self._action_arrived.wait(), timeout)

    def received(self, name: str) -> list[Message]:
        """Actions called `name` received so far (any connection)."""
        return [a for a in self.actions if (a.action or "").lower() == name.lower()]

    # ---- connection handling ----------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)  # type: ignore[arg-type]
        try:
            writer.write(banner_bytes(AMI_VERSION))
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    actions = session.parser.feed(data)
                except AmiProtocolError as exc:
                    log.warning("fake AMI: dropping client: %s", exc)
                    break
                for action in actions:
                    await self._dispatch(session, action)
                    if session.closed:
                        break
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            session.close()
            self._sessions.discard(session)
            if task is not None:
                self._serving.discard(task)  # type: ignore[arg-type]

    async def _dispatch(self, session: _Session, action: Message) -> None:
        self.actions.append(action)
        # Wake every wait_for_action(); each re-checks the log, then waits on a fresh event.
        arrived, self._action_arrived = self._action_arrived, asyncio.Event()
        arrived.set()
        name = (action.get("Action") or "").strip()
        if self.unresponsive:
            return
        if not name:
            session.send(self._response(action, "Error", ("Message", "Missing action in request")))
            return
        key = name.lower()
        if not session.logged_in and key not in ("login", "logoff", "challenge"):
            session.send(self._response(action, "Error", ("Message", "Permission denied")))
            return
        handler = self._handlers.get(key)
        if handler is None:
            await self._unknown(session, action, name)
            return
        result = handler(session, action)
        if result is not None:
            await result

    @staticmethod
    def _response(action: Message, status: str, *pairs: tuple[str, str]) -> Pairs:
        """Response first, ActionID second (only when the action carried one), then the rest."""
        message: Pairs = [("Response", status)]
        action_id = action.get("ActionID")
        if action_id is not None:
            message.append(("ActionID", action_id))
        message.extend(pairs)
        return message

    # ---- actions ----------------------------------------------------------------------------
    async def _login(self, session: _Session, action: Message) -> None:
        user = action.get("Username", "")
        if user not in self.users or self.users[user] != action.get("Secret"):
            # Asterisk sleeps about a second on a failed login, answers, then hangs up.
            await asyncio.sleep(self.auth_failure_delay)
            session.send(self._response(action, "Error", ("Message", "Authentication failed")))
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            session.close()
            return
        session.user = user
        events = (action.get("Events") or "on").strip().lower()
        session.event_classes = self._mask(events)
        uptime = str(int(time.time() - self.started_at))
        session.send(
            self._response(action, "Success", ("Message", "Authentication accepted")),
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ],
            session.security_event(
                "SuccessfulAuth",
                "Informational",
                ("AccountID", user),
                ("SessionID", session.session_id),
                ("LocalAddress", session.local_address),
                ("RemoteAddress", session.remote_address),
                ("UsingPassword", "0"),
                ("SessionTV", session.session_tv),
            ),
        )

    @staticmethod
    def _mask(text: str) -> frozenset[str] | None:
        if text in ("on", "yes", "true", "all", "1"):
            return None
        if text in ("off", "no", "false", "0", ""):
            return frozenset()
        return frozenset(c.strip() for c in text.split(",") if c.strip())

    def _logoff(self, session: _Session, action: Message) -> None:
        session.send(self._response(action, "Goodbye", ("Message", "Thanks for all the fish.")))
        session.close()

    def _ping(self, session: _Session, action: Message) -> None:
        session.send(self._response(action, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))

    def _core_status(self, session: _Session, action: Message) -> None:
        started = dt.datetime.fromtimestamp(self.started_at)
        calls = sum(len(q.callers) for q in self.queues.values())
        session.send(
            self._response(
                action,
                "Success",
                ("CoreStartupDate", started.strftime("%Y-%m-%d")),
                ("CoreStartupTime", started.strftime("%H:%M:%S")),
                ("CoreReloadDate", started.strftime("%Y-%m-%d")),
                ("CoreReloadTime", started.strftime("%H:%M:%S")),
                ("CoreCurrentCalls", str(calls)),
                ("CoreProcessedCalls", str(self.processed_calls)),
            )
        )

    def _core_settings(self, session: _Session, action: Message) -> None:
        session.send(
            self._response(
                action,
                "Success",
                ("AMIversion", AMI_VERSION),
                ("AsteriskVersion", ASTERISK_VERSION),
                ("SystemName", ""),
                ("CoreMaxCalls", "0"),
                ("CoreMaxLoadAvg", "0.000000"),
                ("CoreRunUser", ""),
                ("CoreRunGroup", ""),
                ("CoreMaxFilehandles", "0"),
                ("CoreRealTimeEnabled", "No"),
                ("CoreCDRenabled", "No"),
                ("CoreHTTPenabled", "No"),
                ("SoundsSearchCustomDir", "No"),
            )
        )

    def _command(self, session: _Session, action: Message) -> None:
        command = (action.get("Command") or "").strip()
        words = command.split()
        lines: list[str] | None = None
        if [w.lower() for w in words] == ["core", "show", "version"]:
            lines = [VERSION_LINE]
        elif len(words) == 3 and [w.lower() for w in words[:2]] == ["queue", "show"]:
            lines = self._queue_show(words[2])
        status = "Success" if lines is not None else "Error"
        if lines is None:
            lines = [
                f"No such command '{command}' (type 'core show help {_cli_best_help(words)}' "
                "for other possible commands)"
            ]
        output = [("Output", line) for line in lines]
        session.send(self._response(action, status, ("Message", "Command output follows"), *output))

    def _queue_show(self, name: str) -> list[str]:
        q = self.queues.get(name)
        if q is None:
            return [f"No such queue: {name}."]
        now = int(time.time())
        lines = [
            f"{q.name} has {len(q.callers)} calls (max {q.max or 'unlimited'}) in '{q.strategy}' strategy "
            f"({q.holdtime}s holdtime, {q.talktime}s talktime), W:{q.weight}, C:{q.completed}, "
            f"A:{q.abandoned}, SL:{q.service_level_perf:.1f}%, SL2:{q.service_level_perf2:.1f}% "
            f"within {q.service_level}s"
        ]
        lines.append("   Members: " if q.members else "   No Members")
        for m in q.members:
            text = f"      {m.name}"
            if m.name != m.interface:
                text += f" ({m.interface} from {m.state_interface})"
            text += " (ringinuse enabled)" if m.ringinuse else " (ringinuse disabled)"
            if m.membership == "dynamic":
                text += " (dynamic)"
            if m.paused:
                reason = f":{m.paused_reason}" if m.paused_reason else ""
                text += f" (paused{reason} was {now - m.last_pause} secs ago)"
            text += f" ({DEVICE_STATE_TEXT.get(m.status, 'Unknown')})"
            if m.calls_taken:
                text += f" has taken {m.calls_taken} calls (last was {now - m.last_call} secs ago)"
            else:
                text += " has taken no calls yet"
            text += f" (login was {now - m.login_time} secs ago)"
            lines.append(text)
        if q.callers:
            lines.append("   Callers: ")
            for position, c in enumerate(q.callers, 1):
                wait = f"{c.waited() // 60}:{c.waited() % 60:02d}"
                lines.append(f"      {position}. {c.channel} (wait: {wait}, prio: {c.queue_priority})")
        else:
            lines.append("   No Callers")
        lines.append("")
        return lines

    def _events(self, session: _Session, action: Message) -> None:
        mask = self._mask((action.get("EventMask") or "on").strip().lower())
        session.event_classes = mask
        state = "Off" if mask == frozenset() else "On"
        session.send(self._response(action, "Success", ("Events", state)))

    def _user_event(self, session: _Session, action: Message) -> None:
        name = action.get("UserEvent")
        if not name:
            session.send(self._response(action, "Error", ("Message", "Missing UserEvent")))
            return
        session.send(self._response(action, "Success", ("Message", "Event Sent")))
        pairs: Pairs = [("UserEvent", name)]
        if action.action_id is not None:
            pairs.append(("ActionID", action.action_id))
        skip = {"action", "actionid", "userevent"}
        pairs += [(k, v) for k, v in action.headers if k.lower() not in skip]
        self.emit("UserEvent", *pairs)

    def _outcome_for(self, action: Message) -> OriginateOutcome:
        return next((r.outcome for r in self._rules if r.matches(action)), OriginateOutcome())

    async def _originate(self, session: _Session, action: Message) -> None:
        channel = action.get("Channel")
        if not channel:
            session.send(self._response(action, "Error", ("Message", "Channel not specified")))
            return
        outcome = self._outcome_for(action)
        self.processed_calls += 1
        if (action.get("Async") or "").strip().lower() in ("true", "yes", "1", "on"):
            session.send(self._response(action, "Success", ("Message", "Originate successfully queued")))
            self._spawn(self._finish_async_originate(action, outcome))
            return
        await asyncio.sleep(outcome.delay)
        if outcome.success:
            session.send(self._response(action, "Success", ("Message", "Originate successfully queued")))
            self._answered(action, outcome, self._new_channel(channel))
        else:
            session.send(self._response(action, "Error", ("Message", "Originate failed")))

    async def _finish_async_originate(self, action: Message, outcome: OriginateOutcome) -> None:
        await asyncio.sleep(outcome.delay)
        channel = action["Channel"]
        number, name = parse_caller_id(action.get("CallerID"))
        pairs: Pairs = []
        if action.action_id is not None:
            pairs.append(("ActionID", action.action_id))
        legs = self._new_channel(channel) if outcome.success else None
        pairs += [
            ("Response", "Success" if outcome.success else "Failure"),
            ("Channel", legs[0][0] if legs else channel),
        ]
        if action.get("Application"):
            pairs += [("Application", action["Application"]), ("Data", action.get("Data", ""))]
        else:
            pairs += [("Context", action.get("Context", "")), ("Exten", action.get("Exten", ""))]
        pairs += [
            ("Reason", str(outcome.reason_code)),
            ("Uniqueid", legs[0][1] if legs else UNKNOWN),
            ("CallerIDNum", number),
            ("CallerIDName", name),
        ]
        self.emit("OriginateResponse", *pairs, privilege="call,all")
        if legs:
            self._answered(action, outcome, legs)

    def _answered(self, action: Message, outcome: OriginateOutcome, legs: list[tuple[str, str]]) -> None:
        """After answer: if scripted, the far leg runs Queue() and waits there."""
        if outcome.queue_status is not None:
            self._spawn(self._callback_given_back(action, outcome, legs[0]))
        if outcome.join_queue is None:
            return
        channel = action["Channel"]
        exten, _, context = channel.partition("/")[2].partition("@")
        number, name = parse_caller_id(action.get("CallerID"))
        caller_channel, caller_uniqueid = legs[-1]
        self.caller_join(
            outcome.join_queue,
            caller_channel,
            caller_id_num=number,
            caller_id_name=name,
            language=outcome.language,
            context=context or "default",
            exten=exten or "s",
            dialplan_priority=outcome.dialplan_priority,
            uniqueid=caller_uniqueid,
            linkedid=legs[0][1],
        )
        if outcome.answer_after is not None:
            self._spawn(self._agent_answers(outcome.join_queue, caller_channel, outcome.answer_after))

    async def _callback_given_back(
        self, action: Message, outcome: OriginateOutcome, leg: tuple[str, str]
    ) -> None:
        """asterisk-conf's [ivr-callback-queue] after its Queue() gave the citizen back:
        UserEvent(IVRCallback,id: ...,queue: ...,status: ...), headers as written (a dialplan
        UserEvent keeps their case), after the channel snapshot."""
        await asyncio.sleep(outcome.given_back_after)
        number, name = parse_caller_id(action.get("CallerID"))
        variables = dict(v.partition("=")[::2] for v in action.get_all("Variable"))
        channel, uniqueid = leg
        snapshot = QueueCaller(
            channel, uniqueid, caller_id_num=number, caller_id_name=name,
            language=variables.get("IVR_LANG", outcome.language), context="ivr-callback-queue",
            dialplan_priority=5,  # the UserEvent line of [ivr-callback-queue], as a real Asterisk 22 showed
        ).snapshot()  # fmt: skip
        self.emit(
            "UserEvent",
            *snapshot,
            ("UserEvent", "IVRCallback"),
            ("id", variables.get("IVR_CALLBACK_ID", "")),
            ("queue", action.get("Exten", "")),
            ("status", outcome.queue_status or ""),
        )

    async def _agent_answers(self, queue: str, channel: str, after: float) -> None:
        await asyncio.sleep(after)
        if self.queue(queue).caller(channel) is not None:
            self.caller_leave(queue, channel)

    def _new_channel(self, dial: str) -> list[tuple[str, str]]:
        """(channel, uniqueid) legs Asterisk would create: two for Local/, one otherwise."""
        base = f"{dial}-{self.next_channel_number:08x}"
        self.next_channel_number += 1
        if dial.lower().startswith("local/"):
            return [(f"{base};1", self._next_uniqueid()), (f"{base};2", self._next_uniqueid())]
        return [(base, self._next_uniqueid())]

    def _next_uniqueid(self) -> str:
        self._uniqueid_seq += 1
        return f"{int(time.time())}.{self._uniqueid_seq}"

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _queue_status(self, session: _Session, action: Message) -> None:
        wanted = action.get("Queue")
        action_id = action.action_id
        tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
        items: list[Pairs] = []
        now = int(time.time())
        for q in self.queues.values():
            if wanted and q.name != wanted:
                continue
            items.append(
                [
                    ("Event", "QueueParams"),
                    ("Queue", q.name),
                    ("Max", str(q.max)),
                    ("Strategy", q.strategy),
                    ("Calls", str(len(q.callers))),
                    ("Holdtime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("Completed", str(q.completed)),
                    ("Abandoned", str(q.abandoned)),
                    ("ServiceLevel", str(q.service_level)),
                    ("ServicelevelPerf", f"{q.service_level_perf:.1f}"),
                    ("ServicelevelPerf2", f"{q.service_level_perf2:.1f}"),
                    ("Weight", str(q.weight)),
                    *tail,
                ]
            )
            for m in q.members:
                items.append(
                    [
                        ("Event", "QueueMember"),
                        ("Queue", q.name),
                        ("Name", m.name),
                        ("Location", m.interface),
                        ("StateInterface", m.state_interface),
                        ("Membership", m.membership),
                        ("Penalty", str(m.penalty)),
                        ("CallsTaken", str(m.calls_taken)),
                        ("LastCall", str(m.last_call)),
                        ("LastPause", str(m.last_pause)),
                        ("LoginTime", str(m.login_time or now)),
                        ("InCall", "1" if m.in_call else "0"),
                        ("Status", str(m.status)),
                        ("Paused", "1" if m.paused else "0"),
                        ("PausedReason", m.paused_reason),
                        ("Wrapuptime", str(m.wrapuptime)),
                        *tail,
                    ]
                )
            for position, c in enumerate(q.callers, 1):
                items.append(
                    [
                        ("Event", "QueueEntry"),
                        ("Queue", q.name),
                        ("Position", str(position)),
                        ("Channel", c.channel),
                        ("Uniqueid", c.uniqueid),
                        ("CallerIDNum", c.caller_id_num),
                        ("CallerIDName", c.caller_id_name),
                        ("ConnectedLineNum", c.connected_line_num),
                        ("ConnectedLineName", c.connected_line_name),
                        ("Wait", str(c.waited())),
                        ("Priority", str(c.queue_priority)),
                        *tail,
                    ]
                )
        self._send_list(session, action, "Queue status will follow", "QueueStatusComplete", items)

    def _queue_summary(self, session: _Session, action: Message) -> None:
        wanted = action.get("Queue")
        tail: Pairs = [("ActionID", action.action_id)] if action.action_id is not None else []
        items: list[Pairs] = []
        for q in self.queues.values():
            if wanted and q.name != wanted:
                continue
            items.append(
                [
                    ("Event", "QueueSummary"),
                    ("Queue", q.name),
                    ("LoggedIn", str(sum(1 for m in q.members if m.logged_in))),
                    ("Available", str(sum(1 for m in q.members if m.available))),
                    ("Callers", str(len(q.callers))),
                    ("HoldTime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("LongestHoldTime", str(q.longest_hold())),
                    *tail,
                ]
            )
        self._send_list(session, action, "Queue summary will follow", "QueueSummaryComplete", items)

    def _send_list(
        self, session: _Session, action: Message, text: str, complete: str, items: list[Pairs]
    ) -> None:
        """EventList: start reply, the items (ActionID last), then the *Complete event (ActionID second)."""
        done: Pairs = [("Event", complete)]
        if action.action_id is not None:
            done.append(("ActionID", action.action_id))
        done += [("EventList", "Complete"), ("ListItems", str(len(items)))]
        start = self._response(action, "Success", ("EventList", "start"), ("Message", text))
        session.send(start, *items, done)

    def _member_event(self, event: str, queue: QueueState, m: QueueMember) -> None:
        self.emit(
            event,
            ("Queue", queue.name),
            ("MemberName", m.name),
            ("Interface", m.interface),
            ("StateInterface", m.state_interface),
            ("Membership", m.membership),
            ("Penalty", str(m.penalty)),
            ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)),
            ("LastPause", str(m.last_pause)),
            ("LoginTime", str(m.login_time)),
            ("InCall", "1" if m.in_call else "0"),
            ("Status", str(m.status)),
            ("Paused", "1" if m.paused else "0"),
            ("PausedReason", m.paused_reason),
            ("Ringinuse", "1" if m.ringinuse else "0"),
            ("Wrapuptime", str(m.wrapuptime)),
            privilege="agent,all",
        )

    def member_status(self, queue: str, interface: str, status: int) -> None:
        """A member's device changed state (ringing, in use...): QueueMemberStatus."""
        state = self.queue(queue)
        member = state.member(interface)
        if member is None:
            raise KeyError(f"no member {interface!r} in queue {queue!r}")
        member.status = status
        self._member_event("QueueMemberStatus", state, member)

    def _queue_add(self, session: _Session, action: Message) -> None:
        name, interface = action.get("Queue"), action.get("Interface")
        if not name:
            session.send(self._response(action, "Error", ("Message", "'Queue' not specified.")))
            return
        if not interface:
            session.send(self._response(action, "Error", ("Message", "'Interface' not specified.")))
            return
        queue = self.queues.get(name)
        if queue is None:
            message = "Unable to add interface to queue: No such queue"
            session.send(self._response(action, "Error", ("Message", message)))
            return
        if queue.member(interface) is not None:
            session.send(
                self._response(action, "Error", ("Message", "Unable to add interface: Already there"))
            )
            return
        member = QueueMember(
            interface,
            name=action.get("MemberName") or "",
            state_interface=action.get("StateInterface") or "",
            membership="dynamic",
            penalty=int(action.get("Penalty") or 0),
            paused=_truthy(action.get("Paused")),
            paused_reason=action.get("Reason") or "",
            status=self.device_states.get(interface, NOT_INUSE),
        )
        queue.members.append(member)
        session.send(self._response(action, "Success", ("Message", "Added interface to queue")))
        self._member_event("QueueMemberAdded", queue, member)

    def _queue_remove(self, session: _Session, action: Message) -> None:
        name, interface = action.get("Queue"), action.get("Interface")
        if not name or not interface:
            message = "Need 'Queue' and 'Interface' parameters."
            session.send(self._response(action, "Error", ("Message", message)))
            return
        queue = self.queues.get(name)
        if queue is None:
            message = "Unable to remove interface from queue: No such queue"
            session.send(self._response(action, "Error", ("Message", message)))
            return
        member = queue.member(interface)
        if member is None:
            session.send(
                self._response(action, "Error", ("Message", "Unable to remove interface: Not there"))
            )
            return
        if member.membership != "dynamic":
            session.send(
                self._response(action, "Error", ("Message", "Unable to remove interface: Not dynamic"))
            )
            return
        queue.members.remove(member)
        session.send(self._response(action, "Success", ("Message", "Removed interface from queue")))
        self._member_event("QueueMemberRemoved", queue, member)

    def _queue_pause(self, session: _Session, action: Message) -> None:
        interface, paused_text = action.get("Interface"), action.get("Paused")
        if not interface or paused_text is None:
            message = "Need 'Interface' and 'Paused' parameters."
            session.send(self._response(action, "Error", ("Message", message)))
            return
        paused = _truthy(paused_text)
        wanted = action.get("Queue")
        found = [
            (q, m)
            for q in self.queues.values()
            if not wanted or q.name == wanted
            for m in [q.member(interface)]
            if m is not None
        ]
        if not found:
            session.send(self._response(action, "Error", ("Message", "Interface not found")))
            return
        word = "paused" if paused else "unpaused"
        session.send(self._response(action, "Success", ("Message", f"Interface {word} successfully")))
        for queue, member in found:
            member.paused = paused
            member.paused_reason = (action.get("Reason") or "") if paused else ""
            if paused:
                member.last_pause = int(time.time())
            self._member_event("QueueMemberPause", queue, member)

    def _setvar(self, session: _Session, action: Message) -> None:
        variable = action.get("Variable")
        if not variable:
            session.send(self._response(action, "Error", ("Message", "No variable specified")))
            return
        if not action.get("Channel"):
            self.variables[variable] = action.get("Value") or ""
        session.send(self._response(action, "Success", ("Message", "Variable Set")))

    def _hangup(self, session: _Session, action: Message) -> None:
        channel = action.get("Channel")
        if not channel:
            session.send(self._response(action, "Error", ("Message", "No channel specified")))
            return
        # Hanging up either leg of a Local channel ends both; a queued ;2 leg then abandons.
        base = channel.rsplit(";", 1)[0] if channel.lower().startswith("local/") else channel
        waiting = [
            (q.name, c.channel)
            for q in self.queues.values()
            for c in q.callers
            if c.channel == channel or c.channel.rsplit(";", 1)[0] == base
        ]
        if not waiting:
            session.send(self._response(action, "Error", ("Message", "No such channel")))
            return
        session.send(self._response(action, "Success", ("Message", "Channel Hungup")))
        for queue, caller_channel in waiting:
            self.caller_abandon(queue, caller_channel)

    async def _unknown(self, session: _Session, action: Message, name: str) -> None:
        if action.action_id is None:
            session.send(
                session.security_event(
                    "RequestBadFormat",
                    "Error",
                    ("SessionID", session.session_id),
                    ("LocalAddress", session.local_address),
                    ("RemoteAddress", session.remote_address),
                    ("RequestType", f"Action: {name}"),
                    ("SessionTV", session.session_tv),
                    ("AccountID", session.user or ""),
                )
            )
        message = f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
        session.send(self._response(action, "Error", ("Message", message)))


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "yes", "1", "on")


def queue_state(name: str, members: Iterable[QueueMember] = (), **fields: object) -> QueueState:
    """Shorthand for tests: queue_state("kk-general", [QueueMember("Local/101@agents")], holdtime=20)."""
    return QueueState(name, members=list(members), **fields)  # type: ignore[arg-type]
