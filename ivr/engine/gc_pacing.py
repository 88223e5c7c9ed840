"""Garbage collection on the engine's schedule instead of CPython's allocation counter.

Why: a live call is some 33 tracked objects (suspended coroutines, its future, the channel), and they
form no cycles, so collections of them free nothing. CPython starts a young collection after N net
allocations, but every object that dies anywhere lowers that count, so between collections the young
generation quietly fills with whole calls: at 5,000 calls one young collection scanned 45,000-92,000
live objects and stopped the loop for 66-96 ms, and the full collections that follow a rise in calls
are longer still.

The engine's calls leave no cyclic garbage: on uvloop, which `ivr serve` runs, calls that end in a
queue, hang up in a menu, mid-command or in the queue, press nothing or only wrong keys leave none
(tests/test_gc_pacing.py), nor do AudioSocket speech calls (checked by hand), and 361 young
collections over 9,000 calls at 5,000 lines found none. Collecting young objects would only
scan the calls and commands in progress (at 5,000 lines 2-4 ms ten times a second, the longest up to
29 ms), so there are no young collections. Reference counting frees everything else.

A full collection scans every call in progress (at 5,000 calls up to 230 ms), so it runs only when
memory says it may help: when the resident size has grown by FULL_GROWTH (64 MiB) since the last one,
or once every FULL_EVERY (an hour) at the latest. Cyclic garbage from elsewhere (an exception kept in a
long-lived object; plain asyncio's transports, which refer to themselves) is freed then: memory, not
a clock, bounds what it can hold.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable

import attrs

CHECK_EVERY = 1.0  # seconds between looks at the resident size
FULL_GROWTH = 64 * 1024 * 1024  # bytes of resident growth since the last full collection that ask for one
FULL_EVERY = 3600.0  # seconds: a full collection at least this often, whatever the growth


def resident_bytes() -> int | None:
    """The process's resident size from /proc (Linux), or None where there is none: then only
    FULL_EVERY starts full collections."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@attrs.define
class GcPauses:
    """How long the paced collections stopped the engine (seconds), for /metrics and the benches."""

    full_count: int = 0
    full_seconds: float = 0.0
    full_longest: float = 0.0


class GcPacer:
    """`start()` on the running loop once the engine has loaded what it keeps for good; `stop()`
    gives collection back to CPython."""

    def __init__(
        self,
        check_every: float = CHECK_EVERY,
        full_every: float = FULL_EVERY,
        full_growth: int = FULL_GROWTH,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self.check_every = check_every
        self.full_every = full_every
        self.full_growth = full_growth
        self.pauses = GcPauses()
        self.checks = 0  # looks at the resident size so far
        self._resident = resident
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_full = 0.0
        self._resident_after_full: int | None = None

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
        self._resident_after_full = self._resident()
        self._timer = self._loop.call_later(self.check_every, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.unfreeze()
        gc.enable()

    def _check(self) -> None:
        assert self._loop is not None
        self.checks += 1
        if self._loop.time() >= self._next_full or self._grown():
            self._collect()
        self._timer = self._loop.call_later(self.check_every, self._check)

    def _collect(self) -> None:
        assert self._loop is not None
        started = time.perf_counter()
        gc.collect()
        took = time.perf_counter() - started
        pauses = self.pauses
        pauses.full_count += 1
        pauses.full_seconds += took
        pauses.full_longest = max(pauses.full_longest, took)
        self._next_full = self._loop.time() + self.full_every
        self._resident_after_full = self._resident()

    def _grown(self) -> bool:
        baseline = self._resident_after_full
        if baseline is None:
            return False
        now = self._resident()
        return now is not None and now - baseline >= self.full_growth
