"""The blocking front-end, for scripts and threads::

    with wsloop.sync.connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

All connections share one builtin loop in one background thread
(``wsloop-sync-loop``), started with the first connection and stopped after
the last closes. Every method may be called from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from ._inbox import Inbox
from .client import Client
from .errors import ConnectionClosed, ConnectionClosedOK
from .handler import Handler
from .loops import Loop, get_loop
from .options import ClientOptions
from .websocket import WebSocket

__all__ = ["ConnectionClosed", "SyncWebSocket", "connect"]

DEFAULT_MAX_QUEUE = 32


class _LoopThread:
    """The process's one background loop for blocking connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None
        self._users = 0

    def acquire(self) -> Loop:
        with self._lock:
            self._users += 1
            if self._loop is None:
                loop = self._loop = get_loop("builtin")
                self._thread = threading.Thread(
                    target=self._run, args=(loop,), name="wsloop-sync-loop", daemon=True
                )
                self._thread.start()
            return self._loop

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._loop is None:
                return
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    @staticmethod
    def _run(loop: Loop) -> None:
        try:
            loop.run()
        finally:
            loop.close()


_shared = _LoopThread()


class _Bridge(Handler):
    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self.cond = threading.Condition()
        self.ws: WebSocket | None = None
        self.inbox: Inbox | None = None
        self.error: BaseException | None = None
        self.opened = threading.Event()

    def _wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws
        self.inbox = Inbox(ws, self.max_queue, self._wake, threaded=True)
        self.opened.set()

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        assert self.inbox is not None
        self.inbox.push(data)

    def on_writable(self, ws: WebSocket) -> None:
        self._wake()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        assert self.inbox is not None
        self.inbox.close(code, reason, clean)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None:
            self.error = error
            self.opened.set()


class SyncWebSocket:
    """A blocking connection; made by :func:`connect`."""

    def __init__(self, client: Client, bridge: _Bridge) -> None:
        self.client = client
        self._bridge = bridge
        assert bridge.ws is not None and bridge.inbox is not None
        self.ws: WebSocket = bridge.ws
        self._inbox: Inbox = bridge.inbox
        self._released = False

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def latency(self) -> float | None:
        return self.ws.latency

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    def send(
        self, data: str | bytes, *, compress: bool = True, timeout: float | None = None
    ) -> None:
        """Send; blocks while the send buffer is over ``write_limit``."""
        if self._inbox.closed is not None:
            raise self._inbox.closed
        self.ws.send(data, compress=compress)
        limit = self.ws.options.write_limit
        cond = self._bridge.cond
        with cond:
            ok = cond.wait_for(
                lambda: self.ws.buffered_amount <= limit or self._inbox.closed is not None, timeout
            )
        if not ok:
            raise TimeoutError(f"send buffer still over {limit} bytes after {timeout}s")

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; ``TimeoutError`` after ``timeout`` seconds,
        :class:`ConnectionClosed` once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._bridge.cond
        with cond:
            while True:
                data = self._inbox.pop()
                if data is not None:
                    return data
                if self._inbox.closed is not None:
                    raise self._inbox.closed
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no message within {timeout}s")
                cond.wait(left)

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def ping(self, timeout: float = 10.0) -> float:
        """Ping and return the round-trip time in seconds."""
        done = threading.Event()
        rtt: list[float] = []

        def pong(t: float) -> None:
            rtt.append(t)
            done.set()

        self.ws.ping(None, pong)
        if not done.wait(timeout):
            raise TimeoutError(f"no pong within {timeout}s")
        return rtt[0]

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close and wait (up to ``timeout``, default ``close_timeout`` + 1)."""
        if self.ws.state in ("connecting", "open"):
            self.ws.close(code, reason)
        self.client.wait(self.ws.options.close_timeout + 1 if timeout is None else timeout)
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            _shared.release()

    def __enter__(self) -> SyncWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncWebSocket {self.ws!r}>"


def connect(url: str, *, max_queue: int = DEFAULT_MAX_QUEUE, **options: Any) -> SyncWebSocket:
    """Connect and block until open (up to ``open_timeout``); raises what
    made the attempt fail. Options as for :func:`wsloop.connect`."""
    opts = ClientOptions.build(options)
    if opts.reconnect_policy is not None:
        raise ValueError("the blocking API does not reconnect by itself; loop over connect()")
    bridge = _Bridge(max_queue)
    loop = _shared.acquire()
    try:
        client = Client(url, bridge, loop, opts).start()
    except BaseException:
        _shared.release()
        raise
    limit = opts.open_timeout
    if not bridge.opened.wait(None if limit is None else limit + 1):
        client.close()
        _shared.release()
        raise TimeoutError(f"connect to {url} timed out")
    if bridge.error is not None:
        client.wait(5)
        _shared.release()
        raise bridge.error
    return SyncWebSocket(client, bridge)
