"""Background threads yield to the event loop: on Linux each thread has its own nice value.

The event loop answers callers (AGI turnarounds, the 20 ms prompt clock, barge-in); the journal's
writer and the speech decoders only have to keep up on average. When the cores are short, a thread
made nicer waits and the loop runs, so an overload delays commits and answers rather than every
caller's next prompt.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)


def lower_this_thread(niceness: int) -> None:
    """Make the calling thread `niceness` steps nicer (no-op where threads have no nice value)."""
    if not niceness or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError as exc:
        log.debug("thread priority unchanged: %s", exc)
