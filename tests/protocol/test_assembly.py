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
    assert client._fill is None


@pytest.mark.skipif(not frames.SPEEDUPS, reason="the C accelerator is not built")
def test_the_c_filler_copies_and_unmasks_like_apply_mask() -> None:
    src = os.urandom(1000)
    key = os.urandom(4)
    for offset, start, n, key_offset in [(0, 0, 1000, 0), (3, 5, 7, 1), (10, 999, 1, 3)]:
        dest = frames.new_payload(1010)
        frames.fill_payload(dest, offset, memoryview(src), start, n, key, key_offset)
        unmasked = frames.apply_mask(src[start : start + n], key, key_offset)
        assert dest[offset : offset + n] == unmasked
        frames.fill_payload(dest, offset, bytearray(src), start, n, None, 0)
        assert dest[offset : offset + n] == src[start : start + n]


@pytest.mark.skipif(not frames.SPEEDUPS, reason="the C accelerator is not built")
@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((10, b"abc", 0, 3, None, 0), ValueError),  # past the end of dest
        ((0, b"abc", 2, 2, None, 0), ValueError),  # past the end of src
        ((-1, b"abc", 0, 1, None, 0), ValueError),
        ((0, b"abc", 0, 1, b"xy", 0), ValueError),  # a key is 4 bytes
    ],
)
def test_the_c_filler_refuses_what_does_not_fit(args: tuple[object, ...], error: type) -> None:
    with pytest.raises(error):
        frames.fill_payload(frames.new_payload(11), *args)  # type: ignore[arg-type]


@pytest.mark.skipif(not frames.SPEEDUPS, reason="the C accelerator is not built")
def test_the_c_filler_writes_only_into_its_own_room() -> None:
    with pytest.raises(TypeError, match="new_payload"):
        frames.fill_payload(bytearray(10), 0, b"a", 0, 1, None, 0)
    with pytest.raises(ValueError, match="2 bytes or more"):
        frames.new_payload(1)
