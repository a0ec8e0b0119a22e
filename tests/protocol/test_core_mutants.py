"""Tests written to kill the mutants mutmut found surviving in the sans-I/O
core (scripts/mutation core; docs/testing.md). Each says which change it
catches; all go through the core's public API, so they hold whatever the
internals become."""

from __future__ import annotations

import pytest

from wshelpers import feed, frame, open_pair, parse_frames
from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    HandshakeError,
    HandshakeFailed,
    InvalidStateError,
    Message,
    RequestReceived,
    ServerConnection,
    encode_frame,
)


def test_send_binary_takes_bytearray_and_memoryview_and_copies_them() -> None:
    """Refusing bytearray/memoryview, or keeping a reference to the
    caller's buffer instead of copying it, would fail here."""
    client, server = open_pair()
    buf = bytearray(b"abcdef")
    server.send_binary(buf)
    server.send_binary(memoryview(buf)[1:3])
    buf[:] = b"zzzzzz"  # the caller reuses its buffer
    events = feed(client, server.data_to_send())
    assert [e.data for e in events if isinstance(e, Message)] == [b"abcdef", b"bc"]


def test_ping_payload_bounds() -> None:
    """125 bytes is the largest control payload (not 124, not 126)."""
    client, _server = open_pair()
    client.send_ping(b"x" * 125)
    with pytest.raises(ValueError, match="at most 125"):
        client.send_ping(b"x" * 126)
    frames = parse_frames(client.data_to_send())
    assert [(op, payload) for op, _, _, payload in frames] == [(9, b"x" * 125)]


def test_closing_before_the_handshake_is_abnormal_and_closes_the_transport() -> None:
    client = ClientConnection("ws://example.com/", deflate=None)
    client.data_to_send()
    client.close()
    (event,) = list(client.events())
    assert isinstance(event, Closed)
    assert (event.code, event.clean) == (1006, False) and event.reason
    assert client.close_transport is True


def test_a_close_already_sent_is_not_sent_again_when_the_peer_answers() -> None:
    client, server = open_pair()
    server.close(1000, "bye")
    sent = parse_frames(server.data_to_send())
    assert [op for op, *_ in sent] == [8]
    # The client answers the close (masked); the server, which sent its
    # own already, only completes the handshake: no second close frame.
    feed(client, encode_frame(8, sent[0][3]))
    answer = client.data_to_send()
    assert [op for op, *_ in parse_frames(answer)] == [8]
    events = feed(server, answer)
    assert any(isinstance(e, Closed) for e in events)
    assert server.data_to_send() == b""


def test_failing_truncates_a_long_reason_to_fit_at_a_character_boundary() -> None:
    """The reason of a close frame is at most 123 bytes; cut mid-character,
    the partial character is dropped (not an error, not 124 bytes)."""
    _client, server = open_pair()
    server.fail(1011, "\u00e9" * 100)  # 200 bytes of UTF-8
    ((op, _, _, payload),) = parse_frames(server.data_to_send())
    assert op == 8 and payload[:2] == (1011).to_bytes(2, "big")
    assert payload[2:] == ("\u00e9" * 61).encode()  # 122 bytes: 123 would split a character
    (event,) = list(server.events())
    assert isinstance(event, Closed)
    assert event.clean is False and event.reason == "\u00e9" * 100 and event.error is not None
    assert event.error.reason == "\u00e9" * 100  # type: ignore[attr-defined]


def test_failing_during_the_handshake_sends_no_close_frame() -> None:
    client = ClientConnection("ws://example.com/", deflate=None)
    request = client.data_to_send()
    assert request.startswith(b"GET ")
    client.fail(1002, "gave up")
    assert client.data_to_send() == b""  # a close frame is for an open connection
    (event,) = list(client.events())
    assert isinstance(event, Closed) and event.clean is False


def test_eof_without_a_close_frame_says_so() -> None:
    _client, server = open_pair()
    server.receive_eof()
    (event,) = list(server.events())
    assert isinstance(event, Closed)
    assert (event.code, event.clean) == (1006, False)
    assert "close frame" in event.reason


def test_reject_defaults_bounds_and_headers() -> None:
    def requested() -> ServerConnection:
        client = ClientConnection("ws://example.com/", deflate=None)
        server = ServerConnection(deflate=None)
        server.receive_data(client.data_to_send())
        assert isinstance(server.next_event(), RequestReceived)
        return server

    server = requested()
    server.reject()
    assert server.data_to_send().startswith(b"HTTP/1.1 403 ")
    assert any(isinstance(e, HandshakeFailed) for e in server.events())
    closed = server.closed
    assert closed is not None and (closed.code, closed.clean) == (1006, False)
    for status in (300, 599):
        server = requested()
        server.reject(status, "no", [("X-Why", "because")])
        reply = server.data_to_send()
        assert reply.startswith(f"HTTP/1.1 {status} ".encode()) and b"X-Why: because" in reply
    for status in (299, 600):
        with pytest.raises(ValueError, match="300 to 599"):
            requested().reject(status)
    with pytest.raises((ValueError, TypeError)):  # TypeError from the compiled build
        requested().reject("403")  # type: ignore[arg-type]
    server = requested()
    server.accept()
    with pytest.raises(InvalidStateError):
        server.reject()


def test_a_refused_client_keeps_the_response_and_quotes_200_characters_of_its_body() -> None:
    client = ClientConnection("ws://example.com/", deflate=None)
    client.data_to_send()
    body = b"a" * 300
    events = feed(
        client,
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 300\r\n\r\n" + body,
    )
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 403
    message = str(failed[0].error)
    assert message.startswith("HTTP 403: server refused the WebSocket handshake with 403")
    assert "a" * 200 in message and "a" * 201 not in message
    assert client.response is not None and client.response.body == body
    closed = client.closed
    assert closed is not None and (closed.code, closed.clean) == (1006, False)


def test_eof_in_the_handshake_fails_it_with_status_0() -> None:
    server = ServerConnection(deflate=None)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n")
    server.receive_eof()
    events = list(server.events())
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 0
    closed = server.closed
    assert closed is not None and (closed.code, closed.clean) == (1006, False) and closed.reason


@pytest.mark.parametrize(
    ("fin", "rsv1", "first"), [(True, False, 0x82), (False, True, 0x42), (False, False, 0x02)]
)
def test_encode_frame_sets_fin_and_rsv1_exactly(fin: bool, rsv1: bool, first: int) -> None:
    # Binary (2), not text (1): a stray low bit would hide in opcode 1.
    assert encode_frame(2, b"x", fin=fin, rsv1=rsv1)[0] == first


def test_close_codes_must_be_ints_not_bools() -> None:
    client, _ = open_pair()
    with pytest.raises(ValueError, match="cannot be sent"):
        client.close(True)  # type: ignore[arg-type]


def test_pongs_past_the_bound_keep_the_byte_count_exact() -> None:
    """Replacing the last queued pong (past 32) with a longer or shorter
    one keeps bytes_to_send equal to what data_to_send returns."""
    _client, server = open_pair()
    pings = b"".join(frame(9, bytes(i % 100), mask=True) for i in range(1, 60))
    feed(server, pings)
    assert server.bytes_to_send == len(server.data_to_send())
    pings = b"".join(frame(9, bytes(100 - i), mask=True) for i in range(1, 60))
    feed(server, pings)
    size = server.bytes_to_send
    out = server.data_to_send()
    assert size == len(out)
    pongs = parse_frames(out)
    assert len(pongs) == 32 and pongs[-1][3] == bytes(41)  # the latest ping's


def test_a_client_masks_every_frame_with_its_own_4_byte_key() -> None:
    """Over more frames than one pool of random bytes holds, every key is
    4 bytes and every frame unmasks to what was sent."""
    client, server = open_pair()
    for i in range(300):
        client.send_binary(i.to_bytes(2, "big"))
    data = client.data_to_send()
    pos = 0
    for _ in range(300):
        assert data[pos + 1] == 0x80 | 2  # masked, 2 bytes
        pos += 2 + 4 + 2
    assert pos == len(data)
    got = [e.data for e in feed(server, data) if isinstance(e, Message)]
    assert got == [i.to_bytes(2, "big") for i in range(300)]


def test_a_message_of_exactly_min_size_is_compressed() -> None:
    _client, server = open_pair(DeflateOptions(), DeflateOptions())
    server.send_binary(b"a" * 32)
    server.send_binary(b"a" * 31)
    frames = parse_frames(server.data_to_send())
    assert [rsv & 4 for _, _, rsv, _ in frames] == [4, 0]


def test_a_compressed_fragmented_message_over_the_limit_across_fragments_fails() -> None:
    """Each fragment inflates to 60% of the limit: the second passes it."""
    import zlib

    _client, server = open_pair(DeflateOptions(), DeflateOptions(), max_message_size=10_000)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = z.compress(b"a" * 6000) + z.flush(zlib.Z_SYNC_FLUSH)
    second = z.compress(b"b" * 6000) + z.flush(zlib.Z_SYNC_FLUSH)
    events = feed(
        server,
        frame(2, first, fin=False, rsv=4, mask=True) + frame(0, second[:-4], mask=True),
    )
    assert isinstance(events[-1], Closed) and events[-1].code == 1009


@pytest.mark.parametrize("pieces", [2, 7, 64])
def test_a_large_binary_message_fed_in_pieces_is_assembled_exactly(pieces: int) -> None:
    """The in-place assembly of a large message (the rest copied straight
    into it as it arrives): every byte where it belongs, at any cut, and
    the limit exact."""
    import os

    _client, server = open_pair(max_message_size=300_000)
    payload = os.urandom(300_000)
    data = frame(2, payload, mask=True)
    step = len(data) // pieces + 1
    got: list[object] = []
    for i in range(0, len(data), step):
        got += feed(server, data[i : i + step])
    assert [e.data for e in got if isinstance(e, Message)] == [payload]
    # One byte more fails, whatever the cut.
    _client, server = open_pair(max_message_size=300_000)
    over = frame(2, payload[:100_000], fin=False, mask=True) + frame(
        0, payload[:200_001], mask=True
    )
    events: list[object] = []
    for i in range(0, len(over), step):
        events += feed(server, over[i : i + step])
    assert isinstance(events[-1], Closed) and events[-1].code == 1009


@pytest.mark.parametrize(("bits", "honoured"), [(10, True), (9, True), (11, False)])
def test_a_server_must_honour_server_max_window_bits(bits: int, honoured: bool) -> None:
    from wsloop.protocol import accept_key

    client = ClientConnection(
        "ws://example.com/", deflate=DeflateOptions(server_max_window_bits=10)
    )
    client.data_to_send()
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(client.key)}\r\n"
        f"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}\r\n\r\n"
    )
    events = feed(client, response.encode())
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    if honoured:
        assert not failed and client.extensions
    else:
        assert failed and isinstance(failed[0].error, HandshakeError)
        assert failed[0].error.status == 101 and "server_max_window_bits" in str(failed[0].error)


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"server_max_window_bits": 9}, True),
        ({"server_max_window_bits": 15}, True),
        ({"server_max_window_bits": 8}, False),
        ({"server_max_window_bits": 16}, False),
        ({"level": -1}, True),
        ({"level": 9}, True),
        ({"level": -2}, False),
        ({"level": 10}, False),
        ({"mem_level": 1}, True),
        ({"mem_level": 9}, True),
        ({"mem_level": 0}, False),
        ({"mem_level": 10}, False),
    ],
)
def test_deflate_option_bounds_are_exact(kwargs: dict[str, int], ok: bool) -> None:
    if ok:
        DeflateOptions(**kwargs)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError):
            DeflateOptions(**kwargs)  # type: ignore[arg-type]
