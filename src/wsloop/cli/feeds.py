"""What ``wsloop serve`` serves, by ``--mode``: ``echo``, ``ticker`` (a
feed at a fixed rate) and ``broadcast`` (to the clients of the same path).
The demo serves the ticker too. The ``stdio`` and ``exec`` modes are in
stdio.py and command.py.

With a broker (``--broker``), ``broadcast`` is a feed shared by every
server on that broker: each client subscribes to the channel its URL's path
names (``--channel`` for ``/``), from the position in ``?since=EPOCH:OFFSET``
if given, and gets each message as the broker's JSON envelope; what a
client sends is published to its channel.

Each handler keeps its connections' send buffers bounded, as an application
should (docs/backpressure.md): echo and broadcast stop reading a client whose
buffer is over its ``write_limit``, and the ticker skips ticks for it.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..handler import Handler
from ..loops import Loop
from ..server import broadcast
from ..websocket import WebSocket

__all__ = ["ServeHandler", "channel_of"]


def channel_of(target: str, default: str) -> tuple[str, str | None]:
    """The channel a request target names (its path without the slashes,
    ``default`` for ``/``) and its ``since`` query parameter, if any."""
    parts = urlsplit(target)
    channel = unquote(parts.path).strip("/") or default
    since = parse_qs(parts.query).get("since")
    return channel, since[-1] if since else None


class ServeHandler(Handler):
    def __init__(
        self,
        mode: str,
        rate: float,
        loop: Loop,
        *,
        broker: Any = None,
        channel: str = "feed",
        err: Any = None,
    ) -> None:
        self.mode = mode
        self.interval = 60.0 / rate
        self.loop = loop
        self.server: Any = None
        self.connections: set[WebSocket] = set()  # this handler's: one path's
        self.broker = broker
        self.channel = channel
        self.err = err

    def on_open(self, ws: WebSocket) -> None:
        self.connections.add(ws)
        if self.broker is not None:
            assert ws.request is not None
            channel, since = channel_of(ws.request.target, self.channel)
            try:
                self.broker.subscribe(ws, channel, since)
            except (TypeError, ValueError) as exc:  # a bad channel name or position
                ws.close(1008, str(exc)[:120])
                return
            ws.data["channel"] = channel
        elif self.mode == "ticker":
            ws.data["seq"] = 0
            ws.data["start"] = self.loop.time()
            self.tick(ws)

    def tick(self, ws: WebSocket) -> None:
        if ws.state != "open":
            return
        ws.data["seq"] += 1
        # A client that does not keep up misses ticks (the gap in seq shows
        # it) rather than the server buffering them for it without bound.
        if ws.buffered_amount <= ws.options.write_limit:
            ws.send(json.dumps({"seq": ws.data["seq"], "time": round(time.time(), 6)}))
        # A fixed cadence: each tick is due at start + seq * interval, so
        # the time spent sending does not slow the feed down.
        due = ws.data["start"] + ws.data["seq"] * self.interval
        ws.data["timer"] = self.loop.call_later(max(0.0, due - self.loop.time()), self.tick, ws)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        if self.mode == "echo":
            ws.send(data)
        elif self.mode == "broadcast" and self.broker is not None:
            self._publish(ws, data)
        elif self.mode == "broadcast":
            broadcast(self.connections, data)
        # A client that sends and never reads would otherwise make the server
        # hold everything it echoes: stop reading it while its send buffer is
        # over the limit (TCP then slows it down), and go on in on_writable.
        if ws.buffered_amount > ws.options.write_limit and not ws.data.get("paused"):
            ws.data["paused"] = True
            ws.pause_reading()

    def _publish(self, ws: WebSocket, data: str | bytes) -> None:
        from ..broker import BrokerError

        channel = ws.data.get("channel")
        if channel is None:
            return
        try:
            self.broker.publish(channel, data, self._published)
        except BrokerError as exc:  # Redis down: the client stays connected
            self._published(None, exc)

    def _published(self, position: Any, error: BaseException | None) -> None:
        if error is not None and self.err is not None:
            self.err(f"wsloop: cannot publish a client's message: {error}")

    def on_writable(self, ws: WebSocket) -> None:
        if ws.data.pop("paused", False):
            ws.resume_reading()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.connections.discard(ws)
        timer = ws.data.get("timer")
        if timer is not None:
            timer.cancel()
