"""Servers: listen on any loop, validate handshakes, broadcast, shut down.

The listening socket is bound when :func:`wsloop.serve` is called (so the
port is known and a busy port fails at once); accepting starts when the
loop runs. Each accepted socket becomes a :class:`WebSocket` whose
handshake must finish within ``handshake_timeout``.
"""

from __future__ import annotations

import errno
import inspect
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ._threads import Completion
from .handler import HandlerLike
from .loops import Handle, Loop
from .options import ServerOptions, reuse_port_option
from .protocol import HandshakeError, RequestReceived, ServerConnection, State
from .protocol.handshake import error_response
from .transport import Transport
from .websocket import WebSocket, offer_shared_all

__all__ = ["Server", "broadcast"]

logger = logging.getLogger("wsloop")


def bind_sockets(
    host: str | None,
    port: int,
    *,
    backlog: int = 128,
    reuse_port: bool = False,
    listen: bool = True,
) -> list[socket.socket]:
    """The sockets a server on ``host``:``port`` listens on: one per address
    ``host`` resolves to (one only for an ephemeral port, so that it is the
    same port everywhere).

    ``reuse_port`` sets ``SO_REUSEPORT`` (``SO_REUSEPORT_LB`` on FreeBSD)
    first, so that other processes may bind the same port and the kernel
    spreads connections over the listening ones. ``listen=False`` only
    binds: the port stays reserved (for processes that bind it with
    ``reuse_port`` too) without this socket taking any connection.
    """
    option = reuse_port_option() if reuse_port else None
    if reuse_port and option is None:
        raise ValueError("reuse_port=True needs SO_REUSEPORT, which this platform does not have")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in infos:
            if sockets and port == 0:
                break  # one socket for an ephemeral port
            s = socket.socket(family, type_, proto)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if option is not None:
                s.setsockopt(socket.SOL_SOCKET, option, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
            if listen:
                s.listen(backlog)
    except OSError:
        for s in sockets:
            s.close()
        raise
    return sockets


def broadcast(
    connections: Iterable[WebSocket], message: str | bytes, *, policy: str = "skip"
) -> int:
    """Send ``message`` to every open connection; returns how many got it.

    Never blocks on a slow client: one whose send buffer is already over
    its ``write_limit`` is skipped (``policy="skip"``) or closed with 1008
    (``policy="close"``). Call it on the loop's thread.
    """
    if policy not in ("skip", "close"):
        raise ValueError("policy must be 'skip' or 'close'")
    if not isinstance(message, (str, bytes)):
        raise TypeError(f"broadcast() takes str or bytes, not {type(message).__name__}")
    frames: dict[tuple[object, ...], bytes] = {}  # encoded once per share key
    sent, slow = offer_shared_all(list(connections), message, frames)
    if slow is not None and policy == "close":
        for ws in slow:
            ws.close(1008, "too slow to keep up")
    return sent


class Server:
    """A listening WebSocket server; made by :func:`wsloop.serve`.

    ``handler_factory()`` makes the handler of each connection (for
    :func:`wsloop.serve`, one that returns the same handler every time; the
    asyncio and blocking front-ends make one per connection).
    ``connections`` holds the open connections; ``closed`` is True once
    shutdown has finished.
    """

    def __init__(
        self,
        handler_factory: Callable[[], HandlerLike],
        loop: Loop,
        options: ServerOptions,
        *,
        host: str | None = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(options.process_request) and loop.name not in (
            "asyncio",
            "uvloop",
        ):
            raise TypeError(
                f"an async process_request needs an asyncio or uvloop loop, not {loop.name}; "
                "pass a plain function"
            )
        self.handler_factory = handler_factory
        self.loop = loop
        self.options = options
        self._connections: set[WebSocket] = set()
        self._done = Completion(loop.call_in_loop, "server")
        self._pending: dict[WebSocket, Handle] = {}
        self._shutting_down = False
        self._shutdown_timer: Handle | None = None
        if sock is not None:
            if sock.type != socket.SOCK_STREAM:
                raise ValueError("sock must be a listening SOCK_STREAM socket")
            if options.reuse_port:
                raise ValueError(
                    "reuse_port applies to the socket wsloop binds; with sock=, set "
                    "SO_REUSEPORT on your socket before binding it and pass no reuse_port"
                )
            self.sockets = [sock]
        else:
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
            self.sockets = bind_sockets(
                host, port, backlog=options.backlog, reuse_port=options.reuse_port
            )
        for s in self.sockets:
            s.setblocking(False)
        self.loop.call_in_loop(self._start)

    @property
    def connections(self) -> list[WebSocket]:
        """The open connections (a new list each time)."""
        return list(self._connections)

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://host:port/`` of the first listening socket."""
        host = self.sockets[0].getsockname()[0]
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.options.ssl else "ws"
        return f"{scheme}://{host}:{self.port}/"

    def broadcast(self, message: str | bytes) -> int:
        """Send to every open connection (see :func:`broadcast`)."""
        return broadcast(self._connections, message, policy=self.options.broadcast_policy)

    def close(self, timeout: float | None = None) -> None:
        """Graceful shutdown, safe from any thread: stop accepting, close
        every connection with 1001, abort those still open after
        ``timeout`` (default ``close_timeout``), then release everything.
        ``closed`` is set when done. Closing a closed server does nothing
        (its loop may be closed by then)."""
        if self._done.done:
            return
        self.loop.call_in_loop(
            self._shutdown, self.options.close_timeout if timeout is None else timeout
        )

    @property
    def closed(self) -> bool:
        """True once shutdown has finished."""
        return self._done.done

    def add_done_callback(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` on the loop's thread once shutdown has finished."""
        self._done.add_callback(fn)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until shutdown has finished; False if ``timeout`` passed
        first. Not on the loop's thread."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        return f"<Server {self.url} {len(self._connections)} connections on {self.loop.name}>"

    # -- on the loop ---------------------------------------------------------

    def _start(self) -> None:
        if self._shutting_down:
            return
        for s in self.sockets:
            self.loop.add_reader(s, self._accept, s)

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(64):
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("accept failed, out of resources: %s", exc)
                    return
                if exc.errno == errno.EBADF:
                    return
                logger.debug("accept failed: %s", exc)
                continue
            self._new_connection(sock)

    def _new_connection(self, sock: socket.socket) -> None:
        options = self.options
        limit = options.max_connections
        if limit is not None and len(self._connections) + len(self._pending) >= limit:
            self._refuse_busy(sock)
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        proto = ServerConnection(
            deflate=options.deflate,
            max_message_size=options.max_message_size,
            origins=options.origins,
        )
        ws = WebSocket(self.loop, proto, self.handler_factory(), options, self)
        try:
            transport = Transport(self.loop, sock, ws, high_water=options.write_limit)
        except OSError:
            sock.close()
            return
        ws.transport = transport
        self._pending[ws] = self.loop.call_later(
            options.handshake_timeout, self._handshake_expired, ws
        )
        if options.ssl is not None:
            transport.start_tls(
                options.ssl,
                server_side=True,
                server_hostname=None,
                done=lambda exc: self._tls_done(ws, exc),
            )
        else:
            ws.connection_made(transport)

    def _tls_done(self, ws: WebSocket, exc: BaseException | None) -> None:
        if exc is not None:
            logger.info("TLS handshake with %s failed: %s", ws.remote_address, exc)
        elif ws.transport is not None:
            ws.connection_made(ws.transport)

    def _refuse_busy(self, sock: socket.socket) -> None:
        response = error_response(503, "too many connections, try again later").serialize()
        try:
            sock.setblocking(False)
            sock.send(response)
        except OSError:
            pass
        sock.close()

    def _handshake_expired(self, ws: WebSocket) -> None:
        if self._pending.pop(ws, None) is not None and ws.transport is not None:
            logger.info(
                "dropping %s: no handshake within %.1fs",
                ws.remote_address,
                self.options.handshake_timeout,
            )
            ws.transport.abort(TimeoutError("handshake timeout"))

    # -- WebSocket owner ----------------------------------------------------

    def _ws_request(self, ws: WebSocket, event: RequestReceived) -> None:
        if self._shutting_down:
            ws.reject(503, "server is shutting down")
            return
        subprotocol = next(
            (p for p in self.options.subprotocols if p.lower() in event.subprotocols), None
        )
        hook = self.options.process_request
        if hook is None:
            ws.accept(subprotocol, self.options.header_items)
            return
        try:
            result = hook(ws, event.request)
        except Exception as exc:
            self._hook_failed(ws, exc)
            return
        if inspect.isawaitable(result):
            if self.loop.name not in ("asyncio", "uvloop"):
                # Not caught at serve(): a callable object or a wrapper
                # that returns a coroutine.
                if inspect.iscoroutine(result):
                    result.close()
                self._hook_failed(
                    ws,
                    TypeError(
                        f"process_request returned an awaitable, which needs an asyncio or "
                        f"uvloop loop, not {self.loop.name}"
                    ),
                )
                return
            # The handshake waits for an async hook. (asyncio is imported
            # here: programs on other loops never pay for it.)
            import asyncio

            future = asyncio.ensure_future(result, loop=self.loop.native)
            future.add_done_callback(lambda done: self._hook_done(ws, done, subprotocol))
            return
        self._hook_answered(ws, result, subprotocol)

    def _hook_done(self, ws: WebSocket, done: Any, subprotocol: str | None) -> None:
        if done.cancelled() or ws.state != "connecting":
            return
        exc = done.exception()
        if exc is not None:
            self._hook_failed(ws, exc)
        else:
            self._hook_answered(ws, done.result(), subprotocol)

    def _hook_answered(self, ws: WebSocket, result: Any, subprotocol: str | None) -> None:
        if ws.protocol.state is not State.CONNECTING or ws.protocol.closed is not None:
            return  # the hook answered itself
        if result is None:
            ws.accept(subprotocol, self.options.header_items)
        elif (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], int)
            and not isinstance(result[0], bool)
            and 400 <= result[0] <= 599
            and isinstance(result[1], str)
        ):
            ws.reject(result[0], result[1])
        else:
            logger.error(
                "process_request %r returned %r: return None to accept, or (status, body) "
                "with a 4xx/5xx status and a str body to refuse; answering 500",
                self.options.process_request,
                result,
            )
            ws.reject(500, "internal server error")

    def _hook_failed(self, ws: WebSocket, exc: BaseException) -> None:
        logger.error("exception in process_request", exc_info=exc)
        try:
            ws.handler.on_error(ws, exc)
        except Exception:
            logger.exception("exception in on_error handler")
        if ws.protocol.state is State.CONNECTING and ws.protocol.closed is None:
            ws.reject(500, "internal server error")  # unless the hook answered before it failed

    def _ws_opened(self, ws: WebSocket) -> None:
        timer = self._pending.pop(ws, None)
        if timer is not None:
            timer.cancel()
        self._connections.add(ws)

    def _ws_refused(self, ws: WebSocket, error: HandshakeError) -> None:
        logger.info("refused handshake from %s: %s", ws.remote_address, error)

    def _ws_lost(self, ws: WebSocket) -> None:
        timer = self._pending.pop(ws, None)
        if timer is not None:
            timer.cancel()
        self._connections.discard(ws)
        if self._shutting_down and not self._connections and not self._pending:
            self._finish_shutdown()

    # -- shutdown -------------------------------------------------------------

    def _shutdown(self, timeout: float) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        for s in self.sockets:
            self.loop.remove_reader(s)
            s.close()
        for ws in list(self._pending):
            if ws.transport is not None:
                ws.transport.abort()
        for ws in list(self._connections):
            if ws.state == "open":
                ws.close(1001, "server shutting down")
        if not self._connections and not self._pending:
            self._finish_shutdown()
        else:
            self._shutdown_timer = self.loop.call_later(timeout, self._abort_remaining)

    def _abort_remaining(self) -> None:
        self._shutdown_timer = None
        for ws in list(self._connections) + list(self._pending):
            if ws.transport is not None:
                ws.transport.abort()

    def _finish_shutdown(self) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        self._done.finish()
