"""The sans-I/O AMI parser and serialiser against every real Asterisk 22 transcript."""

from __future__ import annotations

import pytest

from ivr.ami.protocol import (
    AmiParser,
    AmiProtocolError,
    HeaderInjectionError,
    Message,
    banner_bytes,
    parse_message,
    serialize,
)
from ivr.testing.transcripts import load_transcript, transcript_names

NAMES = transcript_names("ami")


def parse_in_chunks(chunks: list[bytes], **options) -> tuple[AmiParser, list[Message]]:
    parser = AmiParser(**options)
    messages: list[Message] = []
    for chunk in chunks:
        messages += parser.feed(chunk)
    assert parser.buffered == 0, "bytes left over after the last message"
    return parser, messages


def test_every_scenario_is_recorded() -> None:
    assert len(NAMES) == 16


@pytest.mark.parametrize("name", NAMES)
def test_received_bytes_parse_the_same_in_recorded_chunks_and_byte_by_byte(name: str) -> None:
    transcript = load_transcript("ami", name)
    recorded = [c.data for c in transcript.chunks if c.direction == "IN"]
    parser, messages = parse_in_chunks(recorded)
    single = transcript.received
    _, byte_by_byte = parse_in_chunks([single[i : i + 1] for i in range(len(single))])
    assert messages == byte_by_byte
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert parser.version == "11.0.0"
    # Every message Asterisk sent is a Response or an Event, and the frame count matches the bytes.
    assert all(m.is_response or m.is_event for m in messages)
    assert len(messages) == single.count(b"\r\n\r\n")


@pytest.mark.parametrize("name", NAMES)
def test_sent_bytes_parse_as_actions(name: str) -> None:
    transcript = load_transcript("ami", name)
    _, actions = parse_in_chunks(
        [c.data for c in transcript.chunks if c.direction == "OUT"], expect_banner=False
    )
    assert actions and all(a.is_action for a in actions)
    assert actions[0].action in ("Login", "Ping")


@pytest.mark.parametrize("name", NAMES)
def test_serialise_of_parse_gives_back_the_exact_bytes(name: str) -> None:
    transcript = load_transcript("ami", name)
    _, messages = parse_in_chunks([transcript.received])
    assert banner_bytes() + b"".join(m.to_bytes() for m in messages) == transcript.received
    _, actions = parse_in_chunks([transcript.sent], expect_banner=False)
    assert b"".join(serialize(a.headers) for a in actions) == transcript.sent


def test_login_reply_and_the_events_around_it() -> None:
    _, messages = parse_in_chunks([load_transcript("ami", "login-ok").received])
    reply, booted, auth = messages
    assert reply.is_response and reply.response == "Success"
    assert reply.keys() == ("Response", "ActionID", "Message")
    assert reply.action_id == "login-ok-1"
    assert booted.is_event and booted.event == "FullyBooted" and booted["status"] == "Fully Booted"
    assert auth.event == "SuccessfulAuth" and auth.get("localaddress") == "IPV4/TCP/127.0.0.1/5038"


def test_command_output_lines_keep_their_order_and_spacing() -> None:
    _, messages = parse_in_chunks([load_transcript("ami", "command").received])
    queue_show = next(m for m in messages if m.action_id == "command-3")
    assert queue_show.get_all("Output") == [
        "operators-ru has 0 calls (max unlimited) in 'ringall' strategy (0s holdtime, 4s talktime), "
        "W:0, C:4, A:3, SL:100.0%, SL2:57.1% within 0s",
        "   Members: ",
        "      Local/agent1@agents/n (ringinuse enabled) (Not in use) has taken 4 calls "
        "(last was 9 secs ago) (login was 539 secs ago)",
        "   No Callers",
        "",
    ]


def test_values_keep_colons_and_empty_values_stay_empty() -> None:
    _, messages = parse_in_chunks([load_transcript("ami", "bad-action").received])
    bad = next(m for m in messages if m.event == "RequestBadFormat")
    assert bad["RequestType"] == "Action: NoSuchAction"
    _, queue = parse_in_chunks([load_transcript("ami", "queue").received])
    member = next(m for m in queue if m.event == "QueueMember")
    assert member["PausedReason"] == ""
    assert member.keys()[-1] == "ActionID"


def test_dialplan_user_event_keeps_header_case() -> None:
    _, messages = parse_in_chunks([load_transcript("ami", "userevent").received])
    choice = next(m for m in messages if m.get("UserEvent") == "IVRChoice")
    assert ("menu", "main") in choice.headers and ("choice", "2") in choice.headers
    assert choice.get("MENU") == "main"
    assert choice.action_id is None


def test_cyrillic_split_across_chunks_survives() -> None:
    raw = banner_bytes() + serialize([("Event", "QueueCallerJoin"), ("CallerIDName", "Айгүл Сәрсенова")])
    cut = raw.index("ү".encode()) + 1  # inside the two-byte sequence
    _, messages = parse_in_chunks([raw[:cut], raw[cut:]])
    assert messages[0]["CallerIDName"] == "Айгүл Сәрсенова"


def test_a_message_that_never_ends_is_refused() -> None:
    parser = AmiParser(max_message=1000)
    parser.feed(banner_bytes())
    with pytest.raises(AmiProtocolError, match="exceeds 1000 bytes"):
        for _ in range(20):
            parser.feed(b"Output: " + b"x" * 90 + b"\r\n")


def test_a_peer_that_is_not_asterisk_is_refused() -> None:
    with pytest.raises(AmiProtocolError, match="banner"):
        AmiParser().feed(b"SSH-2.0-OpenSSH_9.2\r\n")
    with pytest.raises(AmiProtocolError, match="no AMI banner"):
        AmiParser().feed(b"x" * 2000)
    with pytest.raises(AmiProtocolError, match="Key: value"):
        parse_message(b"Response: Success\r\nno colon here")


def test_stray_blank_lines_between_messages_are_skipped() -> None:
    parser = AmiParser(expect_banner=False)
    messages = parser.feed(b"\r\nAction: Ping\r\n\r\n\r\n\r\nAction: Ping\r\nActionID: 2\r\n\r\n")
    assert [m.action_id for m in messages] == [None, "2"]


@pytest.mark.parametrize(
    "key, value",
    [
        ("Channel", "PJSIP/100\r\nAction: Originate"),
        ("Variable", "X=1\nEvent: Shutdown"),
        ("Data", "a\rb"),
        ("Bad\r\nKey", "v"),
        ("Key: Injected", "v"),
        ("", "v"),
        (" Padded", "v"),
    ],
)
def test_serialise_refuses_anything_that_could_add_a_header(key: str, value: str) -> None:
    with pytest.raises(HeaderInjectionError):
        serialize([("Action", "Originate"), (key, value)])


def test_serialise_repeats_list_values_and_keeps_order() -> None:
    data = serialize({"Action": "Originate", "Variable": ["A=1", "B=2"], "Async": True})
    assert data == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\nAsync: True\r\n\r\n"
    assert Message.of(("Action", "Ping"), ActionID=7).to_bytes() == b"Action: Ping\r\nActionID: 7\r\n\r\n"
