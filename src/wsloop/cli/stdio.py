"""``wsloop serve --mode stdio``: each line of standard input goes to every
connected client, and each message a client sends is printed on standard
output (websocat's ``-s``, wscat's ``--listen``). A line that is not UTF-8
goes as a binary message.

Standard input is read only while a client is connected, so ``cat file |
wsloop serve --mode stdio`` gives the whole file to the first client, and
only as fast as the slowest client reads: a client over its send buffer's
limit pauses standard input, none misses a line. At the end of standard
input the server shuts down (clients get 1001 after the last line).
"""

from __future__ import annotations

import threading
from typing import Any

from ..handler import Handler
from ..loops import Loop
from ..websocket import WebSocket
from .console import err, print_message, stdin_lines

__all__ = ["StdioHandler"]


def _message(line: bytes) -> str | bytes:
    """A line as text, or as binary if it is not UTF-8 (as the exec mode
    sends its command's output): never altered."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line


class StdioHandler(Handler):
    def __init__(self, loop: Loop, binary_format: str) -> None:
        self.loop = loop
        self.binary_format = binary_format
        self.server: Any = None
        self.connections: set[WebSocket] = set()
        # Set on the loop's thread, waited on by the reader thread: a
        # client is there, and every client's buffer is under its limit.
        self.ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, server: Any) -> None:
        """Called once the server listens: start reading standard input."""
        self.server = server
        self._reader = threading.Thread(target=self._read, name="wsloop-serve-stdin", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in stdin_lines():
                # One line in flight at a time: the loop sets ready again
                # once it has sent it and every client can take more.
                self.ready.wait()
                self.ready.clear()
                self.loop.call_soon_threadsafe(self._send, _message(line))
            self.loop.call_soon_threadsafe(self._ended)
        except RuntimeError:
            pass  # the loop is closed: the server stopped first

    def _send(self, message: str | bytes) -> None:
        for ws in self.connections:
            if ws.state == "open":
                ws.send(message)
        self._update()

    def _ended(self) -> None:
        err("end of standard input: shutting down")
        if self.server is not None:
            self.server.close()

    def _update(self) -> None:
        """Let the reader go on only with a client, none of them full."""
        if self.connections and all(
            ws.buffered_amount <= ws.options.write_limit for ws in self.connections
        ):
            self.ready.set()
        else:
            self.ready.clear()

    def on_open(self, ws: WebSocket) -> None:
        self.connections.add(ws)
        err(f"client connected: {ws.remote_address}")
        self._update()

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        print_message(data, self.binary_format)

    def on_writable(self, ws: WebSocket) -> None:
        self._update()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.connections.discard(ws)
        self._update()
