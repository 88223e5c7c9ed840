"""A progress bar on stderr for long builds, with no dependency.

On a terminal it redraws one line; into a log file it writes a line every tenth of the way, so CI logs
show progress without thousands of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def __call__(self, done: int, total: int, item: str) -> None: ...


class StderrProgress:
    """Call with (done, total, item) after each item; stays silent for builds shorter than `min_total`."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 30, min_total: int = 5) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._min_total = min_total
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, item: str) -> None:
        if total < self._min_total:
            return
        if done <= 1:
            self._started = time.monotonic()
        elapsed = time.monotonic() - self._started
        if self._tty:
            filled = self._width * done // total
            bar = "#" * filled + "-" * (self._width - filled)
            line = f"\r[{bar}] {done}/{total} {elapsed:5.1f}s {item[:40]:<40}"
            self._stream.write(line + ("\n" if done == total else ""))
            self._stream.flush()
            return
        tenth = 10 * done // total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._stream.write(f"prompts: {done}/{total} ({10 * tenth}%) {elapsed:.1f}s\n")
            self._stream.flush()
