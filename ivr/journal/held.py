"""The journal's writes held, in order, while the state database cannot be reached: at most `cap` rows.

Past the cap the oldest go (whole writes, every op of a ticket together), counted. The oldest, not the
newest: what is kept is the most recent, the steps and ends of the calls still running or just ended when
the database answers again (an end whose start was dropped still counts its call: ivr.journal.writes),
what is lost is one span, the beginning of the outage, and the tickets still resolve in order (the
dropped ones are the lowest), so the acknowledgements of both writers stay a single number.

Sans-I/O: the writer (ivr.journal.db) decides when to try what is held and tells what became of it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar


class Holdable(Protocol):
    @property
    def ticket(self) -> int: ...  # its place in the commit order; 0: no one can wait for it

    @property
    def rows(self) -> int: ...


T = TypeVar("T", bound=Holdable)


class HeldWrites(Generic[T]):
    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"the cap on held rows must be 0 or more, not {cap}")
        self.cap = cap
        self.rows = 0
        self.dropped_rows = 0  # since the writer started: a counter for /metrics
        self._writes: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._writes)

    def hold(self, write: T) -> list[T]:
        """Hold a write behind the others; returns those dropped to stay within the cap (oldest first)."""
        self._writes.append(write)
        self.rows += write.rows
        dropped: list[T] = []
        while self.rows > self.cap and self._writes:
            ticket = self._writes[0].ticket
            while True:  # the whole ticket: a shipment is written, or dropped, whole
                gone = self._writes.popleft()
                dropped.append(gone)
                self.rows -= gone.rows
                self.dropped_rows += gone.rows
                if not ticket or not self._writes or self._writes[0].ticket != ticket:
                    break
        return dropped

    def front(self, max_rows: int) -> list[T]:
        """The oldest writes, up to about max_rows rows (at least one write), for one transaction."""
        writes: list[T] = []
        rows = 0
        for write in self._writes:
            if writes and rows + write.rows > max_rows:
                break
            writes.append(write)
            rows += write.rows
        return writes

    def replace_front(self, count: int, left: list[T]) -> None:
        """The first `count` writes were tried: `left` (some of them, in their order) are still held."""
        for _ in range(count):
            self.rows -= self._writes.popleft().rows
        for write in reversed(left):
            self._writes.appendleft(write)
            self.rows += write.rows

    def take_all(self) -> list[T]:
        writes = list(self._writes)
        self._writes.clear()
        self.rows = 0
        return writes

    def first_ticket(self) -> int | None:
        """The lowest ticket held: tickets enter in order and leave from the front."""
        for write in self._writes:
            if write.ticket:
                return write.ticket
        return None
