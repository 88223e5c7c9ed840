"""The hypervisor's share of a paced run: CPU time the host took from this (virtual) machine.

On a virtual machine an idle vCPU halts, and when it is woken the host may run it late. The guest
counts that as "steal" (/proc/stat, 8th number of the `cpu` line, in USER_HZ ticks). On the machine
these benchmarks run on, a process that only sleeps 1 ms at a time saw 14 wake-ups over 5 ms late in
20 s (the worst 25 ms) while the machine was otherwise idle, all with steal counted: a floor under
any server's turnaround that no code in it can lower.

`StealSampler` reads the counter every 10 ms from the load generator's loop (13 us a read, 0.1% of
the generator's time), so that each slow turnaround can be looked up: was the host taking CPU time around
it? The counter moves in 10 ms ticks, so a short theft shows late or not at all: the share is a lower
bound.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import time
from collections.abc import Sequence

_TICK = os.sysconf("SC_CLK_TCK")


def steal_ticks() -> int | None:
    """The machine's steal counter (all CPUs), or None where /proc/stat does not have one."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8])
    except (OSError, ValueError, IndexError):
        return None


class StealSampler:
    """Every `interval` seconds, the steal counter and the moment it was read (ns, CLOCK_REALTIME:
    the clock of the kernel's receive stamps that time the turnarounds)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.times: list[int] = []
        self.ticks: list[int] = []
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._sample()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._sample(again=False)

    def _sample(self, again: bool = True) -> None:
        ticks = steal_ticks()
        if ticks is not None:
            self.times.append(time.time_ns())
            self.ticks.append(ticks)
        if again:
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._sample)

    def stolen_seconds(self) -> float:
        """CPU seconds the host took over the sampling, all CPUs together."""
        if len(self.ticks) < 2:
            return math.nan
        return (self.ticks[-1] - self.ticks[0]) / _TICK

    def stolen_between(self, start_ns: int, end_ns: int) -> bool | None:
        """Did the counter move between the last sample before `start_ns` and the first after
        `end_ns`? None outside the sampled time."""
        first = bisect.bisect_right(self.times, start_ns) - 1
        last = bisect.bisect_left(self.times, end_ns)
        if first < 0 or last >= len(self.times):
            return None
        return self.ticks[last] > self.ticks[first]

    def share_near(self, slow: Sequence[tuple[int, float]], margin: float = 0.01) -> float:
        """Of the slow turnarounds given as (received ns, seconds), the share with steal counted from
        `margin` seconds before the reply went out to `margin` seconds after the command came."""
        pad = int(margin * 1e9)
        found = [self.stolen_between(end - int(seconds * 1e9) - pad, end + pad) for end, seconds in slow]
        known = [f for f in found if f is not None]
        return sum(known) / len(known) if known else math.nan


def evenly(values: Sequence[int], count: int) -> list[int]:
    """At most `count` of `values`, evenly spaced (the baseline `share_near` is read against)."""
    step = max(1, len(values) // count)
    return list(values[::step])
