"""The voice-activity detector and one turn (prompt + answer), driven frame by frame: no sockets, no clock."""

from __future__ import annotations

import itertools
import math
import random
import struct

import pytest

from ivr.audiosocket.turn import KEEPALIVE_TICKS, SILENT_FRAME, Turn, TurnSettings
from ivr.audiosocket.vad import VadSettings, VoiceActivityDetector, frame_features


def tone(freq: float, amplitude: float, frames: int = 1, phase: int = 0) -> list[bytes]:
    """A 'voice': a harmonic-rich buzz at `freq` (low zero-crossing rate, energy in the speech band)."""
    out = []
    for f in range(frames):
        samples = []
        for i in range(160):
            t = (phase + f * 160 + i) / 8000
            value = sum(math.sin(2 * math.pi * freq * k * t) / k for k in range(1, 6))
            samples.append(int(amplitude * value / 2))
        out.append(struct.pack("<160h", *samples))
    return out


def white(amplitude: int, frames: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [
        struct.pack("<160h", *(rng.randint(-amplitude, amplitude) for _ in range(160))) for _ in range(frames)
    ]


def hum(amplitude: int, frames: int) -> list[bytes]:
    """50 Hz mains hum: loud, but far below the telephone speech band."""
    return tone(50, amplitude, frames)


SILENCE = [SILENT_FRAME]
VOICE = 6000  # about -16 dBFS


def run_vad(frames: list[bytes], settings: VadSettings | None = None) -> list[tuple[int, str]]:
    vad = VoiceActivityDetector(settings)
    return [(i, e) for i, f in enumerate(frames) if (e := vad.push(f))]


def test_features_tell_voice_from_hiss() -> None:
    level, zcr = frame_features(tone(450, VOICE)[0])
    assert level > -30 and zcr < 0.2
    level, zcr = frame_features(white(3000, 1)[0])
    assert zcr > 0.35
    assert frame_features(SILENT_FRAME) == (-96.0, 0.0)


def test_onset_after_three_voiced_frames_dated_to_the_first_and_end_after_the_hangover() -> None:
    frames = SILENCE * 20 + tone(450, VOICE, 30) + SILENCE * 20
    events = run_vad(frames)
    assert events == [(22, "onset"), (59, "end")]  # 20 + 3 - 1; 50 + 10 - 1
    vad = VoiceActivityDetector()
    for f in frames[:23]:
        vad.push(f)
    assert vad.onset_age == 3


def test_a_click_shorter_than_the_onset_is_not_speech() -> None:
    assert run_vad(SILENCE * 20 + tone(450, VOICE, 2) + SILENCE * 20) == []


@pytest.mark.parametrize("noise", [white(4000, 100), hum(8000, 100)], ids=["hiss", "hum"])
def test_noise_starting_mid_call_is_not_speech(noise: list[bytes]) -> None:
    assert run_vad(SILENCE * 20 + noise) == []


def test_steady_noise_sets_the_floor_and_a_voice_above_it_still_counts() -> None:
    noise = tone(700, 1500, 200)  # a steady in-band buzz, as loud as a quiet voice
    assert run_vad(noise) == []
    assert run_vad(noise[:100] + tone(450, VOICE * 2, 20)) != []


def test_the_prompts_echo_is_not_speech_but_a_caller_over_it_is() -> None:
    prompt_level = frame_features(tone(600, VOICE)[0])[0]
    echo = tone(600, VOICE / 6, 30)  # 15.6 dB down
    vad = VoiceActivityDetector()
    for f in SILENCE * 20:
        vad.push(f)
    assert [vad.push(f, prompt_level) for f in echo] == [None] * 30
    caller = tone(500, VOICE, 5)
    assert "onset" in [vad.push(f, prompt_level) for f in caller]


def prompt(frames: int) -> list[bytes]:
    return tone(600, VOICE, frames)


def drive(turn: Turn, caller: list[bytes]) -> tuple[list[bytes | None], list[bytes]]:
    """One tick then one caller frame, as the 20 ms clock and Asterisk's stream interleave."""
    sent, decoded = [], []
    for frame in caller:
        sent.append(turn.tick())
        decoded.extend(turn.audio(frame))
        if turn.result is not None:
            break
    return sent, decoded


def test_barge_in_stops_the_prompt_within_100_ms_and_keeps_every_frame_from_the_onset() -> None:
    turn = Turn(prompt(150), "12")
    speech = tone(500, VOICE, 40, phase=7)
    caller = SILENCE * 30 + speech + SILENCE * 20
    sent, decoded = drive(turn, caller)
    assert turn.result is not None and turn.result.kind == "speech" and turn.result.interrupted
    assert turn.onset_frame == 31  # the first voiced caller frame (1-based)
    prompt_after_onset = [s for s in sent[30:] if s is not None and s != SILENT_FRAME]
    assert len(prompt_after_onset) <= 5  # 100 ms
    # every voiced frame reached the decoder, plus the pre-roll before it
    assert all(f in decoded for f in speech)
    assert decoded.index(speech[0]) == 10  # pre_roll_frames of silence first
    # and the answer ended 10 frames (200 ms) after the voice stopped
    assert turn.result.tick == 30 + 40 + 10


def test_barge_in_off_plays_the_prompt_to_the_end_and_then_listens() -> None:
    turn = Turn(prompt(40), "", TurnSettings(barge_in=False))
    sent, _ = drive(turn, SILENCE * 15 + tone(500, VOICE, 10) + SILENCE * 60)
    assert sum(1 for s in sent if s is not None and s != SILENT_FRAME) == 40
    assert turn.result is None or turn.result.kind != "speech" or not turn.result.interrupted


def test_a_key_ends_the_turn_at_once_and_only_escape_keys_count() -> None:
    turn = Turn(prompt(100), "12")
    drive(turn, SILENCE * 20)
    turn.dtmf("9")
    assert turn.result is None
    turn.dtmf("2")
    assert turn.result is not None and (turn.result.kind, turn.result.digit) == ("digit", "2")
    assert turn.result.interrupted
    assert turn.tick() is None  # nothing more is played


def test_silence_after_the_prompt_times_out_and_keepalives_go_out() -> None:
    turn = Turn(prompt(10), "1", TurnSettings(no_input_ticks=60))
    sent, _ = drive(turn, SILENCE * 200)
    assert turn.result is not None and turn.result.kind == "silence" and turn.result.tick == 10 + 60
    keepalives = [i for i, s in enumerate(sent) if s == SILENT_FRAME]
    assert keepalives and all(b - a == KEEPALIVE_TICKS for a, b in itertools.pairwise(keepalives))


def test_speech_that_never_stops_is_cut_at_the_limit() -> None:
    turn = Turn([], "", TurnSettings(max_speech_frames=50))
    drive(turn, SILENCE * 15 + tone(500, VOICE, 200))
    assert turn.result is not None and turn.result.kind == "speech"
    assert turn.speech_frames == 50


def test_a_hangup_ends_the_turn() -> None:
    turn = Turn(prompt(10), "")
    turn.hangup()
    assert turn.result is not None and turn.result.kind == "hangup"
