"""The asyncio front-end (asyncio and uvloop)::

    async with wsloop.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            print(message)

It is a thin layer over the callback API: the same :class:`~wsloop.Client`
and :class:`~wsloop.WebSocket` run on the running asyncio loop (through its
adapter), and this module turns their callbacks into awaitables. Received
messages wait in a bounded queue; when it is full reading pauses. ``send``
waits while the send buffer is over ``write_limit``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from ._inbox import Inbox
from .client import Client
from .errors import ConnectionClosed, ConnectionClosedOK, InvalidStateError
from .handler import Handler
from .loops import get_loop
from .options import ClientOptions, Reconnect, ServerOptions
from .server import Server
from .websocket import WebSocket

__all__ = ["AioServer", "AioWebSocket", "Connect", "Serve", "connect", "serve"]

logger = logging.getLogger("wsloop")

DEFAULT_MAX_QUEUE = 32


def _set(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class AioWebSocket:
    """A connection seen from asyncio. Use it from the loop it runs on."""

    def __init__(self, ws: WebSocket, max_queue: int) -> None:
        self.ws = ws
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[str | bytes | None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self.inbox = Inbox(ws, max_queue, self._wake, threaded=False)

    # -- state ----------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def extensions(self) -> list[str]:
        return self.ws.extensions

    @property
    def remote_address(self) -> Any:
        return self.ws.remote_address

    @property
    def latency(self) -> float | None:
        return self.ws.latency

    @property
    def buffered_amount(self) -> int:
        return self.ws.buffered_amount

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    @property
    def request(self) -> Any:
        return self.ws.request

    @property
    def state(self) -> str:
        return self.ws.state

    # -- operations -------------------------------------------------------

    async def recv(self) -> str | bytes:
        """The next message; raises :class:`ConnectionClosed` once closed."""
        while True:
            data = self.inbox.pop()
            if data is not None:
                return data
            if self.inbox.closed is not None:
                raise self.inbox.closed
            # The waiter's result is the message itself when one arrives
            # while this waits (handed over without the queue), or None for
            # "look again" (queued messages, close).
            waiter: asyncio.Future[str | bytes | None] = self._loop.create_future()
            self._waiter = waiter
            try:
                data = await waiter
            except asyncio.CancelledError:
                if not waiter.cancelled() and waiter.done():
                    handed = waiter.result()
                    if handed is not None:  # cancelled after the hand-over: keep it
                        self.inbox.messages.appendleft(handed)
                raise
            finally:
                self._waiter = None
            if data is not None:
                return data

    async def send(self, data: str | bytes, *, compress: bool = True) -> None:
        """Send a message; waits while the send buffer is over its limit."""
        if self.inbox.closed is not None:
            raise self.inbox.closed
        try:
            self.ws.send(data, compress=compress)
        except InvalidStateError:
            await self._raise_closed()
        limit = self.ws.options.write_limit
        while self.ws.buffered_amount > limit and self.inbox.closed is None:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and return the round-trip time in seconds."""
        loop = asyncio.get_running_loop()
        pong: asyncio.Future[float] = loop.create_future()
        try:
            self.ws.ping(data, lambda rtt: _set(pong, rtt))
        except InvalidStateError:
            await self._raise_closed()
        waiting: set[asyncio.Future[Any]] = {pong, self._closed}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if pong.done():
            return pong.result()
        await self._raise_closed()
        raise AssertionError  # unreachable

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close and wait until the connection is closed."""
        if self.ws.state in ("connecting", "open"):
            self.ws.close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    async def _raise_closed(self) -> None:
        await self.wait_closed()
        assert self.inbox.closed is not None
        raise self.inbox.closed

    # -- from the bridge (loop thread) ---------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _writable(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _on_close(self, code: int, reason: str, clean: bool) -> None:
        self.inbox.close(code, reason, clean)
        self._writable()
        if not self._closed.done():
            self._closed.set_result(None)

    def __repr__(self) -> str:
        return f"<AioWebSocket {self.ws!r}>"


class _Bridge(Handler):
    """Callbacks -> the AioWebSocket of each connection (kept in ws.data)."""

    def __init__(self, max_queue: int, opened: Callable[[AioWebSocket], None]) -> None:
        self.max_queue = max_queue
        self.opened = opened
        self.failed: Callable[[BaseException], None] | None = None

    def on_open(self, ws: WebSocket) -> None:
        aws = ws.data["aio"] = AioWebSocket(ws, self.max_queue)
        self.opened(aws)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        aws: AioWebSocket = ws.data["aio"]
        waiter = aws._waiter
        if waiter is not None and not waiter.done() and not aws.inbox.messages:
            waiter.set_result(data)  # a recv() is waiting: hand it over directly
        else:
            aws.inbox.push(data)

    def on_writable(self, ws: WebSocket) -> None:
        ws.data["aio"]._writable()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        ws.data["aio"]._on_close(code, reason, clean)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None and self.failed is not None:
            self.failed(error)


def _split_max_queue(options: dict[str, Any]) -> int:
    return int(options.pop("max_queue", DEFAULT_MAX_QUEUE))


class Connect:
    """What ``wsloop.connect(url)`` returns without a handler: await it,
    ``async with`` it, or ``async for ws in`` it to reconnect forever."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.max_queue = _split_max_queue(options)
        self.reconnect = options.pop("reconnect", True)
        self.options = ClientOptions.build(options)  # errors now, not when awaited
        self._ws: AioWebSocket | None = None

    async def _open(self) -> AioWebSocket:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[AioWebSocket] = loop.create_future()
        bridge = _Bridge(self.max_queue, lambda aws: _set(opened, aws))
        bridge.failed = lambda exc: _fail(opened, exc)
        client = Client(self.url, bridge, get_loop(loop), self.options).start()
        try:
            return await opened
        except BaseException:
            client.close()
            raise

    def __await__(self) -> Generator[Any, None, AioWebSocket]:
        return self._open().__await__()

    async def __aenter__(self) -> AioWebSocket:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[AioWebSocket]:
        return self._forever()

    async def _forever(self) -> AsyncIterator[AioWebSocket]:
        policy = self.reconnect if isinstance(self.reconnect, Reconnect) else Reconnect()
        failures = 0
        while True:
            try:
                ws = await self._open()
            except (TypeError, ValueError):
                raise  # a mistake in the call, not a network failure
            except Exception as exc:
                failures += 1
                if policy.max_attempts is not None and failures >= policy.max_attempts:
                    raise
                logger.info("connect to %s failed (%s); retrying", self.url, exc)
            else:
                failures = 1
                try:
                    yield ws
                finally:
                    await ws.close()
            await asyncio.sleep(policy.delay(failures, random.random()))


class AioServer:
    """A running server seen from asyncio."""

    def __init__(self, server: Server) -> None:
        self.server = server
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = closed
        server.add_done_callback(lambda: _set(closed, None))

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def connections(self) -> list[AioWebSocket]:
        return [ws.data["aio"] for ws in self.server.connections if "aio" in ws.data]

    def broadcast(self, message: str | bytes) -> int:
        return self.server.broadcast(message)

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        await self.wait_closed()


class Serve:
    """What ``wsloop.serve(async_handler, ...)`` returns: await it or
    ``async with`` it; each connection runs ``await handler(ws)``."""

    def __init__(
        self,
        handler: Callable[[AioWebSocket], Awaitable[None]],
        host: str | None = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be an async function taking the connection")
        self.handler = handler
        self.host = host
        self.port = port
        self.sock = options.pop("sock", None)
        self.max_queue = _split_max_queue(options)
        self.options = ServerOptions.build(options)
        self._server: AioServer | None = None

    async def _start(self) -> AioServer:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def run(aws: AioWebSocket) -> None:
            try:
                await self.handler(aws)
            except ConnectionClosed:
                pass
            except Exception:
                logger.exception("exception in connection handler")
                await aws.close(1011, "internal error")
                return
            await aws.close()

        def opened(aws: AioWebSocket) -> None:
            task = loop.create_task(run(aws))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        bridge = _Bridge(self.max_queue, opened)
        server = Server(
            bridge, get_loop(loop), self.options, host=self.host, port=self.port, sock=self.sock
        )
        return AioServer(server)

    def __await__(self) -> Generator[Any, None, AioServer]:
        return self._start().__await__()

    async def __aenter__(self) -> AioServer:
        self._server = await self._start()
        return self._server

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def connect(url: str, **options: Any) -> Connect:
    """The asyncio client (also reached as ``wsloop.connect(url)`` with no handler)."""
    return Connect(url, **options)


def serve(
    handler: Callable[[AioWebSocket], Awaitable[None]],
    host: str | None = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> Serve:
    """The asyncio server (also ``wsloop.serve(async_handler, ...)``)."""
    return Serve(handler, host, port, **options)
