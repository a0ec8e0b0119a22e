"""Helpers shared by the tests of the sans-I/O core."""

from __future__ import annotations

import os
import struct
import sys
from typing import Any

from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    Event,
    ServerConnection,
    apply_mask,
)


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = False,
    key: bytes | None = None,
    length_bytes: int | None = None,
) -> bytes:
    """Build any frame by hand, including invalid ones."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    if length_bytes == 0:
        head = bytes([b0, mbit | n])
    elif length_bytes == 2:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = key or os.urandom(4)
        return head + key + apply_mask(payload, key)
    return head + payload


def open_pair(
    client_deflate: DeflateOptions | None = None,
    server_deflate: DeflateOptions | None = None,
    max_message_size: int | None = 1 << 20,
    protocol: Any = None,
) -> tuple[ClientConnection, ServerConnection]:
    """A client and a server that completed their handshake in memory
    (made by ``protocol``, a package like ``wsloop.protocol``, if given)."""
    proto = protocol or sys.modules["wsloop.protocol"]
    client = proto.ClientConnection(
        "ws://example.com/", deflate=client_deflate, max_message_size=max_message_size
    )
    server = proto.ServerConnection(deflate=server_deflate, max_message_size=max_message_size)
    server.receive_data(client.data_to_send())
    event = server.next_event()
    assert isinstance(event, proto.RequestReceived)
    server.accept()
    server.next_event()
    client.receive_data(server.data_to_send())
    client.next_event()
    return client, server


def open_server(**kw: object) -> ServerConnection:
    _, server = open_pair(**kw)  # type: ignore[arg-type]
    return server


def open_client(**kw: object) -> ClientConnection:
    client, _ = open_pair(**kw)  # type: ignore[arg-type]
    return client


def feed(conn: ClientConnection | ServerConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return list(conn.events())


def closed(events: list[Event]) -> Closed:
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, Closed), events
    return last


def parse_frames(data: bytes) -> list[tuple[int, bool, int, bytes]]:
    """Decode (opcode, fin, rsv, unmasked payload) of every frame in data."""
    out = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        n = b1 & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack("!H", data[i : i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack("!Q", data[i : i + 8])[0]
            i += 8
        key = None
        if b1 & 0x80:
            key = data[i : i + 4]
            i += 4
        payload = data[i : i + n]
        i += n
        if key:
            payload = apply_mask(payload, key)
        out.append((b0 & 0x0F, bool(b0 & 0x80), (b0 >> 4) & 7, payload))
    return out


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given points (taken modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    last = 0
    for p in [*points, len(data)]:
        pieces.append(data[last:p])
        last = p
    return [p for p in pieces if p]
