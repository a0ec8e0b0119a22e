"""The blocking front-end, for scripts and threads::

    with wsloop.sync.connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

    def echo(ws):
        for message in ws:
            ws.send(message)

    with wsloop.sync.serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

All connections share one builtin loop in one background thread
(``wsloop-sync-loop``), started with the first connection or server and
stopped after the last closes. Each connection's handler is its
:class:`SyncWebSocket`, which turns the loop's callbacks into calls that
block; every method may be called from any thread. A server runs its
function for each connection in a thread of its own.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._inbox import Inbox
from ._view import ConnectionView, ServerView
from .broker.sync import SyncBroker
from .client import Client
from .errors import ConnectionClosed, ConnectionClosedOK, InvalidStateError
from .loops import Loop, get_loop
from .options import DEFAULT_MAX_QUEUE, ClientOptions, ServerOptions, check_max_queue
from .server import Server
from .websocket import WebSocket

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import ClientOptionArgs, ServerOptionArgs

__all__ = [
    "ConnectionClosed",
    "SyncBroker",
    "SyncServer",
    "SyncWebSocket",
    "connect",
    "open_broker",
    "serve",
]

logger = logging.getLogger("wsloop")


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


class SyncWebSocket(ConnectionView):
    """A blocking connection, made by :func:`connect` or given by
    :func:`serve`. ``ws`` is the :class:`~wsloop.WebSocket` underneath;
    this object is its handler."""

    def __init__(
        self,
        max_queue: int,
        *,
        opened: Callable[[SyncWebSocket], object] | None = None,
        done: Callable[[], object] | None = None,
    ) -> None:
        self.max_queue = max_queue
        self.client: Client | None = None
        self._cond = threading.Condition()
        self._inbox: Inbox | None = None
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._closed = threading.Event()
        self._on_opened = opened  # (loop thread) once open
        self._on_done = done  # (loop thread) once a client is done

    # -- state ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed.is_set()

    # -- operations -------------------------------------------------------------

    def send(
        self, data: str | bytes, *, compress: bool = True, timeout: float | None = None
    ) -> None:
        """Send; blocks while the send buffer is over ``write_limit``."""
        inbox = self._open_inbox()
        if inbox.closed is not None:
            raise inbox.closed
        ws = self.ws
        ws.send(data, compress=compress)
        limit = ws.options.write_limit
        with self._cond:
            ok = self._cond.wait_for(
                lambda: ws.buffered_amount <= limit or inbox.closed is not None, timeout
            )
        if not ok:
            raise TimeoutError(f"send buffer still over {limit} bytes after {timeout}s")

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; ``TimeoutError`` after ``timeout`` seconds,
        :class:`ConnectionClosed` once closed."""
        inbox = self._open_inbox()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                data = inbox.pop()
                if data is not None:
                    return data
                if inbox.closed is not None:
                    raise inbox.closed
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no message within {timeout}s")
                self._cond.wait(left)

    def __iter__(self) -> Iterator[str | bytes]:
        """``for message in ws``: messages until a clean close."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def ping(self, data: bytes | str | None = None, *, timeout: float = 10.0) -> float:
        """Send a ping and return the round-trip time in seconds once its
        pong arrives; ``TimeoutError`` after ``timeout`` seconds."""
        inbox = self._open_inbox()
        if inbox.closed is not None:
            raise inbox.closed
        rtt: list[float] = []

        def pong(t: float) -> None:
            with self._cond:
                rtt.append(t)
                self._cond.notify_all()

        try:
            self.ws.ping(data, pong)
        except InvalidStateError:
            self.wait_closed(self.ws.options.close_timeout + 1)
            if inbox.closed is not None:
                raise inbox.closed from None
            raise
        with self._cond:  # woken by the pong or by the close (on_close)
            self._cond.wait_for(lambda: rtt or inbox.closed is not None, timeout)
        if rtt:
            return rtt[0]
        if inbox.closed is not None:
            raise inbox.closed
        raise TimeoutError(f"no pong within {timeout}s")

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close and wait (up to ``timeout``, default ``close_timeout`` + 1)."""
        if self.ws.state in ("connecting", "open"):
            self.ws.close(code, reason)
        self.wait_closed(self.ws.options.close_timeout + 1 if timeout is None else timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed; False if ``timeout`` passed first."""
        return self._closed.wait(timeout)

    def __enter__(self) -> SyncWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncWebSocket {getattr(self, 'ws', None)!r}>"

    def _open_inbox(self) -> Inbox:
        inbox = self._inbox
        assert inbox is not None, "the connection is not open yet"
        return inbox

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- the connection's handler (loop thread) ---------------------------------

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws
        self._inbox = Inbox(ws, self.max_queue, self._wake, threaded=True)
        self._opened.set()
        if self._on_opened is not None:
            self._on_opened(self)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        assert self._inbox is not None
        self._inbox.push(data)

    def on_ping(self, ws: WebSocket, data: bytes) -> None:
        pass

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        pass

    def on_writable(self, ws: WebSocket) -> None:
        self._wake()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        assert self._inbox is not None
        self._inbox.close(code, reason, clean)  # wakes recv(), send() and ping()
        self._closed.set()

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None:
            self._error = error
            self._opened.set()

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        if state in ("closed", "gave_up"):
            self._closed.set()  # also when it never opened
            if self._on_done is not None:
                self._on_done()


def connect(
    url: str, *, max_queue: int = DEFAULT_MAX_QUEUE, **options: Unpack[ClientOptionArgs]
) -> SyncWebSocket:
    """Connect and block until open (up to ``open_timeout``); raises what
    made the attempt fail. ``max_queue`` messages wait for :meth:`recv
    <SyncWebSocket.recv>` before reading pauses; other options as for
    :func:`wsloop.connect`."""
    check_max_queue(max_queue)
    opts = ClientOptions.build(options)
    if opts.reconnect_policy is not None or opts.before_reconnect is not None:
        raise ValueError(
            "the blocking API does not reconnect by itself (reconnect, before_reconnect); "
            "loop over connect()"
        )
    # The shared loop is released once the client is done, however it ends.
    ws = SyncWebSocket(max_queue, done=_shared.release)
    loop = _shared.acquire()
    try:
        client = ws.client = Client(url, ws, loop, opts).start()
    except BaseException:
        _shared.release()
        raise
    limit = opts.open_timeout
    try:
        opened = ws._opened.wait(None if limit is None else limit + 1)
    except BaseException:  # KeyboardInterrupt: the attempt must not go on
        client.close()
        raise
    if not opened:
        client.close()
        raise TimeoutError(f"connect to {url} timed out")
    if ws._error is not None:
        raise ws._error
    return ws


class SyncServer(ServerView[SyncWebSocket]):
    """A blocking server, made by :func:`serve`."""

    def __init__(self, server: Server, threads: set[threading.Thread]) -> None:
        super().__init__(server)
        # The threads running the connections' function, until each returns.
        self._threads = threads

    def broadcast(self, message: str | bytes) -> int:
        """Send to every open connection (see :func:`wsloop.broadcast`);
        returns how many got it."""
        done = threading.Event()
        count: list[int] = []

        def run() -> None:
            try:
                count.append(self.server.broadcast(message))
            finally:
                done.set()

        self.server.loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise TimeoutError("the loop did not run the broadcast within 10 s")
        if not count:
            raise RuntimeError("broadcast failed; see the log")
        return count[0]

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, close every connection (1001) and wait until done,
        the connections' functions returned included (each is given up to
        ``timeout``, default ``close_timeout``, once its connection closed)."""
        self.server.close(timeout)
        self.wait_closed()
        grace = self.server.options.close_timeout if timeout is None else timeout
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(grace)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until shutdown has finished; False if ``timeout`` passed first."""
        return self.server.wait_closed(timeout)

    def serve_forever(self) -> None:
        """Block until the server is closed (from another thread, or by a
        connection's function)."""
        self.wait_closed()

    def __enter__(self) -> SyncServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncServer {self.server!r}>"


def serve(
    handler: Callable[[SyncWebSocket], object],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    **options: Unpack[ServerOptionArgs],
) -> SyncServer:
    """Listen on ``host``:``port`` and run ``handler(ws)`` for each
    connection in a thread of its own, ``ws`` being a
    :class:`SyncWebSocket`; the connection is closed when it returns
    (with 1011 if it raised). Binds at once; other options are
    :class:`~wsloop.ServerOptions`."""
    if not callable(handler):
        raise TypeError(
            f"handler must be a function taking the connection, not {type(handler).__name__}"
        )
    check_max_queue(max_queue)
    opts = ServerOptions.build(options)

    threads: set[threading.Thread] = set()

    def run(ws: SyncWebSocket) -> None:
        try:
            handler(ws)
        except ConnectionClosed:
            ws.close()
        except Exception:
            logger.exception("exception in connection handler")
            ws.close(1011, "internal error")
        else:
            ws.close()
        finally:
            threads.discard(threading.current_thread())

    def opened(ws: SyncWebSocket) -> None:
        thread = threading.Thread(target=run, args=(ws,), name="wsloop-sync-handler", daemon=True)
        threads.add(thread)
        thread.start()

    def new_handler() -> SyncWebSocket:
        return SyncWebSocket(max_queue, opened=opened)

    loop = _shared.acquire()
    try:
        server = Server(new_handler, loop, opts, host=host, port=port, sock=sock)
    except BaseException:
        _shared.release()
        raise
    server.add_done_callback(_shared.release)
    return SyncServer(server, threads)


def open_broker(url: str | None = None, **options: Any) -> SyncBroker:
    """A broker for :func:`serve`'s connections (on the loop thread they run
    on): ``None`` or ``memory://`` for one process, ``redis://...`` to share
    channels through Redis. Options are :func:`wsloop.broker.open_broker`'s."""
    from .broker import open_broker as open_callback_broker

    if "loop" in options:
        raise TypeError("wsloop.sync.open_broker() runs on the blocking front-end's loop: no loop=")
    loop = _shared.acquire()
    try:
        broker = open_callback_broker(url, loop=loop, **options)
    except BaseException:
        _shared.release()
        raise
    return SyncBroker(broker, _shared.release)
