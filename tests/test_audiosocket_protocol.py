"""The AudioSocket parser and serialisers against every byte a real Asterisk 22.10.1 sent and received."""

from __future__ import annotations

import csv
import uuid
import wave
from pathlib import Path

import pytest

from ivr.audiosocket.protocol import (
    NEED_DATA,
    Audio,
    AudioSocketParser,
    Closed,
    Dtmf,
    Hangup,
    ProtocolError,
    Uuid,
    audio_message,
    dtmf_message,
    hangup_message,
    split_frames,
    uuid_message,
)
from ivr.testing.transcripts import transcripts_root

ROOT = transcripts_root() / "audiosocket"
INBOUND = sorted(p.name[: -len(".in.bin")] for p in ROOT.glob("*.in.bin") if ".agi." not in p.name)


def events_of(data_chunks: list[bytes], sender: str = "asterisk") -> list[object]:
    parser = AudioSocketParser(sender)
    events: list[object] = []
    for chunk in data_chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


PAYLOAD = "payload(uuid/dtmf hex | zero | rms)"


def tsv_rows(scenario: str, first: Uuid) -> list[dict[str, str]]:
    """The .frames.tsv rows of the connection that began with this UUID (agi-exec has two with one UUID)."""
    with open(ROOT / f"{scenario.split('.')[0]}.frames.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    conns = [r["conn"] for r in rows if r["frame"] == "0" and r[PAYLOAD] == first.value.hex]
    conn = conns[1] if scenario.endswith(".conn2") else conns[0]
    return [row for row in rows if row["conn"] == conn]


def test_the_recordings_are_there() -> None:
    assert len(INBOUND) >= 20


@pytest.mark.parametrize("name", INBOUND)
def test_every_recording_parses_whole_and_byte_by_byte_into_the_recorded_frames(name: str) -> None:
    data = (ROOT / f"{name}.in.bin").read_bytes()
    whole = events_of([data, b""])
    assert whole == events_of([data[i : i + 1] for i in range(len(data))] + [b""])
    frames = [e for e in whole if not isinstance(e, Closed)]
    assert whole[-1] == Closed()
    if not data:  # not-answered: Asterisk connects and closes without a byte
        assert frames == []
        return
    assert isinstance(frames[0], Uuid)
    rows = tsv_rows(name, frames[0])
    assert len(rows) == len(frames)
    for row, event in zip(rows, frames, strict=True):
        if isinstance(event, Uuid):
            assert row["kind"] == "0x01" and event.value.hex == row[PAYLOAD]
        elif isinstance(event, Dtmf):
            assert row["kind"] == "0x03" and event.digit.encode().hex() == row[PAYLOAD]
        else:
            assert isinstance(event, Audio)
            assert int(row["kind"], 16) == event.kind and int(row["len"]) == len(event.payload)


def test_the_uuid_is_in_string_order() -> None:
    data = (ROOT / "speech.in.bin").read_bytes()
    first = events_of([data[:19]])[0]
    assert first == Uuid(uuid.UUID("3f2504e0-4f89-41d3-9a0c-0305e82c3303"))
    assert uuid_message("3f2504e0-4f89-41d3-9a0c-0305e82c3303") == data[:19]


def test_speech_arrives_as_recorded_including_the_short_last_frame() -> None:
    events = events_of([(ROOT / "speech.in.bin").read_bytes()])
    audio = [e for e in events if isinstance(e, Audio)]
    with wave.open(str(ROOT / "speech.received.wav")) as wav:
        assert b"".join(a.payload for a in audio) == wav.readframes(wav.getnframes())
    assert sorted({len(a.payload) for a in audio}) == [126, 320]
    assert {a.rate for a in audio} == {8000}


def test_dtmf_digits_come_once_each() -> None:
    events = events_of([(ROOT / "dtmf.in.bin").read_bytes()])
    assert [e.digit for e in events if isinstance(e, Dtmf)] == ["5", "7", "#"]
    assert dtmf_message("5") == b"\x03\x00\x015"


def test_the_channel_driver_sends_slin16_frames_of_640_bytes() -> None:
    events = events_of([(ROOT / "chan-slin16.in.bin").read_bytes()])
    audio = [e for e in events if isinstance(e, Audio)]
    assert {a.rate for a in audio} == {16000}
    assert max(len(a.payload) for a in audio) == 640


@pytest.mark.parametrize("name", ["server-plays-paced", "server-plays-burst", "app-server-sends-slin16"])
def test_what_our_recorder_sent_reads_as_a_server_message_stream(name: str) -> None:
    events = events_of([(ROOT / f"{name}.out.bin").read_bytes()], sender="server")
    assert isinstance(events[-1], Hangup)
    audio = events[:-1]
    assert len(audio) in (50, 100) and all(isinstance(e, Audio) for e in audio)


@pytest.mark.parametrize(
    ("name", "error"), [("invalid-kind", "kind 0x03"), ("zero-length-audio", "zero-length")]
)
def test_what_asterisk_rejected_from_a_server_is_rejected_here_too(name: str, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        events_of([(ROOT / f"{name}.out.bin").read_bytes()], sender="server")


def test_serialised_frames_are_what_the_recorder_sent() -> None:
    sent = (ROOT / "server-plays-paced.out.bin").read_bytes()
    events = events_of([sent], sender="server")
    rebuilt = b"".join(audio_message(e.payload) for e in events if isinstance(e, Audio)) + hangup_message()
    assert rebuilt == sent
    slin16 = events_of([(ROOT / "app-server-sends-slin16.out.bin").read_bytes()], sender="server")
    assert audio_message(slin16[0].payload, 16000)[:3] == b"\x12\x02\x80"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x10\x01\x40" + bytes(320), "not the UUID"),
        (uuid_message(uuid.uuid4()) * 2, "second UUID"),
        (b"\x01\x00\x0f" + bytes(15), "not 16"),
        (uuid_message(uuid.uuid4()) + b"\x03\x00\x02ab", "not 1"),
        (uuid_message(uuid.uuid4()) + b"\x03\x00\x01x", "not a digit"),
        (uuid_message(uuid.uuid4()) + b"\x00\x00\x00", "not sent by asterisk"),
        (uuid_message(uuid.uuid4()) + b"\x42\x00\x00", "kind 0x42"),
        (uuid_message(uuid.uuid4()) + b"\x10\xff\xff", "cap"),
    ],
)
def test_malformed_input_is_refused_from_the_header(data: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        events_of([data])


def test_a_close_in_the_middle_of_a_frame_is_an_error_and_a_clean_close_is_reported_once() -> None:
    with pytest.raises(ProtocolError, match="middle"):
        events_of([uuid_message(uuid.uuid4()) + b"\x10\x01\x40" + bytes(10), b""])
    parser = AudioSocketParser()
    parser.receive_data(b"")
    assert parser.next_event() == Closed()
    assert parser.next_event() is NEED_DATA


def test_serialisers_refuse_what_asterisk_would_reject() -> None:
    with pytest.raises(ValueError, match="empty"):
        audio_message(b"")
    with pytest.raises(ValueError, match="11025"):
        audio_message(b"\0\0", 11025)
    with pytest.raises(ValueError, match="digit"):
        dtmf_message("x")


def test_split_frames_keeps_a_short_tail() -> None:
    frames = split_frames(bytes(320 * 2 + 126))
    assert [len(f) for f in frames] == [320, 320, 126]


def test_the_example_in_the_readme() -> None:
    text = Path(ROOT / "README.md").read_text()
    assert "01 00 10 3f 25 04 e0" in text
    assert uuid_message("3f2504e0-4f89-41d3-9a0c-0305e82c3301").hex(" ") == (
        "01 00 10 3f 25 04 e0 4f 89 41 d3 9a 0c 03 05 e8 2c 33 01"
    )
