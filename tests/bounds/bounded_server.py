"""The server the resource-bounds suite attacks, in its own process so that
its memory is measured alone (its RSS, from /proc):

    python bounded_server.py LOOP

Serves wsloop.cli's echo handler (which pauses reading a client whose send
buffer is over its limit) on every path but ``/feed``, where connections
receive a broadcast of 16 KiB every 5 ms (``broadcast_policy="skip"``).
Limits are the defaults but the timeouts, shortened so that the suite
runs quickly. Prints ``port N`` once listening, and stops when its stdin
closes.
"""

from __future__ import annotations

import os
import sys
import threading

import wsloop
from wsloop.cli.feeds import ServeHandler

FEED = os.urandom(16 * 1024)
FEED_INTERVAL = 0.005


class Handler(ServeHandler):
    def __init__(self, loop: wsloop.Loop) -> None:
        super().__init__("echo", 60.0, loop)
        self.feeds: list[wsloop.WebSocket] = []

    def on_open(self, ws: wsloop.WebSocket) -> None:
        if ws.request is not None and ws.request.path == "/feed":
            self.feeds.append(ws)

    def on_close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        if ws in self.feeds:
            self.feeds.remove(ws)

    def feed(self) -> None:
        if self.feeds:
            wsloop.broadcast(self.feeds, FEED, policy="skip")
        self.loop.call_later(FEED_INTERVAL, self.feed)


def main() -> None:
    loop = wsloop.get_loop(sys.argv[1])
    handler = Handler(loop)
    server = wsloop.serve(
        handler,
        loop=loop,
        handshake_timeout=1.0,
        ping_interval=2.0,
        ping_timeout=2.0,
        close_timeout=1.0,
    )
    loop.call_soon(handler.feed)

    def wait_for_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print(f"port {server.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
