"""Large binary messages assembled in place as their pieces arrive.

Once an eighth of the last frame of an uncompressed binary message is in,
the connection allocates the whole message once and copies every later
piece straight into it. These tests check that it delivers the same
messages in the same order however the bytes are cut, that it holds a
message once rather than twice while it arrives, and that a peer cannot make
it reserve much more than the peer has sent. (The suite runs compiled with
the C accelerator, where the message is the very bytes object delivered, and
as pure Python, where it is a bytearray copied at the end.)
"""

from __future__ import annotations

import os
import random
import tracemalloc
from typing import Any

import pytest

from wshelpers import chunked, feed, frame, open_client, open_server
from wsloop.protocol import Closed, Message, Ping, frames

BIG = 300_000


def message_frames(payload: bytes, *, masked: bool, fragments: int) -> bytes:
    """``payload`` as one binary message of ``fragments`` frames; the last
    frame holds most of it, as a large send split by a peer would."""
    if fragments == 1:
        return frame(2, payload, mask=masked)
    head = [payload[i * 100 : (i + 1) * 100] for i in range(fragments - 1)]
    rest = payload[100 * (fragments - 1) :]
    out = frame(2, head[0], fin=False, mask=masked)
    for part in head[1:]:
        out += frame(0, part, fin=False, mask=masked)
    return out + frame(0, rest, mask=masked)


@pytest.mark.parametrize("as_client", [True, False])
@pytest.mark.parametrize("fragments", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_any_cut_delivers_the_same_messages_in_order(
    as_client: bool, fragments: int, seed: int
) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(BIG)
    masked = not as_client  # what a peer sends to this end
    data = (
        frame(1, b"before", mask=masked)
        + message_frames(payload, masked=masked, fragments=fragments)
        + frame(9, b"p", mask=masked)
        + frame(2, b"after", mask=masked)
    )
    # Small first pieces (the assembly starts late), then large ones, with
    # cuts inside headers and across the end of the big message.
    cuts = [rng.randrange(len(data)) for _ in range(rng.randrange(1, 12))]
    cuts += list(range(1, 40, rng.randrange(1, 9)))
    conn = open_client(max_message_size=None) if as_client else open_server(max_message_size=None)
    events = []
    for piece in chunked(data, cuts):
        events += feed(conn, piece)
    assert events == [Message("before"), Message(payload), Ping(b"p"), Message(b"after")]
    assert type(events[1].data) is bytes  # type: ignore[attr-defined]


def test_byte_by_byte_then_the_rest_at_once() -> None:
    payload = os.urandom(70_000)
    data = frame(2, payload, mask=True)
    server = open_server()
    got = []
    for i in range(20_000):  # well past an eighth: the rest goes in place
        got += feed(server, data[i : i + 1])
    got += feed(server, data[20_000:] + frame(2, b"next", mask=True))
    assert got == [Message(payload), Message(b"next")]


@pytest.mark.parametrize("fragments", [1, 3])
def test_a_message_is_held_once_while_it_arrives(fragments: int) -> None:
    # With fragments, the first ones are copied into the message once its
    # last frame starts being assembled in place.
    payload = os.urandom(1 << 20)
    data = message_frames(payload, masked=False, fragments=fragments)
    client = open_client(max_message_size=2 << 20)
    events = []
    tracemalloc.start()
    try:
        for i in range(0, len(data), 65536):
            events += feed(client, data[i : i + 65536])
            if i == 0:
                tracemalloc.reset_peak()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [Message(payload)]
    # The message, plus a piece or two in flight; buffering, copying out and
    # joining the pieces peaked near twice the message. (Pure Python
    # assembles in a bytearray and copies it into bytes at the end.)
    held = 1 if frames.SPEEDUPS else 2
    assert peak < held * len(payload) + 4 * 65536, peak


def test_a_bare_header_reserves_nothing() -> None:
    client = open_client(max_message_size=64 << 20)
    head = frame(2, bytes(32 << 20))[:10]
    tracemalloc.start()
    try:
        feed(client, head + bytes(1000))
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 256 * 1024, current


def test_a_connection_failing_mid_message_drops_it() -> None:
    client = open_client()
    payload = os.urandom(BIG)
    data = frame(2, payload)
    assert feed(client, data[: BIG // 2]) == []
    client.receive_eof()
    events = list(client.events())
    assert isinstance(events[-1], Closed) and events[-1].code == 1006
    assert client._assembler.filling is None


BUFFERS = {"python": frames._PayloadBufferPython}
if frames.SPEEDUPS:
    from wsloop import _speedups

    BUFFERS["c"] = _speedups.PayloadBuffer


@pytest.fixture(params=sorted(BUFFERS))
def buffer_type(request: pytest.FixtureRequest) -> Any:
    return BUFFERS[request.param]


def test_a_payload_buffer_copies_and_unmasks_like_apply_mask(buffer_type: Any) -> None:
    src = os.urandom(1000)
    key = os.urandom(4)
    for start, n, key_offset in [(0, 1000, 0), (5, 7, 1), (999, 1, 3)]:
        buffer = buffer_type(n + 3)
        buffer.fill(memoryview(src), start, n, key, key_offset)
        buffer.fill(bytearray(src), 0, 3, None, 0)
        assert buffer.filled == n + 3
        unmasked = frames.apply_mask(src[start : start + n], key, key_offset)
        data = buffer.take()
        assert type(data) is bytes and data == unmasked + src[:3]


@pytest.mark.parametrize(
    "args",
    [
        (b"abc", 0, 3, None, 0),  # more than is left
        (b"abc", 2, 2, None, 0),  # past the end of src
        (b"abc", -1, 1, None, 0),
        (b"abc", 0, 1, b"xy", 0),  # a key is 4 bytes
    ],
)
def test_a_payload_buffer_refuses_what_does_not_fit(
    buffer_type: Any, args: tuple[object, ...]
) -> None:
    buffer = buffer_type(2)
    with pytest.raises(ValueError):
        buffer.fill(*args)
    assert buffer.filled == 0


def test_a_payload_buffer_hands_out_its_bytes_once_and_only_when_full(buffer_type: Any) -> None:
    with pytest.raises(ValueError, match="2 bytes or more"):
        buffer_type(1)
    buffer = buffer_type(4)
    buffer.fill(b"ab", 0, 2, None, 0)
    with pytest.raises(ValueError, match="before every byte"):
        buffer.take()
    buffer.fill(b"cd", 0, 2, None, 0)
    assert buffer.take() == b"abcd"
    with pytest.raises(ValueError, match="twice"):
        buffer.take()
    with pytest.raises(ValueError, match="after take"):
        buffer.fill(b"e", 0, 1, None, 0)


def one_byte_frames(payload: bytes, opcode: int) -> bytes:
    """``payload`` as one message of one-byte frames, masked (a client's)."""
    key = b"\x01\x02\x03\x04"
    out = bytearray()
    for i, byte in enumerate(payload):
        first = (opcode if i == 0 else 0) | (0x80 if i == len(payload) - 1 else 0)
        out += bytes([first, 0x81]) + key + bytes([byte ^ key[0]])
    return bytes(out)


@pytest.mark.parametrize("kind", ["binary", "text"])
def test_a_message_of_one_byte_frames_costs_about_its_size(kind: str) -> None:
    # Issue 17, defect 3: one object per fragment made a 1 MiB message of
    # one-byte frames cost the server over 100 MiB.
    size = 18 * 1024
    # Text of 1-, 2- and 3-byte characters: most frames hold part of one.
    payload = os.urandom(size) if kind == "binary" else ("aé€" * (size // 6)).encode()
    data = one_byte_frames(payload, 2 if kind == "binary" else 1)
    server = open_server(max_message_size=1 << 20)
    events = []
    tracemalloc.start()
    try:
        for i in range(0, len(data), 65536):
            events += feed(server, data[i : i + 65536])
            if i == 0:
                tracemalloc.reset_peak()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = payload if kind == "binary" else payload.decode("utf-8")
    assert events == [Message(expected)]
    # The message (twice at the end: its buffer and the bytes or str made of
    # it) and a read in flight; an object per fragment was ~40x the message.
    assert peak < 3 * len(payload) + 4 * 65536, peak
