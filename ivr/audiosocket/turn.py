"""One turn of a conversation over AudioSocket, sans-I/O: play a prompt and listen at the same time.

The driver (ivr.engine.media) calls `tick()` every 20 ms of real time and sends what it returns (the
next prompt frame, a keep-alive, or nothing); it hands every frame the caller sends to `audio()`, which
returns the audio to decode, and every digit to `dtmf()`. When `result` is set the turn is over.
Time is counted in ticks and frames, never read from a clock, so tests drive it frame by frame.

Barge-in: the tick after the detector's onset sends no more prompt (the onset itself needs 60 ms of
voice, so the prompt stops within 80 ms of the first voiced frame). Recognition starts from the onset
frame, plus `pre_roll_frames` before it, which a quiet first syllable sits in: nothing said is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import attrs

from ivr.audiosocket.vad import VoiceActivityDetector, frame_features

SILENT_FRAME = bytes(320)
# Asterisk ends the session after 2 s with no frame either way; a caller leg that sends nothing (silence
# suppression, a held key) must not kill the call, so a silent frame goes out after this many quiet ticks.
KEEPALIVE_TICKS = 25


@attrs.frozen
class TurnSettings:
    no_input_ticks: int = 150  # after the prompt: how long to wait for speech or a key (3 s)
    max_speech_frames: int = 400  # an answer longer than this (8 s) is decoded as it stands
    pre_roll_frames: int = 10  # audio kept from before the onset (200 ms)
    barge_in: bool = True  # False: speech during the prompt is ignored (keys still interrupt)


@attrs.frozen
class TurnResult:
    """How the turn ended: 'digit', 'speech' (decode what was fed), 'silence' or 'hangup'."""

    kind: str
    digit: str | None = None
    interrupted: bool = False  # the prompt was cut short by the caller
    tick: int = 0  # when it ended, in ticks since the turn began


class Turn:
    def __init__(
        self,
        prompt: Sequence[bytes],
        escape_digits: str,
        settings: TurnSettings | None = None,
        vad: VoiceActivityDetector | None = None,
        prompt_levels: Sequence[float] | None = None,
    ) -> None:
        self.prompt = list(prompt)
        self.levels = (
            list(prompt_levels) if prompt_levels is not None else [frame_features(f)[0] for f in prompt]
        )
        self.escape = escape_digits
        self.settings = settings or TurnSettings()
        self.vad = vad or VoiceActivityDetector()
        self.result: TurnResult | None = None
        self.ticks = 0
        self.played = 0  # prompt frames sent
        self.playing = bool(self.prompt)
        self.prompt_ended_at: int | None = None if self.prompt else 0
        self.onset_tick: int | None = None  # tick at which speech was confirmed
        self.onset_frame: int | None = None  # index of the caller frame where speech began
        self.barged_in = False
        self.frames_in = 0
        self.speech_frames = 0
        self._recent_levels: deque[float] = deque(maxlen=self.vad.settings.echo_window)
        self._pre_roll: deque[bytes] = deque(
            maxlen=self.settings.pre_roll_frames + self.vad.settings.onset_frames
        )
        self._quiet_ticks = 0

    # --- time ----------------------------------------------------------------------------------
    def tick(self) -> bytes | None:
        """20 ms have passed: the frame to send now, or None."""
        if self.result is not None:
            return None
        self.ticks += 1
        if self.playing:
            frame = self.prompt[self.played]
            self._recent_levels.append(self.levels[self.played])
            self.played += 1
            if self.played == len(self.prompt):
                self._stop_prompt()
            self._quiet_ticks = 0
            return frame
        self._recent_levels.append(-96.0)  # the echo of the prompt's end dies away over the window
        if not self.vad.in_speech and self.prompt_ended_at is not None:
            if self.ticks - self.prompt_ended_at >= self.settings.no_input_ticks:
                self._end("silence")
                return None
        self._quiet_ticks += 1
        if self._quiet_ticks >= KEEPALIVE_TICKS:
            self._quiet_ticks = 0
            return SILENT_FRAME
        return None

    def _stop_prompt(self) -> None:
        self.playing = False
        self.prompt_ended_at = self.ticks

    # --- the caller ----------------------------------------------------------------------------
    def audio(self, pcm: bytes) -> list[bytes]:
        """One frame from the caller; returns the frames to hand to the recogniser now (oldest first)."""
        if self.result is not None:
            return []
        self.frames_in += 1
        reference = max(self._recent_levels) if self._recent_levels else None
        if reference is not None and reference <= -96.0:
            reference = None
        was_speaking = self.vad.in_speech
        event = self.vad.push(pcm, reference)
        if event == "onset":
            if self.playing and not self.settings.barge_in:
                # Heard over a prompt that may not be interrupted: forget it, listen again afterwards.
                self.vad.in_speech = False
                self._pre_roll.append(pcm)
                return []
            self.onset_tick = self.ticks
            self.onset_frame = self.frames_in - self.vad.onset_age + 1  # 1-based, like frames_in
            if self.playing:
                self.barged_in = True
                self._stop_prompt()
            self._pre_roll.append(pcm)
            kept = list(self._pre_roll)
            self._pre_roll.clear()
            self.speech_frames = len(kept)
            return kept
        if was_speaking:
            self.speech_frames += 1
            if event == "end":
                self._end("speech")
            elif self.speech_frames >= self.settings.max_speech_frames:
                self._end("speech")
            return [pcm]
        self._pre_roll.append(pcm)
        return []

    def dtmf(self, digit: str) -> None:
        """A key wins over speech, as RECORD FILE's escape digits do."""
        if self.result is None and digit in self.escape:
            self._end("digit", digit)

    def hangup(self) -> None:
        if self.result is None:
            self._end("hangup")

    def _end(self, kind: str, digit: str | None = None) -> None:
        interrupted = self.barged_in or (self.playing and kind == "digit")
        self.playing = False
        self.result = TurnResult(kind, digit, interrupted, self.ticks)
