"""The writing half's hand-over to the I/O layer: ``data_to_send_chunk``
joins small frames and hands a large frame on its own, never copied into a
join, and the chunks together are exactly what ``data_to_send`` returns."""

from __future__ import annotations

import os

import pytest

from wshelpers import open_pair
from wsloop.protocol.writer import LARGE_FRAME


def chunks_of(conn: object) -> list[bytes]:
    chunks = []
    while chunk := conn.data_to_send_chunk():  # type: ignore[attr-defined]
        chunks.append(chunk)
    return chunks


@pytest.mark.parametrize("as_client", [False, True])
def test_chunks_join_small_frames_and_leave_large_ones_alone(as_client: bool) -> None:
    sizes = [10, 20, LARGE_FRAME, 5, LARGE_FRAME * 3, LARGE_FRAME + 1, 7, 8]
    payloads = [os.urandom(n) for n in sizes]
    client, server = open_pair(max_message_size=None)
    conn = client if as_client else server
    for payload in payloads:
        conn.send_binary(payload)
    frames_ = list(conn._writer._out)
    expected = b"".join(frames_)
    chunks = chunks_of(conn)
    assert b"".join(chunks) == expected
    assert conn.bytes_to_send == 0 and conn.data_to_send() == b""
    if as_client:
        # [10+20], [large], [5], [large], [large], [7+8]: each large frame is
        # the very bytes object the writer built (masked into it).
        assert len(chunks) == 6
        assert chunks[1] is frames_[2] and chunks[3] is frames_[4] and chunks[4] is frames_[5]
    else:
        # A server's large frame is its header, joined to the small frames
        # before it, then the application's payload itself, never copied:
        # [10+20+head], [payload], [5+head], [payload], [head], [payload], [7+8].
        assert len(chunks) == 7
        assert chunks[1] is payloads[2] and chunks[3] is payloads[4] and chunks[5] is payloads[5]
        assert len(chunks[4]) == 10  # a 64-bit length's header, alone


def test_little_queued_is_one_chunk() -> None:
    _, server = open_pair()
    for i in range(50):
        server.send_text(f"message {i}")
    expected_size = server.bytes_to_send
    chunks = chunks_of(server)
    assert len(chunks) == 1 and len(chunks[0]) == expected_size


def test_pongs_stay_bounded_across_chunks() -> None:
    # Taking a chunk counts as taking what it holds: pongs queued after it
    # are bounded afresh, never more than MAX_PONGS at once.
    from wsloop.protocol.writer import MAX_PONGS

    _, server = open_pair(max_message_size=None)
    server.send_binary(os.urandom(LARGE_FRAME))
    server.send_text("x")
    writer = server._writer
    for _ in range(3 * MAX_PONGS):
        writer.answer_ping(b"p")
    assert server.data_to_send_chunk()  # the large frame
    for _ in range(3 * MAX_PONGS):
        writer.answer_ping(b"q")
    assert writer._pongs <= MAX_PONGS
