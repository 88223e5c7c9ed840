"""The parent's handle on one pyttsx3 worker process (ivr/prompts/pyttsx3_worker.py): start it, ask it
one text with a time bound, notice that it died or hung, and reap it.

The worker is a fresh interpreter (`python -m`, over two pipes), not a multiprocessing child: fork()
in the engine, an asyncio process with threads, copies locks that other threads may hold at that moment;
"spawn" would re-import the parent's __main__ (the `ivr` script, pytest, a bench). subprocess starts it
with fork+exec in C, safe with threads, and the worker imports only what it needs.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import ivr
from ivr.prompts.pyttsx3_worker import SpeechAnswer, SpeechRequest

WORKER_MODULE = "ivr.prompts.pyttsx3_worker"
# How long a worker told to go (EOF) or found with its pipe closed gets to exit before it is killed.
_EXIT_GRACE = 5.0


class WorkerLost(Exception):
    """The worker died or stopped answering while speaking a text. Said as "killed by SIGSEGV",
    "did not answer within 30 s and was killed"...; the process is reaped by then."""


class _NoAnswer(Exception):
    """The deadline passed with the request unsent or unanswered."""


class WorkerProcess:
    """One running worker. Not thread-safe: its owner asks one text at a time."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=_worker_environment(),
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin.fileno()
        self._answers = self._process.stdout.fileno()
        os.set_blocking(self._requests, False)  # a worker that stopped reading must not block us
        self._unread = b""

    @property
    def pid(self) -> int:
        return self._process.pid

    def ask(self, request: SpeechRequest, timeout: float) -> SpeechAnswer:
        """The worker's answer within `timeout` seconds, or WorkerLost (the worker is gone by then)."""
        deadline = time.monotonic() + timeout
        try:
            self._send(request.to_line(), deadline)
            return SpeechAnswer.from_line(self._receive(deadline))
        except _NoAnswer:
            self._kill()
            raise WorkerLost(f"did not answer within {timeout:g} s and was killed") from None
        except (BrokenPipeError, EOFError):
            raise WorkerLost(self._wait_for_exit()) from None

    def ended(self) -> str | None:
        """How the worker ended ("killed by SIGKILL"), reaping it, if it has; None while it runs."""
        if self._process.poll() is None:
            return None
        self._close_pipes()
        return _describe(self._process.returncode)

    def close(self) -> None:
        """Tell the worker to go (EOF on its stdin) and reap it; one that does not go is killed."""
        if self._process.poll() is None:
            self._close_pipes()
            self._wait_for_exit()
        self._close_pipes()

    def forget(self) -> None:
        """In a fork()ed child: drop our copies of the pipes, so the worker still sees EOF when its
        parent goes. The worker is not ours to stop or reap."""
        self._close_pipes()

    def _send(self, data: bytes, deadline: float) -> None:
        pending = memoryview(data)
        while pending:
            _wait_until_ready(self._requests, select.POLLOUT, deadline)
            try:
                pending = pending[os.write(self._requests, pending) :]
            except BlockingIOError:
                continue

    def _receive(self, deadline: float) -> bytes:
        while b"\n" not in self._unread:
            _wait_until_ready(self._answers, select.POLLIN, deadline)
            chunk = os.read(self._answers, 65536)
            if not chunk:
                raise EOFError
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return line

    def _wait_for_exit(self) -> str:
        try:
            self._process.wait(_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self._kill()
        self._close_pipes()
        return _describe(self._process.returncode)

    def _kill(self) -> None:
        self._process.kill()  # SIGKILL: also ends a stopped (SIGSTOP) process
        self._process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _wait_until_ready(fd: int, event: int, deadline: float) -> None:
    # poll, not select: select refuses descriptors above 1023, which an engine with many calls reaches
    poller = select.poll()
    poller.register(fd, event)
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not poller.poll(remaining * 1000):
        raise _NoAnswer


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _worker_environment() -> dict[str, str]:
    """The parent's environment, with this ivr package first on the path: the worker runs the same code
    as its parent even from a checkout that is not installed."""
    root = str(Path(ivr.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}
