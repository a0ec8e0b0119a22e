"""RFC 7692: permessage-deflate negotiation and compression."""

from __future__ import annotations

import zlib

import pytest

from wshelpers import closed, feed, frame, open_pair, parse_frames
from wsloop.protocol import (
    ClientConnection,
    DeflateOptions,
    HandshakeFailed,
    Message,
    Opened,
    RequestReceived,
    ServerConnection,
)
from wsloop.protocol.handshake import parse_extensions

D = DeflateOptions()


def negotiate(offer: str, server: DeflateOptions = D) -> str | None:
    result = server.server_negotiate(parse_extensions([offer]))
    return None if result is None else result[0]


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            'permessage-deflate; server_max_window_bits="12"',
            "permessage-deflate; server_max_window_bits=12",
        ),
        ("permessage-deflate; client_max_window_bits=9", "permessage-deflate"),
        # Malformed or unsupported offers are declined, not answered.
        ("permessage-deflate; server_max_window_bits=8", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=010", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; unknown", None),
        ("x-webkit-deflate-frame", None),
        # The first acceptable offer wins.
        (
            "permessage-deflate; foo, permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
        ),
    ],
)
def test_server_negotiation(offer: str, answer: str | None) -> None:
    assert negotiate(offer) == answer


def test_server_config_imposes_parameters() -> None:
    server = DeflateOptions(
        server_no_context_takeover=True, client_max_window_bits=10, server_max_window_bits=11
    )
    assert negotiate("permessage-deflate; client_max_window_bits", server) == (
        "permessage-deflate; server_no_context_takeover; "
        "server_max_window_bits=11; client_max_window_bits=10"
    )
    # A client window limit cannot be imposed on a client that did not offer it.
    assert negotiate("permessage-deflate", server) is None


def test_window_bits_8_is_refused_in_options() -> None:
    with pytest.raises(ValueError, match="9 to 15"):
        DeflateOptions(server_max_window_bits=8)


def test_client_offer_reflects_options() -> None:
    options = DeflateOptions(
        server_no_context_takeover=True, server_max_window_bits=10, client_max_window_bits=12
    )
    assert options.client_offer() == (
        "permessage-deflate; server_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=12"
    )


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; client_max_window_bits=13",  # raised over our 12
        "permessage-deflate; server_max_window_bits=11",  # over the 10 we asked
        "permessage-deflate",  # ignored server_no_context_takeover
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate, permessage-deflate",
    ],
)
def test_client_rejects_bad_answers(answer: str) -> None:
    options = DeflateOptions(
        server_no_context_takeover=True, server_max_window_bits=10, client_max_window_bits=12
    )
    client = ClientConnection("ws://h/", deflate=options)
    from wsloop.protocol import accept_key

    resp = (
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(client.key)}\r\n"
        f"Sec-WebSocket-Extensions: {answer}\r\n\r\n"
    )
    events = feed(client, resp.encode())
    assert isinstance(events[0], HandshakeFailed)


def both() -> tuple[ClientConnection, ServerConnection]:
    return open_pair(client_deflate=DeflateOptions(), server_deflate=DeflateOptions())


def test_compressed_round_trip_both_ways_with_context_takeover() -> None:
    client, server = both()
    assert client.extensions and server.extensions
    text = "the quick brown fox " * 100
    sizes = []
    for _ in range(3):
        client.send_text(text)
        data = client.data_to_send()
        sizes.append(len(data))
        assert parse_frames(data)[0][2] == 4  # RSV1
        assert feed(server, data) == [Message(text)]
        server.send_binary(text.encode())
        assert feed(client, server.data_to_send()) == [Message(text.encode())]
    assert sizes[0] < len(text) // 5
    assert sizes[1] < sizes[0]  # the second message refers back to the first


def test_no_context_takeover_resets_each_message() -> None:
    client, server = open_pair(
        client_deflate=DeflateOptions(
            client_no_context_takeover=True, server_no_context_takeover=True
        ),
        server_deflate=DeflateOptions(),
    )
    text = "abcdefgh" * 100
    lengths = set()
    for _ in range(3):
        client.send_text(text)
        data = client.data_to_send()
        lengths.add(len(data) - 6)
        assert feed(server, data) == [Message(text)]
        server.send_text(text)
        assert feed(client, server.data_to_send()) == [Message(text)]
    assert len(lengths) == 1


def test_per_message_opt_out() -> None:
    client, server = both()
    client.send_text("x" * 100, compress=False)
    data = client.data_to_send()
    assert parse_frames(data)[0][2] == 0
    assert feed(server, data) == [Message("x" * 100)]


def test_small_messages_are_not_compressed() -> None:
    client, _ = both()
    client.send_text("hi")
    data = client.data_to_send()
    assert parse_frames(data)[0][2] == 0


def test_compressed_fragmented_message() -> None:
    _, server = both()
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = (c.compress(b"hello " * 1000) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    third = len(data) // 3
    wire = (
        frame(2, data[:third], fin=False, rsv=4, mask=True)
        + frame(0, data[third : 2 * third], fin=False, mask=True)
        + frame(0, data[2 * third :], mask=True)
    )
    assert feed(server, wire) == [Message(b"hello " * 1000)]


def test_rsv1_on_continuation_fails() -> None:
    _, server = both()
    wire = frame(2, b"x", fin=False, rsv=4, mask=True) + frame(0, b"y", rsv=4, mask=True)
    assert closed(feed(server, wire)).code == 1002


def test_zip_bomb_closes_1009_without_inflating_it() -> None:
    import tracemalloc

    _, server = open_pair(client_deflate=D, server_deflate=D, max_message_size=1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = (c.compress(b"\0" * (200 << 20)) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(bomb) < 300_000
    tracemalloc.start()
    events = feed(server, frame(2, bomb, rsv=4, mask=True))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert closed(events).code == 1009
    assert peak < 8 << 20, f"inflated {peak} bytes"


def test_corrupt_compressed_data_fails() -> None:
    _, server = both()
    assert closed(feed(server, frame(2, b"\xff\xff\xff\xff", rsv=4, mask=True))).code == 1007


def test_server_told_window_8_client_still_works() -> None:
    # A peer that tells us to compress with an 8-bit window: zlib cannot,
    # so we send uncompressed and keep inflating what it sends.
    from wsloop.protocol import accept_key

    client = ClientConnection("ws://h/")
    resp = (
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(client.key)}\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8\r\n\r\n"
    )
    events = feed(client, resp.encode())
    assert isinstance(events[0], Opened)
    client.data_to_send()
    client.send_text("y" * 200)
    assert parse_frames(client.data_to_send())[0][2] == 0
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = (c.compress(b"z" * 300) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert feed(client, frame(2, data, rsv=4)) == [Message(b"z" * 300)]


def test_server_without_deflate_ignores_offer() -> None:
    client = ClientConnection("ws://h/")
    server = ServerConnection(deflate=None)
    server.receive_data(client.data_to_send())
    assert isinstance(server.next_event(), RequestReceived)
    server.accept()
    assert b"Extensions" not in server.data_to_send()
