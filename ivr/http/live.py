"""The calls in this engine's IVR right now, by language and node.

Fed by watching the journal (ObservedJournal): every call start, node visit, language choice and call end
already goes through it, so the interpreter needs no hook of its own. Everything here runs on the event
loop and costs a dict update per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

NO_LANGUAGE = ""  # before the caller has chosen

EndListener = Callable[[str, str, str], None]  # outcome, language, topic


@attrs.define
class LiveCall:
    call_id: str
    started: float  # epoch seconds, as the journal has it
    language: str = NO_LANGUAGE
    node: str = ""
    in_queue: bool = False  # inside Queue(): waiting for an operator or talking to one, not in the IVR


@attrs.define
class LiveCalls:
    calls: dict[str, LiveCall] = attrs.field(factory=dict)
    ended: int = 0
    # Told of every ended call once (metrics count outcomes with it).
    on_end: list[EndListener] = attrs.field(factory=list)

    def started(self, call_id: str, started: float, language: str | None = None) -> None:
        self.calls.setdefault(call_id, LiveCall(call_id, started, language or NO_LANGUAGE))

    def event(self, call_id: str, kind: str, node: str = "", data: dict[str, Any] | None = None) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return  # an event after the end (hang-up notice) or of a call started before we watched
        if kind == "node" and node:
            call.node = node
        elif kind == "language" and data and data.get("language"):
            call.language = str(data["language"])
        elif kind == "queue":
            call.in_queue = True
        elif kind == "queue_result":  # given back to the IVR; after an answer the call ends anyway
            call.in_queue = False

    def finished(self, call_id: str, outcome: str, topic: str | None) -> None:
        call = self.calls.pop(call_id, None)
        if call is None:
            return  # the journal ignores a second end of a call; so do we
        self.ended += 1
        for listener in self.on_end:
            listener(outcome, call.language, topic or "")

    def __len__(self) -> int:
        return len(self.calls)

    def by_language(self, *, in_ivr: bool = False) -> dict[str, int]:
        """Calls in progress by language; `in_ivr`: only those in the menus, not in a queue."""
        return dict(Counter(c.language for c in self.calls.values() if not (in_ivr and c.in_queue)))

    def by_node(self) -> dict[str, int]:
        """Calls in the menus by node (a call in a queue is with the queue, not at a node)."""
        return dict(Counter(call.node for call in self.calls.values() if call.node and not call.in_queue))

    def in_ivr(self) -> int:
        return sum(1 for call in self.calls.values() if not call.in_queue)

    def in_queues(self) -> int:
        return sum(1 for call in self.calls.values() if call.in_queue)


class ObservedJournal:
    """The journal the engine writes to, telling each watching LiveCalls what it records.

    Wraps rather than subclasses so it fits whatever journal the state opened; every other attribute is
    the journal's own. A failing observer never keeps a record from the journal."""

    def __init__(self, journal: Any) -> None:
        self._journal = journal
        self.watchers: list[LiveCalls] = []

    @property
    def wrapped(self) -> Any:
        return self._journal

    def call_started(self, call_id: str, started_at: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._journal.call_started(call_id, started_at, *args, **kwargs)
        language = kwargs.get("language", args[1] if len(args) > 1 else None)
        for live in self.watchers:
            live.started(call_id, _epoch(started_at), language)
        return result

    def event(
        self, call_id: str, kind: str, node: str = "", data: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        result = self._journal.event(call_id, kind, node, data, **kwargs)
        for live in self.watchers:
            live.event(call_id, kind, node, data)
        return result

    def call_ended(self, call_id: str, outcome: str, topic: str | None = None, **kwargs: Any) -> Any:
        try:
            return self._journal.call_ended(call_id, outcome, topic, **kwargs)
        finally:  # the call has left the IVR even if the journal refused the record
            for live in self.watchers:
                live.finished(call_id, outcome, topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)


def _epoch(moment: Any) -> float:
    if isinstance(moment, int | float):
        return float(moment)
    return float(moment.timestamp())


def observe(state: Any, live: LiveCalls) -> None:
    """Let `live` watch the state's journal (wrapping it the first time; watching twice is once)."""
    if not isinstance(state.journal, ObservedJournal):
        state.journal = ObservedJournal(state.journal)
    if live not in state.journal.watchers:
        state.journal.watchers.append(live)


def unobserve(state: Any, live: LiveCalls) -> None:
    if isinstance(state.journal, ObservedJournal) and live in state.journal.watchers:
        state.journal.watchers.remove(live)
