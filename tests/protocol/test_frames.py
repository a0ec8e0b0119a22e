"""RFC 6455 section 5: framing, with the RFC's own examples (5.7)."""

from __future__ import annotations

import os
import random

import pytest

from wshelpers import feed, frame, open_client, open_server, parse_frames
from wsloop.protocol import Event, Message, Ping, Pong, apply_mask, encode_frame, frames
from wsloop.protocol.frames import is_valid_close_code

HELLO_MASKED = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58".replace(" ", ""))


def naive_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


IMPLEMENTATIONS = {"python": frames._apply_mask_python, "active": apply_mask}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "size", [0, 1, 3, 4, 5, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 161, 1000, 65537]
)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 7])
def test_apply_mask_matches_definition(impl: str, size: int, offset: int) -> None:
    data = os.urandom(size)
    key = os.urandom(4)
    assert IMPLEMENTATIONS[impl](data, key, offset) == naive_mask(data, key, offset)
    assert IMPLEMENTATIONS[impl](bytearray(data), key, offset) == naive_mask(data, key, offset)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_apply_mask_in_pieces_of_odd_sizes_with_a_running_offset(impl: str) -> None:
    """How a payload split across reads is unmasked: each piece from where
    the last one left off in the key stream."""
    data = os.urandom(5000)
    key = os.urandom(4)
    out = b""
    sizes = [1, 3, 5, 7, 2, 66, 129, 9, 65, 1001]
    i = 0
    while len(out) < len(data):
        piece = data[len(out) : len(out) + sizes[i % len(sizes)]]
        out += IMPLEMENTATIONS[impl](piece, key, len(out))
        i += 1
    assert out == naive_mask(data, key)


# Cut points cycling through odd sizes, small (the int path of the pure-Python
# mask) and large (its translate path), so that pieces start at every offset
# into the masking key; the largest starts the in-place assembly of a big message.
ODD_SIZES = [1, 3, 5, 7, 66, 9, 129, 11, 1001, 13, 30001]


@pytest.mark.parametrize("start", range(len(ODD_SIZES)))
def test_masked_frames_fed_in_pieces_of_odd_sizes_unmask_correctly(start: int) -> None:
    rng = random.Random(start)
    text = "".join(rng.choice("abcdé€😀") for _ in range(3000))
    small = rng.randbytes(300)
    big = rng.randbytes(200_000)  # the last frame of a large binary message: assembled in place
    data = (
        frame(1, text.encode(), mask=True)
        + frame(2, small, fin=False, mask=True)
        + frame(0, small[::-1], mask=True)
        + frame(2, big[:1000], fin=False, mask=True)
        + frame(0, big[1000:], mask=True)
    )
    server = open_server(max_message_size=None)
    events: list[Event] = []
    pos = 0
    i = start
    while pos < len(data):
        size = ODD_SIZES[i % len(ODD_SIZES)]
        events += feed(server, data[pos : pos + size])
        pos += size
        i += 1
    assert events == [Message(text), Message(small + small[::-1]), Message(big)]


def test_rfc_5_7_single_frame_unmasked_text() -> None:
    client = open_client()
    assert feed(client, bytes.fromhex("810548656c6c6f")) == [Message("Hello")]


def test_rfc_5_7_single_frame_masked_text() -> None:
    server = open_server()
    assert feed(server, HELLO_MASKED) == [Message("Hello")]


def test_rfc_5_7_fragmented_unmasked_text() -> None:
    client = open_client()
    assert feed(client, bytes.fromhex("010348656c")) == []
    assert feed(client, bytes.fromhex("80026c6f")) == [Message("Hello")]


def test_rfc_5_7_ping_and_masked_pong() -> None:
    client = open_client()
    assert feed(client, bytes.fromhex("890548656c6c6f")) == [Ping(b"Hello")]
    # The client answered with a masked pong holding the same payload.
    assert parse_frames(client.data_to_send()) == [(0xA, True, 0, b"Hello")]
    server = open_server()
    assert feed(server, bytes.fromhex("8a8537fa213d7f9f4d5158")) == [Pong(b"Hello")]


def test_a_ping_flood_is_answered_by_a_bounded_number_of_pongs() -> None:
    # RFC 6455 5.5.3: past MAX_PONGS pongs not yet taken, only the latest
    # ping is answered, so a ping flood from a peer that reads nothing
    # queues a few pongs, not one per ping (issue 17, defect 4); a burst
    # of a few pings (Autobahn 2.10) still gets every pong.
    from wsloop.protocol.writer import MAX_PONGS

    server = open_server()
    assert feed(server, b"".join(frame(9, b"%d" % i, mask=True) for i in range(10)))
    assert [p for _, _, _, p in parse_frames(server.data_to_send())] == [
        b"%d" % i for i in range(10)
    ]
    pings = b"".join(frame(9, b"%d" % i, mask=True) for i in range(1000))
    events = feed(server, pings + frame(2, b"data", mask=True) + frame(9, b"last", mask=True))
    assert [type(e) for e in events].count(Ping) == 1001
    pongs = [p for op, _, _, p in parse_frames(server.data_to_send()) if op == 0xA]
    assert pongs == [b"%d" % i for i in range(MAX_PONGS - 1)] + [b"last"]
    # Once taken, the next ping gets its own pong again.
    assert feed(server, frame(9, b"again", mask=True)) == [Ping(b"again")]
    server.send_text("after")
    assert parse_frames(server.data_to_send()) == [
        (0xA, True, 0, b"again"),
        (0x1, True, 0, b"after"),
    ]


def test_rfc_5_7_length_encodings() -> None:
    assert encode_frame(2, b"\0" * 256)[:4] == bytes.fromhex("827e0100")
    assert encode_frame(2, b"\0" * 65536)[:10] == bytes.fromhex("827f0000000000010000")
    client = open_client()
    assert feed(client, bytes.fromhex("827e0100") + b"\1" * 256) == [Message(b"\1" * 256)]
    assert feed(client, bytes.fromhex("827f0000000000010000") + b"\2" * 65536) == [
        Message(b"\2" * 65536)
    ]


def test_encode_masked_frame_round_trips() -> None:
    key = bytes.fromhex("37fa213d")
    assert encode_frame(1, b"Hello", mask_key=key) == HELLO_MASKED


def test_client_masks_every_frame_with_fresh_keys() -> None:
    client = open_client()
    keys = set()
    for _ in range(20):
        client.send_text("x")
        data = client.data_to_send()
        assert data[1] & 0x80
        keys.add(data[2:6])
    assert len(keys) > 15


def test_server_never_masks() -> None:
    server = open_server()
    server.send_binary(b"abc")
    assert server.data_to_send() == bytes.fromhex("8203") + b"abc"


def test_control_frames_interleaved_in_fragmented_message() -> None:
    server = open_server()
    data = (
        frame(1, b"Hel", fin=False, mask=True)
        + frame(9, b"p1", mask=True)
        + frame(0, b"l", fin=False, mask=True)
        + frame(10, b"p2", mask=True)
        + frame(0, b"o", mask=True)
    )
    assert feed(server, data) == [Ping(b"p1"), Pong(b"p2"), Message("Hello")]


def test_empty_messages() -> None:
    client = open_client()
    assert feed(client, frame(1) + frame(2)) == [Message(""), Message(b"")]
    assert feed(client, frame(1, fin=False) + frame(0, fin=False) + frame(0)) == [Message("")]


def test_frames_split_byte_by_byte() -> None:
    server = open_server()
    data = frame(1, "héllo".encode() * 50, mask=True) + frame(2, b"z" * 70000, mask=True)
    events = []
    for i in range(len(data)):
        events += feed(server, data[i : i + 1])
    assert events == [Message("héllo" * 50), Message(b"z" * 70000)]


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (0, False),
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
        (65535, False),
    ],
)
def test_close_code_validity(code: int, valid: bool) -> None:
    assert is_valid_close_code(code) is valid


def test_back_to_back_large_frames_across_buffer_compaction() -> None:
    # Regression: compacting the input buffer mid-parse lost track of the
    # position, swallowing the message that followed a 64 KiB one.
    client = open_client(max_message_size=None)
    data = b"".join(frame(2, bytes([i]) * (65536 + i)) for i in range(4)) + frame(1, b"end")
    assert feed(client, data) == [Message(bytes([i]) * (65536 + i)) for i in range(4)] + [
        Message("end")
    ]


def test_prepared_frames_for_broadcast() -> None:
    from wshelpers import open_pair
    from wsloop.protocol import DeflateOptions, ServerConnection

    frame = ServerConnection.prepare_message("tick")
    client, server = open_pair()
    assert server.send_prepared(frame)
    assert feed(client, server.data_to_send()) == [Message("tick")]
    assert not client.send_prepared(frame), "clients must mask"
    _, compressing = open_pair(client_deflate=DeflateOptions(), server_deflate=DeflateOptions())
    assert not compressing.send_prepared(frame), "compressing connections encode their own"
    assert ServerConnection.prepare_message(b"\x00") == bytes.fromhex("820100")


def test_only_size_bytes_of_a_reused_buffer_count() -> None:
    # What a transport passes: its read buffer, and how much of it is fresh.
    # The stale bytes after that must never be parsed, on any path: whole
    # frames (the C fast path), a frame cut short (buffered), the rest of a
    # large message (assembled in place), the opening handshake.
    from wshelpers import open_pair
    from wsloop.protocol import ClientConnection, RequestReceived, ServerConnection

    stale = frame(1, b"STALE") * 4
    buffer = bytearray(200_000)

    def fill(data: bytes) -> int:
        buffer[: len(data)] = data
        buffer[len(data) : len(data) + len(stale)] = stale
        return len(data)

    client, _ = open_pair(max_message_size=None)
    events = []
    big = os.urandom(150_000)
    for data in (frame(1, b"one") + frame(2, b"tw"), frame(2, b"o!")[:1], frame(2, b"o!")[1:]):
        client.receive_data(memoryview(buffer), fill(data))
        events += client.events()
    whole = frame(2, big)
    for i in range(0, len(whole), 40_000):
        client.receive_data(memoryview(buffer), fill(whole[i : i + 40_000]))
        events += client.events()
    assert events == [Message("one"), Message(b"tw"), Message(b"o!"), Message(big)]

    server = ServerConnection()
    hello = ClientConnection("ws://example.com/").data_to_send()
    server.receive_data(memoryview(buffer), fill(hello))
    assert isinstance(server.next_event(), RequestReceived)

    for size in (4, -2):
        with pytest.raises(ValueError, match=r"-1 \(all of data\) or 0 to 3"):
            server.receive_data(b"abc", size)
