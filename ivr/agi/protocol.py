"""FastAGI wire protocol, sans-I/O: bytes in, events out; commands in, bytes out. No sockets here.

The engine is the AGI *script* side: Asterisk connects, sends the `agi_*` environment block ending in a
blank line, then answers each command line with one reply. Reply forms seen from a real Asterisk 22
(shared/asterisk/README.md):

    200 result=0 endpos=16000          200 result= (timeout)          200 result=7 (timeout)
    200 result=1 (kk)                  200 result=989 (timeout) endpos=8160
    200 result=35 (dtmf) endpos=4480   200 result=1 (speech) endpos=0 results=...
    100 result=0 Trying...             510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:   <raw usage lines>   520 End of proper usage.

plus a bare `HANGUP` line Asterisk sends on its own when the channel hangs up. Lines end in a bare "\\n".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import attrs

from ivr.sansio import NEED_DATA, NeedData

MAX_LINE_DEFAULT = 8192
MAX_ENV_LINES = 256  # Asterisk sends ~22 lines plus agi_arg_N; anything far beyond is not Asterisk


class ProtocolError(Exception):
    """The peer sent something that is not FastAGI; the connection cannot be trusted any further."""


class UnsafeValue(ValueError):
    """A value would break out of its command argument (a newline or NUL inside it)."""


@attrs.frozen
class AgiEnvironment:
    """The `agi_*` block Asterisk sends first. `values` keeps every key without its `agi_` prefix."""

    values: dict[str, str]
    args: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def script(self) -> str:
        """agi_network_script: the URL path without its leading '/', e.g. '1414'."""
        return self.values.get("network_script", "")

    @property
    def channel(self) -> str:
        return self.values.get("channel", "")

    @property
    def uniqueid(self) -> str:
        return self.values.get("uniqueid", "")

    @property
    def language(self) -> str:
        return self.values.get("language", "")

    @property
    def callerid(self) -> str:
        """The caller's number, '' when Asterisk reports it unknown."""
        value = self.values.get("callerid", "")
        return "" if value in ("unknown", "<unknown>") else value

    @property
    def calleridname(self) -> str:
        value = self.values.get("calleridname", "")
        return "" if value in ("unknown", "<unknown>") else value

    @property
    def context(self) -> str:
        return self.values.get("context", "")

    @property
    def extension(self) -> str:
        return self.values.get("extension", "")


@attrs.frozen
class Environment:
    """Event: the environment block is complete."""

    env: AgiEnvironment


_NO_EXTRAS: Mapping[str, str] = MappingProxyType({})


class Reply(NamedTuple):
    """Event: one reply to one command.

    `result` is the raw text after `result=` ('' for `200 result= (timeout)`); `data` the text inside the
    parentheses that follow it, if any ('timeout', 'dtmf', a variable's value); `extras` the `key=value`
    words after that (endpos, results). For 520 the usage text is in `usage`.

    A NamedTuple rather than an attrs class: one is built per AGI command, and a frozen attrs instance
    costs 2.1 µs to build against 0.4 µs for this (timeit, Python 3.11) — a tenth of the per-command budget.
    """

    code: int
    line: str
    result: str = ""
    data: str | None = None
    extras: Mapping[str, str] = _NO_EXTRAS
    usage: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def provisional(self) -> bool:
        """`100 result=0 Trying...`: the real reply is still to come."""
        return 100 <= self.code < 200

    @property
    def value(self) -> int | None:
        """result= as an integer; None when empty or not a number."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def endpos(self) -> int | None:
        text = self.extras.get("endpos")
        return int(text) if text is not None and text.lstrip("-").isdigit() else None


# Reply's fields in order, straight into the tuple: a third of the instructions of Reply(...), whose
# generated __new__ is Python code (the common replies, in parse_reply_line).
_reply = functools.partial(tuple.__new__, Reply)


@attrs.frozen
class HangupNotice:
    """Event: the bare `HANGUP` line: the channel has hung up (sent unsolicited by Asterisk)."""


@attrs.frozen
class Closed:
    """Event: the peer closed its side after a complete environment block."""


Event = Environment | Reply | HangupNotice | Closed

_REPLY_RE = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_KEY_VALUE_RE = re.compile(r"(\w+)=(\S*)")
_USAGE_START = "520-"
_USAGE_END = "520 "


def parse_reply_line(line: str) -> Reply:
    """One complete reply line (not the multi-line 520) to a Reply."""
    if line[:11] == "200 result=":
        # The common forms, without regular expressions (nor startswith, slow in CPython 3.11):
        # "200 result=N", "200 result=N endpos=M", "200 result=N (timeout)", "200 result=1 (value)".
        result, _, tail = line[11:].partition(" ")
        if not tail:
            return _reply((200, line, result, None, _NO_EXTRAS, ()))
        if tail[0] == "(":
            if tail[-1] == ")":
                return _reply((200, line, result, tail[1:-1], _NO_EXTRAS, ()))
        elif tail[:7] == "endpos=" and " " not in tail:
            return _reply((200, line, result, None, {"endpos": tail[7:]}, ()))
    match = _REPLY_RE.match(line)
    if match is None:
        raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
    code = int(match.group(1))
    rest = match.group(2) or ""
    if not rest.startswith("result="):
        return Reply(code=code, line=line)
    rest = rest[7:]
    result, _, rest = rest.partition(" ")
    data: str | None = None
    if rest.startswith("("):
        # A GET VARIABLE value may itself hold spaces and ')': when the reply ends with ')' the whole
        # rest is the value; otherwise the group ends at the first ') ' and key=value words follow.
        if rest.endswith(")"):
            data, rest = rest[1:-1], ""
        else:
            closing = rest.find(") ")
            if closing < 0:
                raise ProtocolError(f"unbalanced parenthesis in AGI reply: {line[:80]!r}")
            data, rest = rest[1:closing], rest[closing + 2 :]
    extras = dict(_KEY_VALUE_RE.findall(rest)) if rest else {}
    return Reply(code=code, line=line, result=result, data=data, extras=extras)


# Asterisk answers a call's commands with the same few lines as every other call's ("200 result=0",
# "200 result=1", a key pressed, "(timeout)"): each read once, then found by its bytes (a Reply is
# immutable). A hit costs about a third of a parse (callgrind: 3,200 instructions against 8,500). Only
# lines with nothing after the result, a result of at most 4 characters and a value without digits:
# what a caller typed (a callback number) or a variable holding a number is never kept past its call.
_SEEN_REPLIES: dict[bytes, Reply] = {}
_SEEN_REPLIES_MAX = 1024
_SEEN_LINE_MAX = 48
_SEEN_RESULT_MAX = 4


class AgiParser:
    """Incremental reader of what Asterisk sends: feed bytes, pull events.

        parser.receive_data(chunk)      # b"" means the peer closed its side
        while (event := parser.next_event()) is not NEED_DATA: ...

    Raises ProtocolError on anything that is not FastAGI: a line over `max_line`, a malformed
    environment line, a close before the environment block ends, an unknown reply line.
    """

    __slots__ = ("_buffer", "_closed", "_env_done", "_max_line", "_pos", "_usage")

    def __init__(self, max_line: int = MAX_LINE_DEFAULT) -> None:
        # bytes plus a read position rather than a bytearray shifted per line: a reply usually
        # arrives as one whole line, which is then read without any copy of the buffer.
        self._buffer = b""
        self._pos = 0
        self._closed = False
        self._max_line = max_line
        self._env_done = False
        self._usage: list[str] | None = None

    @property
    def environment_complete(self) -> bool:
        return self._env_done

    def receive_data(self, data: bytes) -> None:
        if self._closed:
            if data:
                raise ProtocolError("data after end of stream")
            return
        if not data:
            self._closed = True
        elif self._pos >= len(self._buffer):
            self._buffer, self._pos = bytes(data), 0
        else:
            self._buffer, self._pos = self._buffer[self._pos :] + data, 0

    def receive_reply(self, data: bytes) -> Reply | None:
        """The fast path for what Asterisk sends nearly every time: exactly one whole ordinary reply
        line with nothing buffered. Returns its Reply, or None having consumed nothing — then use
        receive_data/next_event, which handle every case (and refuse what is not FastAGI).

        Written for the interpreter's sake (callgrind): partition and indexing, not find/startswith,
        whose argument parsing alone costs more than the rest of the checks.
        """
        if self._pos < len(self._buffer) or not self._env_done or self._usage is not None or self._closed:
            return None
        reply = _SEEN_REPLIES.get(data)
        if reply is not None and len(data) <= self._max_line:
            return reply
        raw, newline, rest = data.partition(b"\n")
        # "NNN " opens every ordinary reply; not "HANGUP", "520-" (usage follows) or a blank line.
        if rest or not newline or len(raw) < 4 or raw[3] != 32 or len(raw) > self._max_line:
            return None
        if raw[-1] == 13:  # "\r"
            raw = raw[:-1]
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            line = raw.decode("latin-1")
        reply = parse_reply_line(line)
        if (
            len(data) <= _SEEN_LINE_MAX
            and reply.extras is _NO_EXTRAS
            and len(reply.result) <= _SEEN_RESULT_MAX
            and (reply.data is None or reply.data.isalpha())
        ):
            if len(_SEEN_REPLIES) >= _SEEN_REPLIES_MAX:
                _SEEN_REPLIES.clear()
            _SEEN_REPLIES[data] = reply
        return reply

    def next_event(self) -> Event | NeedData:
        if not self._env_done:
            return self._environment_block()
        while True:
            buffer, start = self._buffer, self._pos
            end = buffer.find(b"\n", start)
            if end < 0:
                if len(buffer) - start > self._max_line:
                    raise ProtocolError(f"line longer than {self._max_line} bytes")
                if self._closed:
                    return self._end_of_stream()
                return NEED_DATA
            if end - start > self._max_line:
                raise ProtocolError(f"line longer than {self._max_line} bytes")
            self._pos = end + 1
            event = self._reply_line(_decode(buffer[start:end]))
            if event is not None:
                return event

    def _end_of_stream(self) -> Closed:
        if self._pos < len(self._buffer):
            rest = self._buffer[self._pos : self._pos + 80]
            raise ProtocolError(f"connection closed in the middle of a line: {rest!r}")
        if not self._env_done:
            raise ProtocolError("connection closed before the end of the AGI environment block")
        if self._usage is not None:
            raise ProtocolError("connection closed inside a 520 usage reply")
        return Closed()

    def _environment_block(self) -> Environment | NeedData:
        """The whole block at once when its blank line is in: one split instead of a pass per line.
        Until then only the first line is checked, so that garbage is refused at once."""
        buffer, start = self._buffer, self._pos
        if buffer.startswith(b"\n", start):
            raise ProtocolError("blank line before any AGI environment variable")
        end = buffer.find(b"\n\n", start)
        if end < 0:
            first = buffer.find(b"\n", start)
            if first >= 0:
                _env_pair(_decode(buffer[start:first]))
            elif len(buffer) - start > self._max_line:
                raise ProtocolError(f"line longer than {self._max_line} bytes")
            if len(buffer) - start > self._max_line * 8:
                raise ProtocolError("AGI environment block too long")
            if self._closed:
                raise ProtocolError("connection closed before the end of the AGI environment block")
            return NEED_DATA
        block = buffer[start:end]
        if block.count(b"\n") >= MAX_ENV_LINES:
            raise ProtocolError("AGI environment block too long")
        if len(block) > self._max_line and any(len(raw) > self._max_line for raw in block.split(b"\n")):
            raise ProtocolError(f"line longer than {self._max_line} bytes")
        try:  # one decode for the block (a caller ID name in latin-1 makes it line by line)
            text = block.decode()
        except UnicodeDecodeError:
            text = "\n".join([_decode(raw) for raw in block.split(b"\n")])
        values = _usual_block(text)
        if values is None:  # anything else line by line, which also names the offending line
            values = {}
            for line in text.split("\n"):
                key, value = _env_pair(line[:-1] if line.endswith("\r") else line)
                values[key] = value
        self._pos = end + 2
        self._env_done = True
        return Environment(_environment(values))

    def _reply_line(self, line: str) -> Event | None:
        if self._usage is not None:
            if line.startswith(_USAGE_END):
                usage, self._usage = tuple(self._usage), None
                return Reply(code=520, line=line, usage=usage)
            if len(self._usage) >= MAX_ENV_LINES:
                raise ProtocolError("520 usage text too long")
            self._usage.append(line)
            return None
        if line == "HANGUP":
            return HangupNotice()
        if line.startswith(_USAGE_START):
            self._usage = []
            return None
        if line == "":
            return None
        return parse_reply_line(line)


def _decode(raw: bytes) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Caller ID names come from the far end; Asterisk passes their bytes through as-is.
        line = raw.decode("latin-1")
    return line[:-1] if line.endswith("\r") else line


def _usual_block(text: str) -> dict[str, str] | None:
    """The block as Asterisk sends it, every line `agi_key: value`, read without a Python step per
    line (callgrind: 59,000 instructions a call against 82,000 for a comprehension over the ~22
    lines); None for anything else (a ': ' inside a value, a '\\r', a repeated key).

    With exactly one ': ' per line and 'agi_' opening every line, turning each '\\nagi_' into ': '
    leaves key, value, key, value... separated by ': '."""
    lines = text.count("\n") + 1
    if text[:4] != "agi_" or text.count("\nagi_") != lines - 1 or text.count(": ") != lines or "\r" in text:
        return None
    words = iter(text[4:].replace("\nagi_", ": ").split(": "))
    values = dict(zip(words, words, strict=False))  # 2 x lines words: even, by the counts above
    if len(values) != lines or " " in "".join(values):  # a repeated key; a key with a space
        return None
    return values


def _env_pair(line: str) -> tuple[str, str]:
    """'agi_channel: PJSIP/x' -> ('channel', 'PJSIP/x'); anything else is not FastAGI."""
    key, sep, value = line.partition(": ")
    if not sep and line.endswith(":"):  # "agi_accountcode:" with the trailing space trimmed
        key, sep, value = line[:-1], ":", ""
    if not sep or not key.startswith("agi_") or " " in key:
        raise ProtocolError(f"not an AGI environment line: {line[:80]!r}")
    return key[4:], value


def _environment(values: dict[str, str]) -> AgiEnvironment:
    if "arg_1" not in values:  # AGI(agi://host/1414) with no arguments, as asterisk-conf calls it
        return AgiEnvironment(values=values)
    args = []
    index = 1
    while f"arg_{index}" in values:
        args.append(values[f"arg_{index}"])
        index += 1
    return AgiEnvironment(values=values, args=tuple(args))


# --- commands -------------------------------------------------------------------------------------

_COMMAND_WORD_RE = re.compile(r"^[A-Za-z][A-Za-z ]*$")
_BARE_SAFE_RE = re.compile(r'^[^\s"\\]+$')


def _check_safe(value: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise UnsafeValue(f"value with a line break or NUL cannot go into an AGI command: {value[:40]!r}")
    return value


def quote_argument(value: str) -> str:
    """One AGI argument as Asterisk's parse_args() reads it back: quoted, with '\\' and '"' escaped."""
    _check_safe(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_argument(value: object) -> str:
    text = _check_safe(str(value))
    if _BARE_SAFE_RE.match(text):
        return text
    return quote_argument(text)


def format_command(command: str, *args: object) -> bytes:
    """`format_command("STREAM FILE", "beep2s", "")` -> b'STREAM FILE beep2s ""\\n'.

    `command` is the fixed command words (never caller data); every argument is quoted when it needs to
    be, so a value from the caller or the network stays one argument on one line.
    """
    key = (command, args)
    try:
        return _FORMATTED[key]
    except KeyError:
        pass
    if args:
        line = _command_name(command) + (" " + " ".join([format_argument(a) for a in args]) + "\n").encode()
    else:
        line = _command_name(command) + b"\n"
    # Only all-text commands are remembered: 1, 1.0 and True are equal as keys but are written
    # differently, while a text never equals a number, so a hit is always the very same command.
    if all(type(a) is str for a in args):
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        _FORMATTED[key] = line
    return line


# A call sends the same few commands as every other call (its menu's prompts, its queue): formatting
# each once saves ~3,000 CPU instructions a command (callgrind). Bounded: values from callers (a typed
# number) at worst empty it now and then.
_FORMATTED: dict[tuple[str, tuple[object, ...]], bytes] = {}
_FORMATTED_MAX = 4096


@functools.lru_cache(maxsize=64)
def _command_name(command: str) -> bytes:
    """Checked once per command name, not on every send."""
    if not _COMMAND_WORD_RE.match(command):
        raise UnsafeValue(f"not an AGI command name: {command!r}")
    return command.encode()


_APP_SPECIAL_RE = re.compile(r'([\\,"()\[\]|])')
_APP_SPECIAL_BUT_COMMA_RE = re.compile(r'[\\"()\[\]|]')


def format_app_args(args: Iterable[object]) -> str:
    """Application data for EXEC: arguments joined by ',' with the characters Asterisk's
    ast_app_separate_args() interprets (',', '"', '\\', brackets) escaped, so a value stays one argument."""
    texts = [str(arg) for arg in args]
    joined = ",".join(texts)
    # Usually no argument holds anything to escape: one search of them all rather than one each
    # (callgrind, a Queue's five arguments: 10,600 instructions against 13,900). The commas are then
    # exactly the separators.
    if joined.count(",") == len(texts) - 1 and not _APP_SPECIAL_BUT_COMMA_RE.search(joined):
        return _check_safe(joined)
    parts = []
    for arg in texts:
        text = _check_safe(arg)
        parts.append(_APP_SPECIAL_RE.sub(r"\\\1", text) if _APP_SPECIAL_RE.search(text) else text)
    return ",".join(parts)


def parse_command_line(line: str) -> list[str]:
    """How Asterisk's res_agi.c parse_args() splits a command line into words (used by the fake).

    Double quotes group, backslash escapes the next character, spaces and tabs separate.
    """
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    in_word = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if char in " \t" and not quoted and not escaped:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        in_word = True
        current.append(char)
    if in_word:
        words.append("".join(current))
    return words


def split_app_args(data: str) -> list[str]:
    """Asterisk's ast_app_separate_args(data, ',', remove_chars=1): the inverse of format_app_args."""
    if data == "":
        return []
    args: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quote = False
    index = 0
    while index < len(data):
        char = data[index]
        if char == "(":
            paren += 1
        elif char == ")" and paren:
            paren -= 1
        elif char == "[":
            bracket += 1
        elif char == "]" and bracket:
            bracket -= 1
        elif char == '"':
            quote = not quote
            index += 1
            continue
        elif char == "\\":
            index += 1
            if index < len(data):
                current.append(data[index])
            index += 1
            continue
        elif char == "," and not paren and not quote and not bracket:
            args.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    args.append("".join(current))
    return args
