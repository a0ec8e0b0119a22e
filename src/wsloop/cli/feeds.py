"""What ``wsloop serve`` serves, by ``--mode``: ``echo``, ``ticker`` (a
feed at a fixed rate) and ``broadcast`` (to the clients of the same path).
The demo serves the ticker too. The ``stdio`` and ``exec`` modes are in
stdio.py and command.py.

Each handler keeps its connections' send buffers bounded, as an application
should (docs/backpressure.md): echo and broadcast stop reading a client whose
buffer is over its ``write_limit``, and the ticker skips ticks for it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..handler import Handler
from ..loops import Loop
from ..server import broadcast
from ..websocket import WebSocket

__all__ = ["ServeHandler"]


class ServeHandler(Handler):
    def __init__(self, mode: str, rate: float, loop: Loop) -> None:
        self.mode = mode
        self.interval = 60.0 / rate
        self.loop = loop
        self.server: Any = None
        self.connections: set[WebSocket] = set()  # this handler's: one path's

    def on_open(self, ws: WebSocket) -> None:
        self.connections.add(ws)
        if self.mode == "ticker":
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
        elif self.mode == "broadcast":
            broadcast(self.connections, data)
        # A client that sends and never reads would otherwise make the server
        # hold everything it echoes: stop reading it while its send buffer is
        # over the limit (TCP then slows it down), and go on in on_writable.
        if ws.buffered_amount > ws.options.write_limit and not ws.data.get("paused"):
            ws.data["paused"] = True
            ws.pause_reading()

    def on_writable(self, ws: WebSocket) -> None:
        if ws.data.pop("paused", False):
            ws.resume_reading()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.connections.discard(ws)
        timer = ws.data.get("timer")
        if timer is not None:
            timer.cancel()
