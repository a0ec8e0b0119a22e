"""Inputs the fuzzing suite (tests/fuzz) found that broke the core's
contract, each kept as a regression test (and in the fuzz corpus)."""

from __future__ import annotations

import pytest

from wshelpers import feed
from wsloop.protocol import (
    ClientConnection,
    DeflateOptions,
    HandshakeFailed,
    ServerConnection,
)


@pytest.mark.parametrize("status", [b"40\xb3", b"\xb2\xb2\xb2", b"1\xb901"])
def test_a_status_code_of_non_ascii_digits_fails_the_handshake(status: bytes) -> None:
    """Found by the compiled fuzzing pass: 0xB3 read as Latin-1 is a
    superscript 3, which str.isdigit() accepts and int() refuses, so a
    hostile server's status line raised ValueError out of receive_data."""
    client = ClientConnection("ws://example.com/", deflate=None)
    client.data_to_send()
    events = feed(client, b"HTTP/1.1 " + status + b" X\r\n\r\n")
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 0 and "status line" in str(failed[0].error)


def test_a_content_length_of_non_ascii_digits_reads_no_body() -> None:
    client = ClientConnection("ws://example.com/", deflate=None)
    client.data_to_send()
    events = feed(client, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 1\xb2\r\n\r\n")
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 403


def test_window_bits_of_non_ascii_digits_are_refused_not_raised() -> None:
    client = ClientConnection("ws://example.com/", deflate=None)
    request = client.data_to_send().replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=1\xb2\r\n\r\n",
    )
    server = ServerConnection(deflate=DeflateOptions())
    events = feed(server, request)  # a 400, not a ValueError
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 400
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")


def test_a_server_answering_window_bits_of_non_ascii_digits_fails_the_handshake() -> None:
    from wsloop.protocol import accept_key

    client = ClientConnection("ws://example.com/", deflate=DeflateOptions())
    client.data_to_send()
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(client.key).encode() + b"\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=1\xb2\r\n\r\n"
    )
    events = feed(client, response)
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed and failed[0].error.status == 101
