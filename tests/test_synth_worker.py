"""pyttsx3 speaks in a worker process: a crash or hang of espeak-ng (a C library) costs one prompt, made
by the espeak-ng program instead, never the process that asked for it. Real espeak-ng audio, real
signals sent to the real worker."""

from __future__ import annotations

import array
import fcntl
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import termios
import textwrap
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.prompts import synth
from ivr.prompts.synth import SynthError, VoiceSettings, synthesize

ROOT = Path(__file__).parent.parent
TEXT = "Сәлеметсіз бе, бұл 1414 байланыс орталығы."
KAZAKH = VoiceSettings("kk")
# A bound for waiting on something that happens at once (a signal, a write), so a broken test fails
# instead of hanging; no assertion depends on it.
PATIENCE = 60.0


@pytest.fixture(autouse=True)
def own_worker() -> Iterator[None]:
    """Each test starts its own worker and leaves none running."""
    synth.shutdown_worker()
    yield
    synth.shutdown_worker()


def assert_speech(path: Path) -> None:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        assert wav.getnframes() / wav.getframerate() > 1.0  # the whole sentence, not a click


def running_worker(tmp_path: Path) -> int:
    """A worker that has spoken one text, its core dumps off (it is about to be sent SIGSEGV)."""
    synthesize("Бірінші мәтін.", KAZAKH, tmp_path / "first.wav")
    pid = synth.worker_pid()
    assert pid is not None and pid != os.getpid()
    resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))
    return pid


def stop(pid: int) -> None:
    """Stop our child `pid` (SIGSTOP) and wait until it has stopped: a worker that is sent the signal
    but not yet scheduled could still read a request first."""
    os.kill(pid, signal.SIGSTOP)
    os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)


def wait_until_exited(pid: int) -> None:
    """Until our child `pid` has exited, leaving it unreaped for the code under test to notice."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # no child of ours by that id: waited for already
    return False


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def bytes_waiting_for(pid: int) -> int:
    """How many bytes of requests the worker `pid` has not read from its stdin yet."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)  # the same pipe, another reader
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def test_a_text_spoken_through_the_worker_is_a_wav_and_the_worker_is_kept(tmp_path: Path) -> None:
    synthesize(TEXT, KAZAKH, tmp_path / "one.wav")
    pid = synth.worker_pid()
    synthesize(TEXT, VoiceSettings("ru", rate=170, pitch=40), tmp_path / "two.wav")
    assert_speech(tmp_path / "one.wav")
    assert_speech(tmp_path / "two.wav")
    with wave.open(str(tmp_path / "one.wav"), "rb") as wav:
        assert wav.getframerate() == 22050  # pyttsx3's stamp: the program was not needed
    assert synth.worker_pid() == pid  # one worker for every text, not one per text


def test_an_error_in_the_worker_comes_back_as_a_synth_error_and_the_worker_stays(tmp_path: Path) -> None:
    synthesize(TEXT, KAZAKH, tmp_path / "one.wav")
    pid = synth.worker_pid()
    with pytest.raises(SynthError, match="has no voice 'zz-nothing'"):
        synthesize(TEXT, VoiceSettings("zz-nothing"), tmp_path / "bad.wav")
    synthesize(TEXT, KAZAKH, tmp_path / "two.wav")
    assert synth.worker_pid() == pid


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_worker_killed_between_texts_is_replaced_for_the_next_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sig: signal.Signals
) -> None:
    pid = running_worker(tmp_path)
    os.kill(pid, sig)
    wait_until_exited(pid)
    with caplog.at_level(logging.WARNING, logger="ivr.prompts.synth"):
        synthesize(TEXT, KAZAKH, tmp_path / "after.wav")
    assert_speech(tmp_path / "after.wav")
    assert warnings(caplog) == [
        f"pyttsx3 worker (pid {pid}) was killed by {sig.name} between texts; a new one starts"
    ]
    assert reaped(pid)
    assert synth.worker_pid() not in (None, pid)


def test_a_worker_that_crashes_while_speaking_costs_that_prompt_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid = running_worker(tmp_path)
    stop(pid)  # holds the worker with the request unread in its pipe
    failures: list[BaseException] = []

    def speak() -> None:
        try:
            synthesize(TEXT, KAZAKH, tmp_path / "crash.wav")
        except BaseException as exc:
            failures.append(exc)

    with caplog.at_level(logging.WARNING, logger="ivr.prompts.synth"):
        speaker = threading.Thread(target=speak)
        speaker.start()
        poller = select.poll()  # waits for nothing: only paces the look at the pipe
        for _ in range(int(PATIENCE * 100)):
            if bytes_waiting_for(pid):
                break
            poller.poll(10)
        os.kill(pid, signal.SIGSEGV)  # as espeak-ng's segfault: taken as soon as the worker runs
        os.kill(pid, signal.SIGCONT)
        speaker.join(PATIENCE)
    assert not speaker.is_alive() and failures == []
    assert_speech(tmp_path / "crash.wav")  # made by the espeak-ng program
    assert warnings(caplog) == [
        f"pyttsx3 worker (pid {pid}) was killed by SIGSEGV; text {TEXT!r}, voice kk: the espeak-ng program "
        "speaks this prompt, and a new worker starts for the next text"
    ]
    assert reaped(pid)
    synthesize(TEXT, KAZAKH, tmp_path / "next.wav")
    assert_speech(tmp_path / "next.wav")
    assert synth.worker_pid() not in (None, pid)


def test_a_worker_that_does_not_answer_is_killed_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = running_worker(tmp_path)
    stop(pid)  # hangs for certain, as a wedged espeak-ng would
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="ivr.prompts.synth"):
        patch.setattr(synth, "WORKER_TIMEOUT", 1.0)
        synthesize(TEXT, VoiceSettings("kk+f3", rate=160, pitch=60), tmp_path / "hung.wav")
    assert_speech(tmp_path / "hung.wav")
    assert warnings(caplog) == [
        f"pyttsx3 worker (pid {pid}) did not answer within 1 s and was killed; text {TEXT!r}, voice kk+f3: "
        "the espeak-ng program speaks this prompt, and a new worker starts for the next text"
    ]
    assert reaped(pid)
    synthesize(TEXT, KAZAKH, tmp_path / "next.wav")
    assert synth.worker_pid() not in (None, pid)


def test_shutting_the_worker_down_reaps_it(tmp_path: Path) -> None:
    pid = running_worker(tmp_path)
    synth.shutdown_worker()
    assert synth.worker_pid() is None
    assert reaped(pid)
    synthesize(TEXT, KAZAKH, tmp_path / "again.wav")  # a later text starts another
    assert synth.worker_pid() not in (None, pid)


def test_a_forked_child_does_not_use_its_parents_worker(tmp_path: Path) -> None:
    running_worker(tmp_path)
    child = os.fork()
    if child == 0:
        os._exit(0 if synth.worker_pid() is None else 1)
    assert os.waitpid(child, 0)[1] == 0
    synthesize(TEXT, KAZAKH, tmp_path / "after-fork.wav")  # the parent's worker still answers


PARENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ivr.prompts import synth

    synth.synthesize("Сәлем.", synth.VoiceSettings("kk"), Path(sys.argv[1]))
    print(synth.worker_pid(), flush=True)
    if sys.argv[2] == "wait":
        sys.stdin.read()  # until killed
    """
)


def a_parent(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "parent.wav"), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


def test_the_worker_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent, worker = a_parent(tmp_path, "wait")
    exited = os.pidfd_open(worker)
    try:
        parent.kill()
        parent.wait()
        poller = select.poll()
        poller.register(exited, select.POLLIN)
        assert poller.poll(PATIENCE * 1000), f"worker {worker} still runs without its parent"
    finally:
        os.close(exited)


def test_a_parent_that_exits_stops_and_reaps_its_worker(tmp_path: Path) -> None:
    parent, worker = a_parent(tmp_path, "exit")
    assert parent.wait() == 0
    assert not Path(f"/proc/{worker}").exists()  # reaped by the parent at exit, no zombie left
