"""The FastAGI parser and serialiser against every byte a real Asterisk 22 sent."""

from __future__ import annotations

import pytest

from ivr.agi.protocol import (
    NEED_DATA,
    AgiParser,
    Closed,
    Environment,
    HangupNotice,
    ProtocolError,
    Reply,
    UnsafeValue,
    format_app_args,
    format_command,
    parse_command_line,
    parse_reply_line,
    split_app_args,
)
from ivr.testing.transcripts import load_transcript, transcript_names

AGI_SCENARIOS = transcript_names("agi")


def events_of(chunks: list[bytes]) -> list[object]:
    parser = AgiParser()
    events: list[object] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def test_all_eighteen_scenarios_are_present() -> None:
    assert len(AGI_SCENARIOS) == 18


@pytest.mark.parametrize("name", AGI_SCENARIOS)
def test_every_transcript_parses_the_same_in_recorded_chunks_and_byte_by_byte(name: str) -> None:
    transcript = load_transcript("agi", name)
    recorded = [c.data for c in transcript.chunks if c.direction == "IN"]
    whole = transcript.received
    by_chunk = events_of(recorded)
    by_byte = events_of([whole[i : i + 1] for i in range(len(whole))])
    assert by_chunk == by_byte
    assert isinstance(by_chunk[0], Environment)
    assert by_chunk[0].env.script == name
    # one reply per command line we sent, the unsolicited HANGUP lines apart
    commands = transcript.sent.count(b"\n")
    replies = [e for e in by_chunk if isinstance(e, Reply)]
    assert len(replies) == commands


@pytest.mark.parametrize("name", AGI_SCENARIOS)
def test_after_asterisk_closes_the_parser_reports_a_clean_close(name: str) -> None:
    parser = AgiParser()
    parser.receive_data(load_transcript("agi", name).received)
    while parser.next_event() is not NEED_DATA:
        pass
    parser.receive_data(b"")
    assert isinstance(parser.next_event(), Closed)


def test_environment_block_in_asterisk_order_with_empty_values() -> None:
    env = events_of([load_transcript("agi", "basic").received])[0].env
    assert env.values["network"] == "yes"
    assert env.values["request"] == "agi://127.0.0.1:4573/basic"
    assert env.values["accountcode"] == ""
    assert env.values["dnid"] == "unknown"
    assert env.callerid == "79001234567"
    assert env.calleridname == "IVR Tester"
    assert env.args == ()


def events_by_fast_path(chunks: list[bytes]) -> list[object]:
    """As the server reads: each chunk offered to receive_reply first, the general path otherwise."""
    parser = AgiParser()
    events: list[object] = []
    for chunk in chunks:
        reply = parser.receive_reply(chunk)
        if reply is not None:
            events.append(reply)
            continue
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


@pytest.mark.parametrize("name", AGI_SCENARIOS)
def test_the_fast_reply_path_reads_every_transcript_as_the_general_parser(name: str) -> None:
    transcript = load_transcript("agi", name)
    recorded = [c.data for c in transcript.chunks if c.direction == "IN"]
    whole = transcript.received
    lines = [line + b"\n" for line in whole.split(b"\n")[:-1]]
    assert events_by_fast_path(recorded) == events_of(recorded)
    assert events_by_fast_path(lines) == events_of(lines)
    assert events_by_fast_path([whole[i : i + 1] for i in range(len(whole))]) == events_of(recorded)


def test_the_fast_reply_path_leaves_everything_unusual_to_the_general_parser() -> None:
    parser = AgiParser()
    assert parser.receive_reply(b"200 result=0\n") is None  # no environment yet
    parser.receive_data(b"agi_network: yes\n\n")
    assert isinstance(parser.next_event(), Environment)
    for unusual in (
        b"HANGUP\n",
        b"520-Invalid command syntax.\n",
        b"\n",
        b"200 res",
        b"200 result=0\n200 result=1\n",
    ):
        assert parser.receive_reply(unusual) is None
    assert parser.receive_reply(b"200 result=1 (kk)\n") == parse_reply_line("200 result=1 (kk)")
    parser.receive_data(b"200 resu")  # half a line buffered: the next chunk belongs to it
    assert parser.receive_reply(b"lt=0\n") is None
    parser.receive_data(b"lt=0\n")
    assert parser.next_event() == parse_reply_line("200 result=0")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(ProtocolError):
        parser.receive_reply(b"abc garbage\n")


def test_a_reply_read_before_is_the_same_reply_and_only_where_a_reply_may_come() -> None:
    first, second = AgiParser(), AgiParser()
    for parser in (first, second):
        parser.receive_data(b"agi_network: yes\n\n")
        parser.next_event()
    assert first.receive_reply(b"200 result=1\n") is second.receive_reply(b"200 result=1\n")
    # Inside a 520 usage text the same bytes are usage, not a reply.
    first.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n")
    assert first.next_event() is NEED_DATA
    assert first.receive_reply(b"200 result=1\n") is None
    # A parser with a shorter line limit still refuses a line another parser has read.
    short = AgiParser(max_line=8)
    short.receive_data(b"agi_n: y\n\n")
    short.next_event()
    assert short.receive_reply(b"200 result=1\n") is None
    with pytest.raises(ProtocolError, match="longer than 8"):
        short.receive_data(b"200 result=1\n")
        short.next_event()
    # What a caller typed, or a variable's value with digits in it, is read again every time, never kept.
    for personal in (b"200 result=77012345678\n", b"200 result=1 (77012345678)\n"):
        assert second.receive_reply(personal) is not second.receive_reply(personal)
    # What follows the result (an end position) is each reply's own, read again every time.
    assert second.receive_reply(b"200 result=0 endpos=16000\n").extras == {"endpos": "16000"}
    assert second.receive_reply(b"200 result=0 endpos=16000\n") is not second.receive_reply(
        b"200 result=0 endpos=16000\n"
    )


def test_unusual_environment_lines_read_as_line_by_line() -> None:
    block = (
        "agi_network: yes\nagi_accountcode:\nagi_callerid: 7701\nagi_calleridname: Ерлан: бухгалтерия\n"
        "agi_rdnis: a:b: c\nagi_odd:key: value\n\n"
    )
    env = events_of([block.encode()])[0].env
    assert env.values == {
        "network": "yes",
        "accountcode": "",
        "callerid": "7701",
        "calleridname": "Ерлан: бухгалтерия",
        "rdnis": "a:b: c",
        "odd:key": "value",
    }
    latin = events_of([b"agi_network: yes\nagi_calleridname: Jos\xe9\n\n"])[0].env
    assert latin.calleridname == "José"
    with pytest.raises(ProtocolError):
        events_of([b"agi_network: yes\nnot agi\n\n"])


def test_a_key_with_a_space_in_a_usual_block_is_refused_and_a_repeated_key_keeps_its_last_value() -> None:
    with pytest.raises(ProtocolError, match="not an AGI environment line"):
        events_of([b"agi_network: yes\nagi_caller id: 7701\n\n"])
    env = events_of([b"agi_network: yes\nagi_language: kk\nagi_language: ru\n\n"])[0].env
    assert env.values == {"network": "yes", "language": "ru"}


def test_environment_arguments_are_collected_in_order() -> None:
    events = events_of([b"agi_network: yes\nagi_network_script: 1414\nagi_arg_1: ru\nagi_arg_2: a b\n\n"])
    assert events[0].env.args == ("ru", "a b")


def replies(name: str) -> list[Reply]:
    return [e for e in events_of([load_transcript("agi", name).received]) if isinstance(e, Reply)]


def test_get_data_reply_forms() -> None:
    assert [(r.result, r.timed_out) for r in replies("getdata-dtmf")][1:3] == [("42", False), ("12", False)]
    timeout, partial = replies("getdata-timeout")[1:3]
    assert (timeout.result, timeout.timed_out, timeout.value) == ("", True, None)
    assert (partial.result, partial.timed_out) == ("7", True)


def test_stream_file_endpos_and_interrupt_digit() -> None:
    interrupted, full, missing, offset = replies("stream-interrupt")[1:5]
    assert (interrupted.value, interrupted.endpos) == (ord("3"), 5120)
    assert (full.value, full.endpos) == (0, 16000)
    assert (missing.value, missing.endpos) == (-1, 0)
    assert offset.endpos == 16000


def test_record_file_silence_dtmf_and_timeout_forms() -> None:
    silence, dtmf, timeout = replies("record")[1:4]
    assert (silence.value, silence.data, silence.endpos) == (989, "timeout", 8160)
    assert (dtmf.value, dtmf.data, dtmf.endpos) == (35, "dtmf", 4480)
    assert (timeout.value, timeout.data, timeout.endpos) == (0, "timeout", 24000)


def test_get_variable_value_is_the_parenthesised_text() -> None:
    got = replies("basic")
    assert got[2].data == "kk" and got[3].data == "79001234567"
    assert parse_reply_line("200 result=1 (a (b) c)").data == "a (b) c"


def test_speech_and_provisional_forms() -> None:
    speech = parse_reply_line("200 result=1 (speech) endpos=0 results=1 990 оператор main")
    assert (speech.data, speech.endpos, speech.extras["results"]) == ("speech", 0, "1")
    assert parse_reply_line("100 result=0 Trying...").provisional


def test_unknown_command_and_multiline_usage() -> None:
    unknown, get_data_usage, stream_usage = replies("invalid-command")[:3]
    assert unknown.code == 510
    assert get_data_usage.code == 520
    assert get_data_usage.usage[0].startswith("Stream the given <replaceable>file</replaceable>")
    assert stream_usage.code == 520 and len(stream_usage.usage) == 5
    assert stream_usage.usage[-1] == "    <value>FAILED</value>"


def test_dead_channel_and_unsolicited_hangup() -> None:
    events = events_of([load_transcript("agi", "caller-hangs-up-during-stream").received])
    kinds = [type(e).__name__ for e in events]
    assert kinds[:4] == ["Environment", "Reply", "Reply", "HangupNotice"]
    assert events[2].value == -1 and events[2].endpos == 4160
    dead = [e for e in events if isinstance(e, Reply) and e.code == 511]
    assert len(dead) == 4
    assert sum(isinstance(e, HangupNotice) for e in events) == 2


def test_exit_on_hangup_burst() -> None:
    events = events_of([load_transcript("agi", "basic-exitonhangup").received])
    assert [type(e).__name__ for e in events[-3:]] == ["Reply", "HangupNotice", "HangupNotice"]


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\n", b"agi_network yes\n", b"\x16\x03\x01\x02\x00\x01\x00\n"],
)
def test_garbage_instead_of_an_environment_is_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        events_of([garbage])


def test_an_over_long_line_is_refused_before_it_is_buffered_whole() -> None:
    parser = AgiParser(max_line=1024)
    parser.receive_data(b"agi_network: " + b"x" * 2000)
    with pytest.raises(ProtocolError, match="longer than 1024"):
        parser.next_event()


def test_close_before_the_end_of_the_environment_is_a_protocol_error() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_network: yes\nagi_network_script: 1414\n")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    with pytest.raises(ProtocolError, match="before the end of the AGI environment"):
        parser.next_event()


def test_garbage_reply_line_is_a_protocol_error() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_network: yes\n\nhello there\n")
    assert isinstance(parser.next_event(), Environment)
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_commands_serialise_as_the_recorder_sent_them() -> None:
    assert format_command("STREAM FILE", "beep2s", "") == b'STREAM FILE beep2s ""\n'
    assert format_command("GET DATA", "beep2s", 5000, 2) == b"GET DATA beep2s 5000 2\n"
    assert format_command("SET VARIABLE", "CHANNEL(language)", "kk") == b"SET VARIABLE CHANNEL(language) kk\n"
    # the recorder quoted "#"; Asterisk reads the bare form as the same words
    ours = format_command(
        "RECORD FILE", "/var/spool/asterisk/ivr/rec-test", "wav", "#", 3000, 0, "BEEP", "s=2"
    )
    recorded = 'RECORD FILE /var/spool/asterisk/ivr/rec-test wav "#" 3000 0 BEEP s=2'
    assert parse_command_line(ours.decode()[:-1]) == parse_command_line(recorded)


HOSTILE = [
    'Ivan "Vanya" Petrov',
    "back\\slash\\",
    'trailing quote"',
    "two  spaces and\ttab",
    "",
    "$(rm -rf) ${CALLERID(num)}",
    "Асель Нұрланқызы",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_argument_as_asterisk_parses_it(value: str) -> None:
    line = format_command("SET VARIABLE", "CALLER_NAME", value).decode()
    assert line.count("\n") == 1
    assert parse_command_line(line[:-1]) == ["SET", "VARIABLE", "CALLER_NAME", value]


@pytest.mark.parametrize("value", ["line\nHANGUP", "cr\rlf", "nul\0"])
def test_a_value_with_a_line_break_is_refused(value: str) -> None:
    with pytest.raises(UnsafeValue):
        format_command("SET VARIABLE", "X", value)
    with pytest.raises(UnsafeValue):
        format_app_args([value])


@pytest.mark.parametrize("value", [*HOSTILE, "a,b", "x(y", "[z]", "q|r"])
def test_application_arguments_cannot_split_into_more_arguments(value: str) -> None:
    data = format_app_args(["ru-general", value, "", "10"])
    line = format_command("EXEC", "Queue", data).decode()
    words = parse_command_line(line[:-1])
    assert words[:2] == ["EXEC", "Queue"] and len(words) == 3
    assert split_app_args(words[2]) == ["ru-general", value, "", "10"]


def test_formatted_commands_are_remembered_by_their_text() -> None:
    # 1, 1.0 and True are equal as keys: each must still be written as itself.
    assert format_command("SET VARIABLE", "X", 1) == b"SET VARIABLE X 1\n"
    assert format_command("SET VARIABLE", "X", True) == b"SET VARIABLE X True\n"
    assert format_command("SET VARIABLE", "X", 1.0) == b"SET VARIABLE X 1.0\n"
    assert format_command("STREAM FILE", "ivr/a b", "") is format_command("STREAM FILE", "ivr/a b", "")
    for _ in range(2):  # refused every time, not remembered as if it had been written
        with pytest.raises(UnsafeValue):
            format_command("SET VARIABLE", "X", "1\nHANGUP")


def test_command_words_cannot_come_from_data() -> None:
    with pytest.raises(UnsafeValue):
        format_command("ANSWER\nHANGUP")


def test_command_line_parser_matches_the_recorded_commands() -> None:
    sent = load_transcript("agi", "channel-status").sent.decode().splitlines()
    parsed = [parse_command_line(line) for line in sent]
    assert ["SET", "CALLERID", "John Doe", "<5551234>"] in parsed
    assert any(words[:2] == ["SET", "VARIABLE"] and " " in words[-1] for words in parsed)
