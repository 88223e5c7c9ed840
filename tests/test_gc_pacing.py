"""The engine collects garbage on its own schedule: CPython's collector is off, a full collection
comes when memory has grown or an hour has passed, and the engine's calls leave no cyclic garbage
meanwhile (ivr.engine.gc_pacing)."""

from __future__ import annotations

import asyncio
import collections
import gc
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from ivr.clock import FixedClock
from ivr.engine.app import Engine
from ivr.engine.gc_pacing import GcPacer
from ivr.engine.services import EngineServices
from ivr.testing.engine_fixtures import OPEN_HOURS, project_settings
from ivr.testing.fake_caller import FakeCall, HangUp, Press

MB = 1_000_000


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
def resident() -> list[int]:
    """The process's resident size as the pacer sees it, moved by the test."""
    return [500 * MB]


@pytest.fixture
def pacer(resident: list[int]) -> Iterator[GcPacer]:
    pacer = GcPacer(check_every=0.01, full_every=3600.0, full_growth=64 * MB, resident=lambda: resident[0])
    yield pacer
    pacer.stop()


async def test_while_paced_python_does_not_collect_on_its_own_and_gets_it_back_after(pacer: GcPacer) -> None:
    assert gc.isenabled()
    pacer.start()
    assert not gc.isenabled()
    await until(lambda: pacer.checks >= 2)
    pacer.stop()
    assert gc.isenabled()
    assert not pacer.running


async def test_a_cycle_is_freed_once_memory_has_grown_and_not_before(
    pacer: GcPacer, resident: list[int]
) -> None:
    pacer.start()
    garbage = Cycle()
    freed = weakref.ref(garbage)
    del garbage
    resident[0] += 30 * MB  # calls coming in: less growth than asks for a full collection
    checks = pacer.checks
    await until(lambda: pacer.checks >= checks + 3)
    assert freed() is not None and pacer.pauses.full_count == 0
    resident[0] += 40 * MB  # 70 MB since start
    await until(lambda: freed() is None)
    assert pacer.pauses.full_count == 1 and pacer.pauses.full_longest > 0
    checks = pacer.checks
    await until(lambda: pacer.checks >= checks + 3)
    assert pacer.pauses.full_count == 1  # growth is measured again from the size after that collection


async def test_without_growth_a_full_collection_still_comes_at_the_latest_interval(
    resident: list[int],
) -> None:
    pacer = GcPacer(check_every=0.01, full_every=0.05, full_growth=64 * MB, resident=lambda: resident[0])
    pacer.start()
    try:
        garbage = Cycle()
        freed = weakref.ref(garbage)
        del garbage
        await until(lambda: freed() is None)
        assert pacer.pauses.full_count >= 1
    finally:
        pacer.stop()


async def test_where_the_resident_size_is_unknown_only_the_interval_starts_one() -> None:
    pacer = GcPacer(check_every=0.01, full_every=3600.0, resident=lambda: None)
    pacer.start()
    try:
        await until(lambda: pacer.checks >= 3)
        assert pacer.pauses.full_count == 0
    finally:
        pacer.stop()


def test_the_resident_size_is_read_from_the_system() -> None:
    from ivr.engine.gc_pacing import resident_bytes

    size = resident_bytes()
    assert size is not None and size > 10_000_000  # a Python process with pytest loaded


# --- the premise: no young collections are needed because calls leave no cycles -----------------------
CALLS = {
    "to a topic queue": dict(script=(Press("2"), Press("1"), Press("1"), Press("2"))),
    "to the operator": dict(script=(Press("2"), Press("0"))),
    "hanging up in a menu": dict(script=(Press("2"), HangUp())),
    "hanging up mid-command": dict(hangup_at=5),
    "pressing wrong keys": dict(script=(Press("9"), Press("9"), Press("9"), Press("9"))),
    "pressing nothing": dict(),
    "hanging up in the queue": dict(script=(Press("2"), Press("0")), queue_outcome="hangup"),
    "refused by the queue": dict(script=(Press("2"), Press("0")), queue_outcome="joinempty"),
}


def engine_owned(thing: object) -> str | None:
    """What a piece of garbage is, if the engine made it (not the fake caller, not the test)."""
    code = getattr(thing, "f_code", None) or getattr(thing, "cr_code", None)
    if code is not None:
        where = code.co_filename.replace("\\", "/")
        return f"{code.co_name} ({where})" if "/ivr/" in where and "/ivr/testing/" not in where else None
    module = type(thing).__module__
    if module.startswith("ivr.") and not module.startswith("ivr.testing"):
        return type(thing).__qualname__
    return None


def test_calls_of_every_kind_leave_no_cyclic_garbage_on_uvloop(tmp_path: Path, project_prompts: Path) -> None:
    async def place_calls() -> collections.Counter[str]:
        (tmp_path / "spool").mkdir()
        settings = project_settings(tmp_path)
        engine = Engine(settings, EngineServices(settings=settings, clock=FixedClock(OPEN_HOURS)))
        await engine.start()
        assert engine.server is not None and engine.services.state is not None
        try:
            options: dict[str, Any]
            for options in CALLS.values():  # first calls warm caches, which are not garbage
                await FakeCall(**options).run("127.0.0.1", engine.server.port, timeout=30)
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage to be looked at
            for options in CALLS.values():
                for _ in range(3):
                    call = FakeCall(**options)
                    await call.run("127.0.0.1", engine.server.port, timeout=30)
                    assert call.hangup_by is not None or call.queue is not None, call.ending()
            await engine.services.state.journal.flush()
            gc.collect()
            return collections.Counter(name for name in map(engine_owned, gc.garbage) if name)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            await engine.stop(2.0)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        assert uvloop.run(place_calls()) == collections.Counter()
    finally:
        if was_enabled:
            gc.enable()
