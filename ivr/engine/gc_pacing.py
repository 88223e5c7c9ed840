"""Garbage collection on the engine's schedule instead of CPython's allocation counter.

Why: a live call is some 33 tracked objects (suspended coroutines, its future, the channel), and they
form no cycles, so collections of them free nothing. CPython starts a young collection after N net
allocations, but every object that dies anywhere lowers that count, so between collections the young
generation quietly fills with whole calls: at 5,000 calls one young collection scanned 45,000-92,000
live objects and stopped the loop for 66-96 ms, and the full collections that follow a rise in calls
are longer still. Paced, the young generation holds only what the last tick left alive (at 5,000 lines
2-3 ms to scan, at 1,000 under half a millisecond), and the scan of everything alive happens at a
known rate.

What it costs: cyclic garbage that outlives a young collection (rare: an exception kept in a
long-lived object) waits for the next full collection, at most FULL_EVERY (10 minutes). The engine's
calls leave none that we have seen: RSS stayed flat over an hour's soak at 1,000 lines with a full
collection every minute (bench_agi --mode soak).
"""

from __future__ import annotations

import asyncio
import gc
import time

import attrs

YOUNG_EVERY = 0.1  # seconds between collections of generation 0
# Seconds between full collections. A full one scans every call in progress (some 33 tracked objects a
# call): at 5,000 calls it stopped the engine for up to 230 ms, so it runs rarely.
FULL_EVERY = 600.0


@attrs.define
class GcPauses:
    """How long the paced collections stopped the engine (seconds), for /metrics and the benches."""

    young_count: int = 0
    young_seconds: float = 0.0
    young_longest: float = 0.0
    full_count: int = 0
    full_seconds: float = 0.0
    full_longest: float = 0.0


class GcPacer:
    """`start()` on the running loop once the engine has loaded what it keeps for good; `stop()`
    gives collection back to CPython."""

    def __init__(self, young_every: float = YOUNG_EVERY, full_every: float = FULL_EVERY) -> None:
        self.young_every = young_every
        self.full_every = full_every
        self.pauses = GcPauses()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_full = 0.0

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        # Menus, models and modules loaded at start never become garbage: collect once, then keep
        # them out of every later scan.
        gc.collect()
        gc.freeze()
        gc.disable()
        self._loop = asyncio.get_running_loop()
        self._next_full = self._loop.time() + self.full_every
        self._timer = self._loop.call_later(self.young_every, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.unfreeze()
        gc.enable()

    def _tick(self) -> None:
        assert self._loop is not None
        pauses = self.pauses
        full = self._loop.time() >= self._next_full
        started = time.perf_counter()
        gc.collect(2 if full else 0)
        took = time.perf_counter() - started
        if full:
            pauses.full_count += 1
            pauses.full_seconds += took
            pauses.full_longest = max(pauses.full_longest, took)
            self._next_full = self._loop.time() + self.full_every
        else:
            pauses.young_count += 1
            pauses.young_seconds += took
            pauses.young_longest = max(pauses.young_longest, took)
        self._timer = self._loop.call_later(self.young_every, self._tick)
