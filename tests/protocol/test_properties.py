"""Property tests: chunking never changes the events; garbage never escapes."""

from __future__ import annotations

import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wshelpers import chunked, open_pair
from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    Event,
    Message,
    Ping,
    Pong,
    ServerConnection,
)

messages = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=300)),
        st.tuples(st.just("binary"), st.binary(max_size=70_000)),
        st.tuples(st.just("ping"), st.binary(max_size=125)),
        st.tuples(st.just("pong"), st.binary(max_size=125)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.lists(st.integers(min_value=0), max_size=30), st.booleans(), st.booleans())
def test_any_chunking_gives_the_same_events(
    sent: list[tuple[str, object]], cuts: list[int], compress: bool, from_client: bool
) -> None:
    deflate = DeflateOptions() if compress else None
    client, server = open_pair(client_deflate=deflate, server_deflate=deflate)
    sender, receiver = (client, server) if from_client else (server, client)
    expected: list[Event] = []
    for kind, value in sent:
        if kind == "text":
            sender.send_text(value)  # type: ignore[arg-type]
            expected.append(Message(value))  # type: ignore[arg-type]
        elif kind == "binary":
            sender.send_binary(value)  # type: ignore[arg-type]
            expected.append(Message(value))  # type: ignore[arg-type]
        elif kind == "ping":
            sender.send_ping(value)  # type: ignore[arg-type]
            expected.append(Ping(value))  # type: ignore[arg-type]
        else:
            sender.send_pong(value)  # type: ignore[arg-type]
            expected.append(Pong(value))  # type: ignore[arg-type]
    sender.close(1000, "end")
    expected.append(Closed(1000, "end", True))
    got: list[Event] = []
    queued = sender.bytes_to_send
    data = sender.data_to_send()
    assert len(data) == queued and sender.bytes_to_send == 0
    for piece in chunked(data, cuts):
        receiver.receive_data(piece)
        got.extend(receiver.events())
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=2000), st.booleans(), st.booleans(), st.lists(st.integers(0), max_size=10)
)
def test_random_bytes_only_ever_produce_events(
    data: bytes, as_client: bool, handshake: bool, cuts: list[int]
) -> None:
    if handshake:
        conn: ClientConnection | ServerConnection = (
            ClientConnection("ws://h/") if as_client else ServerConnection()
        )
    else:
        client, server = open_pair(client_deflate=DeflateOptions(), server_deflate=DeflateOptions())
        conn = client if as_client else server
    seen_closed = False
    for piece in chunked(data, cuts):
        if conn.closed is not None and seen_closed:
            break
        conn.receive_data(piece)
        for event in conn.events():
            assert not seen_closed, "nothing may follow Closed"
            seen_closed = isinstance(event, Closed)
    conn.receive_eof()
    list(conn.events())
    assert conn.closed is not None


def test_a_flood_of_garbage_is_bounded_in_memory() -> None:
    # A peer announcing a 2**62-byte frame and streaming data must hit the
    # message limit, not make the parser buffer.
    _, server = open_pair(max_message_size=1 << 20)
    tracemalloc.start()
    header = bytes([0x82, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0"
    server.receive_data(header)
    events = list(server.events())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(events[-1], Closed) and events[-1].code == 1009
    assert peak < 1 << 20


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 9000), min_size=1, max_size=140),
    st.lists(st.integers(1, 4000), max_size=60),
)
def test_http_head_limits_do_not_depend_on_chunking(
    line_lengths: list[int], sizes: list[int]
) -> None:
    """The incremental line bookkeeping gives the same verdict (a head, or
    the same refusal) however the bytes are split, byte by byte included."""
    from wsloop.protocol import HandshakeError
    from wsloop.protocol.handshake import HeadParser

    head = b"GET / HTTP/1.1\r\n" + b"".join(
        b"X-%d: " % i + b"a" * n + b"\r\n" for i, n in enumerate(line_lengths)
    )
    head += b"\r\n"

    def verdict(pieces: list[bytes]) -> object:
        parser = HeadParser()
        try:
            for piece in pieces:
                result = parser.feed(piece)
                if result is not None:
                    return (result[0], list(result[1]))
        except HandshakeError as exc:
            return exc.status
        return None

    whole = verdict([head])
    pieces, pos = [], 0
    for size in sizes or [1]:
        pieces.append(head[pos : pos + size])
        pos += size
    pieces.append(head[pos:])
    assert verdict(pieces) == whole
    if len(head) < 20000:
        assert verdict([head[i : i + 1] for i in range(len(head))]) == whole
