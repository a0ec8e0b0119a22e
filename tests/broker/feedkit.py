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

    def __init__(self, url: str, loop: Any, **options: Any) -> None:
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
        self.messages.append(decode_envelope(data))

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
