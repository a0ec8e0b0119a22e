"""A feed server on a broker, and clients that record what they receive."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import wsloop
from wsloop.broker import Broker, FeedMessage, decode_envelope


def channel_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def feed_server(broker: Broker, loop: Any, **options: Any) -> wsloop.Server:
    """A server that subscribes each connection to the channel its path
    names, from ``?since=EPOCH:OFFSET`` if given."""

    def on_open(ws: wsloop.WebSocket) -> None:
        assert ws.request is not None
        target = urlsplit(ws.request.path)
        since = parse_qs(target.query).get("since", [None])[0]
        broker.subscribe(ws, target.path.strip("/"), since=since)

    return wsloop.serve(on_open=on_open, loop=loop, **options)


class Reader:
    """A client that keeps every envelope it receives."""

    def __init__(self, url: str, loop: Any, envelope: bool = True, **options: Any) -> None:
        self.envelope = envelope
        self.messages: list[FeedMessage] = []
        self.opened = False
        self.closed_code: int | None = None
        self.client = wsloop.connect(
            url,
            on_open=self._open,
            on_message=self._message,
            on_close=self._close,
            loop=loop,
            **options,
        )

    def _open(self, ws: wsloop.WebSocket) -> None:
        self.opened = True

    def _message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.messages.append(
            decode_envelope(data) if self.envelope else FeedMessage("", "", 0, data)
        )

    def _close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        self.closed_code = code

    @property
    def data(self) -> list[Any]:
        return [m.data for m in self.messages if m.gap is None]

    @property
    def gaps(self) -> list[FeedMessage]:
        return [m for m in self.messages if m.gap is not None]

    def close(self) -> None:
        self.client.close()


def settled(broker: Broker, server: wsloop.Server, count: int) -> bool:
    """True once ``count`` connections each have a subscription that is live
    (its replay, or for Redis its subscription's confirmation, is done)."""
    live = 0
    for ws in server.connections:
        subs = broker.subscriptions(ws)
        if subs and all(not s.syncing and s.position is not None for s in subs):
            live += 1
    return live >= count


def stalled_client(port: int, path: str) -> Any:
    """A WebSocket client that opens and then never reads, with a small
    receive buffer so the server's writes back up soon (a plain blocking
    socket: wsloop's client cannot be told not to read)."""
    import base64
    import os
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # one byte at a time: not a byte of a frame taken
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock
