"""Asterisk's side of one AudioSocket session, as a real Asterisk 22.10.1 behaves
(shared/asterisk/audiosocket/README.md), playing a scripted caller.

It connects to the server, sends the UUID message first, then one caller frame every 20 ms: silence,
or a WAV spoken from a given moment (also over the prompt), with the file's tail as a short frame. A key
press leaves a hole in the audio for the time the key is down and sends the digit once, at its end. A
hang-up is a plain close (Asterisk never sends 00). From the server it accepts only hangup (00) and
audio (10-18); anything else, or a zero-length audio frame, is an error that hangs the call up, as is
2 s with no frame either way. Its own clock counts 20 ms ticks; `heard` keeps, per server frame, the
tick at which it arrived, so tests reason in frames, not in wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid as uuid_module
import wave
from array import array
from pathlib import Path

import attrs

from ivr.audiosocket.protocol import (
    NEED_DATA,
    Audio,
    AudioSocketParser,
    Closed,
    Hangup,
    ProtocolError,
    audio_message,
    dtmf_message,
    split_frames,
    uuid_message,
)
from ivr.audiosocket.vad import frame_features

TICK = 0.020
NO_ACTIVITY_TICKS = 100  # Asterisk's hard-coded 2000 ms
KEY_DOWN_TICKS = 5  # a 100 ms key press: the audio hole before the digit is sent
PROMPT_GAP_TICKS = 5  # no prompt audio for this long means the prompt has ended
REACTION_TICKS = 5  # a caller answering "after the prompt" starts 200 ms after it ends (with the gap)
QUIET_DBFS = -50.0  # frames quieter than this are not counted as the caller's voice


def read_slin(path: str | Path) -> bytes:
    """A WAV as 8 kHz mono 16-bit samples (what a Local channel's Playback sends)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != 8000 or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: the fake speaks 8 kHz mono 16-bit WAV files only")
        return wav.readframes(wav.getnframes())


@functools.lru_cache(maxsize=32)
def spoken_frames(path: str) -> tuple[tuple[bytes, ...], tuple[bool, ...]]:
    """A WAV's 20 ms frames (short tail kept) and which of them carry voice."""
    frames = tuple(split_frames(read_slin(path)))
    return frames, tuple(frame_features(f)[0] > QUIET_DBFS for f in frames)


def mix(a: bytes, b: bytes, gain: float = 1.0) -> bytes:
    """a + gain * b, clipped, over a's length."""
    left, right = array("h"), array("h")
    left.frombytes(a)
    right.frombytes(b[: len(a)])
    for i, value in enumerate(right):
        total = left[i] + int(value * gain)
        left[i] = 32767 if total > 32767 else -32768 if total < -32768 else total
    return left.tobytes()


@attrs.define
class Received:
    tick: int
    kind: int
    size: int
    voiced: bool


class FakeAudioSocket:
    """One AudioSocket session. `action` is a fake_caller action: Say, Press, Silence or HangUp, each
    with an optional `at` (seconds after the session starts; None: after the prompt has ended)."""

    def __init__(
        self,
        call_uuid: str,
        action: object,
        *,
        echo_db: float | None = None,
        echo_delay_ticks: int = 3,
        line_noise: str | Path | None = None,
        max_ticks: int = 3000,
    ) -> None:
        self.uuid = uuid_module.UUID(call_uuid)
        self.action = action
        self.echo_gain = None if echo_db is None else 10 ** (-echo_db / 20)
        self.echo_delay_ticks = echo_delay_ticks
        self.noise = read_slin(line_noise) if line_noise else b""
        self.max_ticks = max_ticks
        self.tick = 0
        self.heard: list[Received] = []
        self.sent_frames = 0
        self.wire = bytearray()  # every byte sent to the server, as the recordings' .in.bin files
        self.speech_ticks: list[int] = []  # ticks at which a voiced frame of the caller's WAV went out
        self.speak_from: int | None = None
        self.digit_sent_at: int | None = None
        self.result: int | None = None  # what AudioSocket() returns: 0, or -1 (the channel hangs up)
        self.caller_hung_up = False
        self.ended_by = ""
        self.hangup_tick: int | None = None
        # time.monotonic() stamps, for benchmarks (tests reason in ticks)
        self.last_voiced_at: float | None = None
        self.hangup_received_at: float | None = None
        self._echo: list[bytes] = []
        self._last_server_frame = 0
        self._prompt_end: int | None = None
        self._voiced_pending = False
        self._writer: asyncio.StreamWriter | None = None
        self._done = asyncio.Event()

    # --- what happened, for tests ------------------------------------------------------------------
    @property
    def prompt_frames(self) -> int:
        return sum(1 for r in self.heard if r.kind != 0 and r.voiced)

    def frames_until_silence(self, tick: int, gap: int = 3) -> int:
        """Server audio frames after `tick` until the first gap of more than `gap` ticks: how much of
        the prompt still came after the caller began (keep-alives come much later)."""
        count, last = 0, tick
        for r in self.heard:
            if r.kind == 0 or r.tick <= tick:
                continue
            if r.tick - last > gap:
                break
            count, last = count + 1, r.tick
        return count

    def prompt_frames_after(self, tick: int) -> int:
        """Voiced server frames that arrived after the caller's `tick` (the prompt still playing)."""
        return sum(1 for r in self.heard if r.kind != 0 and r.voiced and r.tick > tick)

    @property
    def onset_tick(self) -> int | None:
        return self.speech_ticks[0] if self.speech_ticks else None

    @property
    def speech_end_tick(self) -> int | None:
        return self.speech_ticks[-1] if self.speech_ticks else None

    def describe(self) -> str:
        """One line for `ivr testcall`: how the session went, in 20 ms frames."""
        parts = [
            f"ended: {self.ended_by} (AudioSocket() = {self.result})",
            f"prompt frames heard {self.prompt_frames}",
        ]
        if self.onset_tick is not None:
            parts.append(
                f"spoke at frame {self.onset_tick}, prompt frames after that {self.prompt_frames_after(self.onset_tick)}"
            )
        if self.speech_end_tick is not None and self.hangup_tick is not None:
            parts.append(
                f"answer decided {(self.hangup_tick - self.speech_end_tick) * 20} ms after the last word"
            )
        if self.digit_sent_at is not None:
            parts.append(f"key sent at frame {self.digit_sent_at}")
        return "; ".join(parts)

    # --- running ---------------------------------------------------------------------------------
    async def run(self, host: str, port: int) -> int:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
        except (OSError, TimeoutError):
            self.ended_by = "connect failed"
            self.result = -1
            return -1
        self._writer = writer
        self._write(uuid_message(self.uuid))
        reading = asyncio.create_task(self._read(reader))
        try:
            await self._play()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        assert self.result is not None
        return self.result

    async def _play(self) -> None:
        from ivr.testing.fake_caller import HangUp, Press, Say, Silence

        loop = asyncio.get_running_loop()
        start = loop.time()
        action = self.action
        speech, voiced = spoken_frames(str(action.audio)) if isinstance(action, Say) else ((), ())
        silent = isinstance(action, Silence) and not action.media
        key_down_until: int | None = None
        last_sent = 0
        while not self._done.is_set():
            self.tick += 1
            if self.tick > self.max_ticks:
                self._end(-1, "the fake's safety limit")
                return
            begin = self._begin_tick(getattr(action, "at", None))
            if isinstance(action, HangUp) and begin is not None and self.tick >= begin:
                self.caller_hung_up = True
                self._end(-1, "caller hung up")
                return
            leave = getattr(action, "hangup_at", None)
            if leave is not None and self.tick >= round(leave / TICK):
                self.caller_hung_up = True
                self._end(-1, "caller hung up while speaking")
                return
            frame: bytes | None = None if silent else bytes(320)
            if isinstance(action, Say) and begin is not None and self.tick >= begin:
                index = self.tick - begin
                if index < len(speech):
                    self.speak_from = begin
                    frame = speech[index]
                    if voiced[index]:
                        self.speech_ticks.append(self.tick)
                        self._voiced_pending = True
            if isinstance(action, Press) and begin is not None and self.digit_sent_at is None:
                if key_down_until is None and self.tick >= begin:
                    key_down_until = self.tick + KEY_DOWN_TICKS
                if key_down_until is not None:
                    frame = None  # Asterisk drops the caller's audio while the key is down
                    if self.tick >= key_down_until:
                        self._write(dtmf_message(action.digits[0]))
                        self.digit_sent_at = self.tick
                        last_sent = self.tick
            if frame is not None:
                frame = self._colour(frame)
                self._write(audio_message(frame))
                self.sent_frames += 1
                last_sent = self.tick
                if self._voiced_pending:
                    self.last_voiced_at = time.monotonic()
                    self._voiced_pending = False
            if self.tick - max(last_sent, self._last_server_frame) >= NO_ACTIVITY_TICKS:
                self._end(-1, "2 s without a frame either way")
                return
            if self._writer is not None:
                with contextlib.suppress(ConnectionError):
                    await self._writer.drain()
            # A plain sleep: the reader's verdict is picked up at the next tick (cheaper than a
            # wait_for per frame when a benchmark runs a hundred of these).
            await asyncio.sleep(max(start + self.tick * TICK - loop.time(), 0))

    def _begin_tick(self, at: float | None) -> int | None:
        """The tick the action starts at: `at` seconds in, or a moment after the prompt ended."""
        if at is not None:
            return max(1, round(at / TICK))  # tick 1 is the first frame after the UUID
        if self._prompt_end is None:
            # The server sends a frame every 20 ms while it plays (silent ones too): a gap ends the prompt.
            heard = self._last_server_frame
            if heard and self.tick - heard >= PROMPT_GAP_TICKS:
                self._prompt_end = heard
            elif not heard and self.tick >= 50:
                self._prompt_end = 50  # nothing played within 1 s: answer anyway
        return None if self._prompt_end is None else self._prompt_end + PROMPT_GAP_TICKS + REACTION_TICKS

    def _colour(self, frame: bytes) -> bytes:
        """The line adds what the caller's side adds: our prompt's echo and background noise."""
        if self.echo_gain is not None and len(self._echo) > self.echo_delay_ticks:
            frame = mix(frame, self._echo[-1 - self.echo_delay_ticks], self.echo_gain)
        if self.noise:
            offset = (self.sent_frames * 320) % max(len(self.noise) - 320, 1)
            frame = mix(frame, self.noise[offset : offset + len(frame)])
        return frame

    def _write(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
            self.wire += data

    def _end(self, result: int, how: str) -> None:
        if self.result is None:
            self.result = result
            self.ended_by = how
        self._done.set()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        parser = AudioSocketParser("server")
        try:
            while True:
                data = await reader.read(65536)
                parser.receive_data(data)
                while (event := parser.next_event()) is not NEED_DATA:
                    if isinstance(event, Closed):
                        self._end(0, "server closed")  # a clean close: the next priority runs
                        return
                    if isinstance(event, Hangup):
                        self.hangup_tick = self.tick
                        self.hangup_received_at = time.monotonic()
                        self.heard.append(Received(self.tick, 0, 0, False))
                        self._end(0, "server sent hangup")
                        return
                    assert isinstance(event, Audio)
                    voiced = any(event.payload)
                    self.heard.append(Received(self.tick, event.kind, len(event.payload), voiced))
                    self._last_server_frame = self.tick
                    self._echo.append(event.payload if event.rate == 8000 else bytes(320))
                if not data:
                    return
        except ProtocolError as exc:
            # Asterisk: "Received AudioSocket message other than hangup or audio" / "Invalid message
            # length": AudioSocket() fails and the channel hangs up.
            self._end(-1, f"error: {exc}")
        except ConnectionError:
            self._end(-1, "connection reset by the server")
