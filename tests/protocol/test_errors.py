"""RFC 6455 section 7.4 and 8.1: every protocol error closes with the right code."""

from __future__ import annotations

import pytest

from wshelpers import closed, feed, frame, open_client, open_server, parse_frames
from wsloop.protocol import Closed, InvalidStateError, Message, State


def check_failed(conn, events, code: int) -> None:  # type: ignore[no-untyped-def]
    event = closed(events)
    assert event.code == code and not event.clean and event.error is not None
    assert event.error.code == code
    assert conn.close_transport
    sent = parse_frames(conn.data_to_send())
    assert sent and sent[-1][0] == 8
    assert int.from_bytes(sent[-1][3][:2], "big") == code
    # Nothing more is delivered after a failure.
    conn.receive_data(frame(1, b"after", mask=not conn.is_client))
    assert list(conn.events()) == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(3, b"x", mask=True), 1002),  # reserved data opcode
        (frame(11, b"x", mask=True), 1002),  # reserved control opcode
        (frame(1, b"x", rsv=2, mask=True), 1002),  # RSV2
        (frame(1, b"x", rsv=1, mask=True), 1002),  # RSV1 without extension
        (frame(1, b"x"), 1002),  # client frames must be masked
        (frame(9, b"x", fin=False, mask=True), 1002),  # fragmented control
        (frame(9, b"x" * 126, mask=True), 1002),  # control over 125 bytes
        (frame(2, b"x" * 10, mask=True, length_bytes=2), 1002),  # non-minimal 16-bit
        (frame(2, b"x" * 300, mask=True, length_bytes=8), 1002),  # non-minimal 64-bit
        (frame(0, b"x", mask=True), 1002),  # continuation of nothing
        (frame(1, b"a", fin=False, mask=True) + frame(1, b"b", mask=True), 1002),
        (frame(8, b"\x03", mask=True), 1002),  # 1-byte close payload
        (frame(8, (999).to_bytes(2, "big"), mask=True), 1002),
        (frame(8, (1005).to_bytes(2, "big"), mask=True), 1002),
        (frame(8, (2999).to_bytes(2, "big"), mask=True), 1002),
        (frame(8, (5000).to_bytes(2, "big"), mask=True), 1002),
        (frame(1, b"\xff", mask=True), 1007),
        (frame(1, b"\xed\xa0\x80", mask=True), 1007),  # UTF-16 surrogate
        (frame(8, b"\x03\xe8\xff", mask=True), 1007),  # invalid UTF-8 reason
    ],
)
def test_server_fails_with_code(data: bytes, code: int) -> None:
    server = open_server()
    check_failed(server, feed(server, data), code)


def test_client_rejects_masked_frames() -> None:
    client = open_client()
    check_failed(client, feed(client, frame(1, b"x", mask=True)), 1002)


def test_invalid_utf8_fails_mid_fragment_before_the_message_ends() -> None:
    server = open_server()
    assert feed(server, frame(1, "κόσμε".encode(), fin=False, mask=True)) == []
    # The second fragment is invalid; the message has not finished yet.
    check_failed(
        server, feed(server, frame(0, b"\xce\xba\xe1\x80\x80\xf4\x90", fin=False, mask=True)), 1007
    )


def test_invalid_utf8_fails_mid_frame_as_soon_as_it_arrives() -> None:
    server = open_server()
    data = frame(1, b"valid " * 10 + b"\xf4\x90\x80\x80" + b"more" * 100, mask=True)
    # Feed only up to the invalid bytes: the frame is far from complete.
    cut = 8 + 60 + 2  # 8-byte header (16-bit length, mask), valid text, 2 bad bytes
    events = feed(server, data[:cut])
    check_failed(server, events, 1007)


def test_truncated_utf8_at_message_end_fails() -> None:
    server = open_server()
    check_failed(server, feed(server, frame(1, "é".encode()[:1], mask=True)), 1007)


@pytest.mark.parametrize(
    "fragments",
    [
        [b"ab", "é".encode()[:1]],  # the last fragment ends mid-character
        [b"ab", "€".encode()[:2]],
        ["€".encode()[:1], "€".encode()[1:2]],  # split, and never finished
        [b"a\xf0\x9f", b""],  # an empty last fragment after a truncated one
        [b"ab", b"cd", "😀".encode()[:3]],
    ],
)
def test_truncated_utf8_at_the_end_of_a_fragmented_message_fails(fragments: list[bytes]) -> None:
    server = open_server()
    data = frame(1, fragments[0], fin=False, mask=True)
    for part in fragments[1:-1]:
        data += frame(0, part, fin=False, mask=True)
    assert feed(server, data) == []
    check_failed(server, feed(server, frame(0, fragments[-1], mask=True)), 1007)


def test_utf8_split_across_fragments_is_valid() -> None:
    server = open_server()
    data = "€".encode()
    events = feed(server, frame(1, data[:1], fin=False, mask=True) + frame(0, data[1:], mask=True))
    assert events == [Message("€")]


def test_message_too_big_single_frame_detected_from_header() -> None:
    server = open_server(max_message_size=1000)
    # Only the header has arrived: the payload is never buffered.
    data = frame(2, b"x" * 2000, mask=True)[:14]
    check_failed(server, feed(server, data), 1009)


def test_message_too_big_across_fragments() -> None:
    server = open_server(max_message_size=1000)
    events = feed(server, frame(2, b"x" * 600, fin=False, mask=True))
    assert events == []
    check_failed(server, feed(server, frame(0, b"x" * 600, mask=True)), 1009)


def test_max_message_size_none_means_no_limit() -> None:
    server = open_server(max_message_size=None)
    assert feed(server, frame(2, b"x" * (3 << 20), mask=True)) == [Message(b"x" * (3 << 20))]


def test_valid_message_is_delivered_before_a_later_bad_frame() -> None:
    server = open_server()
    server.receive_data(frame(1, b"first", mask=True) + frame(1, b"x", rsv=2, mask=True))
    assert server.next_event() == Message("first")
    # The application can still answer the first message...
    server.send_text("echo")
    event = server.next_event()
    assert isinstance(event, Closed) and event.code == 1002
    frames = parse_frames(server.data_to_send())
    assert [f[0] for f in frames] == [1, 8]


def test_eof_without_close_is_abnormal() -> None:
    server = open_server()
    server.receive_eof()
    event = closed(list(server.events()))
    assert (event.code, event.clean) == (1006, False)
    assert server.close_transport


def test_eof_after_buffered_message_delivers_message_first() -> None:
    client = open_client()
    client.receive_data(frame(1, b"last words"))
    client.receive_eof()
    events = list(client.events())
    assert events[0] == Message("last words")
    assert closed(events).code == 1006


def test_fail_api_sends_code_once() -> None:
    client = open_client()
    client.fail(1011, "keepalive ping timeout")
    event = closed(list(client.events()))
    assert event.code == 1011
    assert parse_frames(client.data_to_send())[0][3][:2] == (1011).to_bytes(2, "big")
    client.fail(1002, "again")
    assert client.data_to_send() == b""


def test_receive_after_eof_is_an_error() -> None:
    server = open_server()
    server.receive_eof()
    with pytest.raises(InvalidStateError):
        server.receive_data(b"x")
    assert server.state is State.OPEN  # until the events are read
