"""The engine collects garbage on its own schedule: small young collections every tick, a full one at a
known rate, and CPython's own collector is off meanwhile (ivr.engine.gc_pacing)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from ivr.engine.gc_pacing import GcPacer


class Cycle:
    """Garbage only the collector can free: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


async def until(condition: Callable[[], bool], bound: float = 10.0) -> None:
    """Wait for the pacer's timer; the bound only keeps a broken pacer from hanging the suite."""
    async with asyncio.timeout(bound):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
def pacer() -> Iterator[GcPacer]:
    pacer = GcPacer(young_every=0.01, full_every=3600.0)
    yield pacer
    pacer.stop()


async def test_while_paced_python_does_not_collect_on_its_own_and_gets_it_back_after(pacer: GcPacer) -> None:
    assert gc.isenabled()
    pacer.start()
    assert not gc.isenabled()
    await until(lambda: pacer.pauses.young_count >= 2)
    pacer.stop()
    assert gc.isenabled()
    assert not pacer.running


async def test_a_cycle_dropped_between_ticks_goes_at_the_next_young_collection(pacer: GcPacer) -> None:
    pacer.start()
    garbage = Cycle()
    freed = weakref.ref(garbage)
    del garbage
    await until(lambda: freed() is None)
    assert pacer.pauses.young_count >= 1
    assert pacer.pauses.full_count == 0


async def test_a_cycle_that_outlived_a_young_collection_waits_for_the_full_one() -> None:
    pacer = GcPacer(young_every=0.01, full_every=0.3)
    pacer.start()
    try:
        kept = Cycle()
        freed = weakref.ref(kept)
        young = pacer.pauses.young_count
        await until(lambda: pacer.pauses.young_count >= young + 2)  # it survived: now an old object
        del kept
        young = pacer.pauses.young_count
        await until(lambda: pacer.pauses.young_count >= young + 3)
        if pacer.pauses.full_count == 0:  # young collections do not look at old objects
            assert freed() is not None
        await until(lambda: freed() is None)
        assert pacer.pauses.full_count >= 1
        assert pacer.pauses.full_longest > 0
    finally:
        pacer.stop()


async def test_a_full_collection_comes_when_memory_has_grown_not_on_every_tick() -> None:
    resident = [500_000_000]
    pacer = GcPacer(young_every=0.01, full_every=3600.0, full_growth=64_000_000, resident=lambda: resident[0])
    pacer.start()
    try:
        await until(lambda: pacer.pauses.young_count >= 3)
        resident[0] += 30_000_000  # calls coming in: less than the growth that asks for a full one
        young = pacer.pauses.young_count
        await until(lambda: pacer.pauses.young_count >= young + 3)
        assert pacer.pauses.full_count == 0
        resident[0] += 40_000_000  # 70 MB since start
        await until(lambda: pacer.pauses.full_count == 1)
        young = pacer.pauses.young_count
        await until(lambda: pacer.pauses.young_count >= young + 3)
        assert pacer.pauses.full_count == 1  # measured again from the size after that collection
    finally:
        pacer.stop()


def test_the_resident_size_is_read_from_the_system() -> None:
    from ivr.engine.gc_pacing import resident_bytes

    size = resident_bytes()
    assert size is not None and size > 10_000_000  # a Python process with pytest loaded
