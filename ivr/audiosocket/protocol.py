"""AudioSocket wire protocol, sans-I/O: bytes in, events out; frames in, bytes out. No sockets here.

Every message is `kind (1 byte) | length (2 bytes, big-endian) | payload`, as recorded from a real
Asterisk 22.10.1 (shared/asterisk/audiosocket/README.md):

    01  UUID     Asterisk -> server, always first and once: 16 raw bytes (string order)
    03  DTMF     Asterisk -> server: one ASCII digit, once per digit, at the digit's END
    10  audio    both ways: signed 16-bit little-endian PCM, 8 kHz mono (320 bytes per 20 ms)
    11-18 audio  slin12/16/24/32/44/48/96/192; Asterisk sends them only on the channel-driver path
    00  hangup   server -> Asterisk: ends the AudioSocket() app (the dialplan or AGI goes on)
    ff  error    defined by the protocol; Asterisk 22.10.1 never sends it

`AudioSocketParser(sender="asterisk")` reads what Asterisk sends (the engine's side);
`sender="server"` reads what a server sends, and rejects what Asterisk itself rejects (the fake's side).
Asterisk never sends a hangup message: it just closes the connection, which `receive_data(b"")` reports.
"""

from __future__ import annotations

import uuid as uuid_module

import attrs

from ivr.sansio import NEED_DATA, NeedData

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_SLIN = 0x10
KIND_ERROR = 0xFF
# Audio kinds and their sample rates (res_audiosocket.h).
AUDIO_RATES = {
    0x10: 8000,
    0x11: 12000,
    0x12: 16000,
    0x13: 24000,
    0x14: 32000,
    0x15: 44100,
    0x16: 48000,
    0x17: 96000,
    0x18: 192000,
}
RATE_KINDS = {rate: kind for kind, rate in AUDIO_RATES.items()}
HEADER = 3
FRAME_MS = 20
# The largest payload a peer may send: 20 ms at 192 kHz is 7680 bytes; allow a little more for a
# server that sends 40 ms frames. A length beyond this is garbage, not audio, and is refused at once
# instead of buffering up to 64 KiB per connection.
MAX_PAYLOAD = 16384
DTMF_DIGITS = b"0123456789*#ABCD"


class ProtocolError(Exception):
    """The peer sent something that is not AudioSocket; the connection cannot be trusted any further."""


@attrs.frozen
class Uuid:
    """Event: the call's UUID (the first message Asterisk sends)."""

    value: uuid_module.UUID


@attrs.frozen
class Audio:
    """Event: one audio frame. `kind` says the rate for slin (0x10 also carries mu-law on chan_audiosocket
    with c(ulaw): the kind byte does not tell the codec there)."""

    kind: int
    payload: bytes

    @property
    def rate(self) -> int:
        return AUDIO_RATES[self.kind]

    @property
    def samples(self) -> int:
        return len(self.payload) // 2


@attrs.frozen
class Dtmf:
    """Event: one DTMF digit, reported when the key is released."""

    digit: str


@attrs.frozen
class Hangup:
    """Event: the server asked to end the session (what Asterisk reads from a server)."""


@attrs.frozen
class ErrorMessage:
    """Event: an 0xff message (never sent by Asterisk 22.10.1; kept for other peers)."""

    payload: bytes


@attrs.frozen
class Closed:
    """Event: the peer closed its side of the connection."""


Event = Uuid | Audio | Dtmf | Hangup | ErrorMessage | Closed


class AudioSocketParser:
    """Incremental reader: feed bytes, pull events.

        parser.receive_data(chunk)      # b"" means the peer closed its side
        while (event := parser.next_event()) is not NEED_DATA: ...

    Raises ProtocolError on: a length over `max_payload`, an unknown kind, a message the `sender` never
    sends (DTMF from a server), a zero-length audio frame (Asterisk rejects it too), a first message from
    Asterisk that is not the UUID or a second UUID, a UUID or DTMF payload of the wrong size, and a close
    in the middle of a message.
    """

    def __init__(self, sender: str = "asterisk", max_payload: int = MAX_PAYLOAD) -> None:
        if sender not in ("asterisk", "server"):
            raise ValueError(f"sender must be 'asterisk' or 'server', not {sender!r}")
        self.sender = sender
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._offset = 0
        self._eof = False
        self._closed_reported = False
        self._seen_uuid = False
        self.uuid: uuid_module.UUID | None = None

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            if data:
                raise ProtocolError("data after the peer closed")
            return
        if not data:
            self._eof = True
            return
        if self._offset and self._offset == len(self._buffer):
            self._buffer.clear()
            self._offset = 0
        self._buffer += data

    def next_event(self) -> Event | NeedData:
        buffer = self._buffer
        start = self._offset
        available = len(buffer) - start
        if available < HEADER:
            return self._end_of_data(available)
        kind = buffer[start]
        length = (buffer[start + 1] << 8) | buffer[start + 2]
        if length > self.max_payload:
            raise ProtocolError(
                f"message of kind {kind:#04x} declares {length} bytes (cap {self.max_payload})"
            )
        self._check_kind(kind, length)
        if available < HEADER + length:
            return self._end_of_data(available)
        payload = bytes(buffer[start + HEADER : start + HEADER + length])
        self._offset = start + HEADER + length
        if self._offset > 65536:  # compact now and then instead of on every message
            del buffer[: self._offset]
            self._offset = 0
        return self._event(kind, payload)

    def _end_of_data(self, available: int) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        if available:
            raise ProtocolError(f"connection closed in the middle of a message ({available} bytes left)")
        if self._closed_reported:
            return NEED_DATA
        self._closed_reported = True
        return Closed()

    def _check_kind(self, kind: int, length: int) -> None:
        """Refuse a bad message from its header alone, before waiting for a payload that may never come."""
        from_asterisk = self.sender == "asterisk"
        if from_asterisk and not self._seen_uuid and kind != KIND_UUID:
            raise ProtocolError(f"first message is of kind {kind:#04x}, not the UUID")
        if kind in AUDIO_RATES:
            if length == 0:
                raise ProtocolError("zero-length audio frame")
            return
        if kind == KIND_UUID and from_asterisk:
            if self._seen_uuid:
                raise ProtocolError("a second UUID message")
            if length != 16:
                raise ProtocolError(f"UUID payload of {length} bytes, not 16")
            return
        if kind == KIND_DTMF and from_asterisk:
            if length != 1:
                raise ProtocolError(f"DTMF payload of {length} bytes, not 1")
            return
        if kind == KIND_HANGUP and not from_asterisk:
            return
        if kind == KIND_ERROR:
            return
        raise ProtocolError(f"message of kind {kind:#04x} is not sent by {self.sender}")

    def _event(self, kind: int, payload: bytes) -> Event:
        if kind in AUDIO_RATES:
            return Audio(kind, payload)
        if kind == KIND_UUID:
            self._seen_uuid = True
            self.uuid = uuid_module.UUID(bytes=payload)
            return Uuid(self.uuid)
        if kind == KIND_DTMF:
            if payload not in DTMF_DIGITS:
                raise ProtocolError(f"DTMF payload {payload!r} is not a digit")
            return Dtmf(payload.decode("ascii"))
        if kind == KIND_HANGUP:
            return Hangup()
        return ErrorMessage(payload)


# --- serialisers ----------------------------------------------------------------------------------
def _header(kind: int, length: int) -> bytes:
    if length > 0xFFFF:
        raise ValueError(f"payload of {length} bytes does not fit a 16-bit length")
    return bytes((kind, length >> 8, length & 0xFF))


def audio_message(pcm: bytes, rate: int = 8000) -> bytes:
    """One audio message: slin at `rate` (8000 -> kind 0x10, 16000 -> 0x12, ...)."""
    kind = RATE_KINDS.get(rate)
    if kind is None:
        raise ValueError(f"AudioSocket has no audio kind for {rate} Hz")
    if not pcm:
        raise ValueError("an empty audio frame is an error to Asterisk")
    if len(pcm) % 2:
        raise ValueError("slin audio is whole 16-bit samples")
    return _header(kind, len(pcm)) + pcm


def hangup_message() -> bytes:
    """00 00 00: AudioSocket() returns 0 and the dialplan (or the AGI session) goes on."""
    return b"\x00\x00\x00"


def uuid_message(value: uuid_module.UUID | str) -> bytes:
    """What Asterisk sends first (for the fake): 01 00 10 + the UUID's 16 bytes in string order."""
    parsed = value if isinstance(value, uuid_module.UUID) else uuid_module.UUID(value)
    return _header(KIND_UUID, 16) + parsed.bytes


def dtmf_message(digit: str) -> bytes:
    """What Asterisk sends at a digit's end (for the fake)."""
    raw = digit.encode("ascii")
    if len(raw) != 1 or raw not in DTMF_DIGITS:
        raise ValueError(f"{digit!r} is not a DTMF digit")
    return _header(KIND_DTMF, 1) + raw


def split_frames(pcm: bytes, rate: int = 8000, ms: int = FRAME_MS) -> list[bytes]:
    """Cut audio into frames of `ms`; the tail is a short frame, as Asterisk sends the end of a file."""
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - len(pcm) % 2, size)]
