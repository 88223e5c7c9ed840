"""Asterisk Manager Interface wire format, sans-I/O: bytes in, `Message`s out, and back.

What Asterisk 22 sends (see shared/asterisk/README.md): a banner line "Asterisk Call Manager/11.0.0\\r\\n"
with no blank line after it, then messages made of "Key: value\\r\\n" lines ended by an empty line.
Header order matters (ActionID position differs between message kinds) and keys repeat ("Output:" once
per CLI line), so a message is an ordered tuple of pairs, never a dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

BANNER_PREFIX = "Asterisk Call Manager/"
EOL = b"\r\n"
END = b"\r\n\r\n"
# Largest message accepted. Real ones are far smaller (a QueueMember event is ~500 bytes), but a
# "Command" reply carries whole CLI screens; 4 MiB is room for those and still stops a runaway peer.
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
MAX_BANNER = 1024


class AmiProtocolError(ValueError):
    """The peer sent something that is not AMI (or is absurdly large); the connection should go."""


class HeaderInjectionError(ValueError):
    """A header key or value would break the framing (CR, LF, or a colon in a key)."""


@attrs.frozen(slots=True)
class Message:
    """One AMI message: a Response, an Event or an Action, headers in wire order."""

    headers: tuple[tuple[str, str], ...]
    _index: dict[str, str] | None = attrs.field(default=None, eq=False, repr=False, alias="_index")

    @classmethod
    def of(cls, *pairs: tuple[str, str], **headers: Any) -> Message:
        """Message.of(("Action", "Ping"), ActionID="1"): pairs first, then keyword headers."""
        items = list(pairs) + [(k, str(v)) for k, v in headers.items()]
        return cls(tuple(items))

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Built on first use only: most events are dispatched on their first header alone.
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), value)
            object.__setattr__(self, "_index", index)
        return index

    def get(self, key: str, default: str | None = None) -> str | None:
        """Value of the first header named `key` (case-insensitive), or `default`."""
        return self._lookup().get(key.lower(), default)

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated header, in order ("Output" lines of a Command reply)."""
        wanted = key.lower()
        return [value for k, value in self.headers if k.lower() == wanted]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.headers)

    @property
    def kind(self) -> str:
        """First header key: "Response", "Event" or "Action" for well-formed messages."""
        return self.headers[0][0] if self.headers else ""

    @property
    def is_event(self) -> bool:
        return self.kind.lower() == "event"

    @property
    def is_response(self) -> bool:
        return self.kind.lower() == "response"

    @property
    def is_action(self) -> bool:
        return self.kind.lower() == "action"

    @property
    def event(self) -> str | None:
        return self.headers[0][1] if self.is_event else None

    @property
    def response(self) -> str | None:
        return self.headers[0][1] if self.is_response else None

    @property
    def action(self) -> str | None:
        return self.headers[0][1] if self.is_action else None

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_bytes(self) -> bytes:
        return serialize(self.headers)


def check_header(key: str, value: str) -> None:
    """Refuse anything that could end a header line early or start a new one."""
    if not key or key != key.strip() or ":" in key or "\r" in key or "\n" in key:
        raise HeaderInjectionError(f"invalid AMI header name {key!r}")
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(f"AMI header {key!r}: value contains CR or LF: {value!r}")


def serialize(headers: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> bytes:
    """Headers -> one framed AMI message. A list or tuple value becomes one line per item."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    for key, value in pairs:
        values = value if isinstance(value, list | tuple) else (value,)
        for item in values:
            text = "" if item is None else str(item)
            check_header(key, text)
            lines.append(f"{key}: {text}\r\n")
    if not lines:
        raise ValueError("an AMI message needs at least one header")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def parse_message(block: bytes) -> Message:
    """One message without its terminating blank line -> Message."""
    # UTF-8 with replacement: caller names are often Cyrillic; a stray byte must not kill the link.
    text = block.decode("utf-8", "replace")
    headers = []
    for line in text.split("\r\n"):
        colon = line.find(":")
        if colon <= 0:
            raise AmiProtocolError(f"AMI line without 'Key: value' form: {line[:200]!r}")
        value = line[colon + 1 :]
        if value[:1] == " ":
            value = value[1:]
        headers.append((line[:colon], value))
    return Message(tuple(headers))


class AmiParser:
    """Incremental AMI reader: feed() whatever recv() returned, get back complete messages.

    expect_banner=True for the client side (Asterisk greets first); the fake server's parser reads
    actions and sets it False.
    """

    def __init__(self, *, expect_banner: bool = True, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for END, so big messages are not rescanned
        self._need_banner = expect_banner
        self.max_message = max_message
        self.banner: str | None = None

    @property
    def version(self) -> str | None:
        """ "11.0.0" from the banner, once it has arrived."""
        if self.banner is None:
            return None
        return self.banner.partition("/")[2] or None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer
        buffer += data
        if self._need_banner and not self._take_banner():
            return []
        messages: list[Message] = []
        start = 0
        search_from = max(0, self._scanned - 3)
        while True:
            # Tolerate stray blank lines between messages.
            while buffer.startswith(EOL, start):
                start += 2
            search_from = max(search_from, start)
            end = buffer.find(END, search_from)
            if end < 0:
                break
            if end > start:
                messages.append(parse_message(bytes(buffer[start:end])))
            start = end + 4
            search_from = start
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        if len(buffer) > self.max_message:
            raise AmiProtocolError(
                f"AMI message exceeds {self.max_message} bytes without an end (peer sent {len(buffer)})"
            )
        return messages

    def _take_banner(self) -> bool:
        end = self._buffer.find(EOL)
        if end < 0:
            if len(self._buffer) > MAX_BANNER:
                raise AmiProtocolError(f"no AMI banner line within {MAX_BANNER} bytes")
            return False
        line = bytes(self._buffer[:end]).decode("utf-8", "replace")
        if not line.startswith(BANNER_PREFIX):
            raise AmiProtocolError(f"expected the '{BANNER_PREFIX}...' banner, got {line[:200]!r}")
        self.banner = line
        self._need_banner = False
        del self._buffer[: end + 2]
        return True


def banner_bytes(version: str = "11.0.0") -> bytes:
    return f"{BANNER_PREFIX}{version}\r\n".encode()
