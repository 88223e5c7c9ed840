"""The decoder threads: a fixed number of them, taking the most urgent job first.

A caller who has stopped speaking is waiting for the answer; callers still speaking are not. So the
last part of an answer (`URGENT`: its final batch and result, or a recording) goes before batches of
answers still in progress (`NORMAL`), first come first served within each. When the cores are short,
batches of answers in progress wait, and the final job of an answer then decodes what its stream
still holds in one go: an answer costs at most its own audio after the caller stops, whatever else
is queued, instead of a place at the back of every other stream's batches.

The threads run nicer than the event loop (`niceness`): when the cores are short the loop (AGI, the
20 ms prompt clock, the VAD that stops a prompt) is served first, so an overload delays answers
rather than breaking up every prompt being played.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

URGENT = 0
NORMAL = 1
_STOP = 2  # after every job still queued


class DecodePool(Executor):
    def __init__(self, workers: int, name: str = "vosk", niceness: int = 10) -> None:
        self.niceness = niceness
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.submit_with(NORMAL, fn, *args, **kwargs)

    def submit_urgent(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        return self.submit_with(URGENT, fn, *args)

    def submit_with(self, priority: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if cancel_futures:
                while True:
                    try:
                        _, _, job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    job[0].cancel()
            for _ in self._threads:
                self._queue.put((_STOP, next(self._order), None))
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        _lower_this_thread(self.niceness)
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


def _lower_this_thread(niceness: int) -> None:
    """On Linux each thread has its own nice value (setpriority on its thread id)."""
    if not niceness or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError:  # not allowed here: the decoders then run at the loop's priority
        pass
