"""RFC 6455 section 7: the closing handshake."""

from __future__ import annotations

import pytest

from wshelpers import closed, feed, frame, open_client, open_pair, open_server, parse_frames
from wsloop.protocol import InvalidStateError, Message, State


def test_peer_close_is_echoed_with_its_code() -> None:
    server = open_server()
    event = closed(feed(server, frame(8, (4001).to_bytes(2, "big") + b"bye", mask=True)))
    assert (event.code, event.reason, event.clean) == (4001, "bye", True)
    assert parse_frames(server.data_to_send()) == [(8, True, 0, (4001).to_bytes(2, "big"))]
    # The server closes the TCP connection first.
    assert server.close_transport


def test_empty_close_gets_empty_close_and_1005() -> None:
    client = open_client()
    event = closed(feed(client, frame(8)))
    assert event.code == 1005
    assert parse_frames(client.data_to_send()) == [(8, True, 0, b"")]
    # A client waits for the server to close TCP.
    assert client.state is State.CLOSED and not client.close_transport
    client.receive_eof()
    assert client.close_transport


def test_full_handshake_client_initiated() -> None:
    client, server = open_pair()
    client.close(1000, "done")
    assert client.state is State.CLOSING
    event = closed(feed(server, client.data_to_send()))
    assert (event.code, event.reason, event.clean) == (1000, "done", True)
    event = closed(feed(client, server.data_to_send()))
    assert (event.code, event.clean) == (1000, True)
    assert server.close_transport and not client.close_transport


def test_messages_still_delivered_while_closing() -> None:
    client, server = open_pair()
    server.send_text("in flight")
    client.close()
    events = feed(client, server.data_to_send())
    assert events == [Message("in flight")]


def test_close_twice_is_harmless_and_send_after_close_raises() -> None:
    client = open_client()
    client.close()
    first = client.data_to_send()
    client.close(1001)
    assert client.data_to_send() == b""
    assert len(parse_frames(first)) == 1
    with pytest.raises(InvalidStateError, match="closing"):
        client.send_text("late")
    with pytest.raises(InvalidStateError):
        client.send_ping()


def test_no_pong_after_close_sent() -> None:
    client = open_client()
    client.close()
    client.data_to_send()
    feed(client, frame(9, b"p"))
    assert client.data_to_send() == b""


def test_data_after_close_frame_is_ignored() -> None:
    server = open_server()
    events = feed(
        server, frame(8, (1000).to_bytes(2, "big"), mask=True) + frame(1, b"x", mask=True)
    )
    assert len(events) == 1 and closed(events).code == 1000


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 2000, 5000])
def test_close_with_unsendable_code_is_a_value_error(code: int) -> None:
    client = open_client()
    with pytest.raises(ValueError, match="cannot be sent"):
        client.close(code)


def test_close_reason_limit() -> None:
    client = open_client()
    with pytest.raises(ValueError, match="123"):
        client.close(1000, "é" * 62)
    client.close(1000, "é" * 61 + "a")
