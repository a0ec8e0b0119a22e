"""The asyncio front-end (asyncio and uvloop)::

    async with wsloop.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            print(message)

It is a thin layer over the callback API: the same :class:`~wsloop.Client`
and :class:`~wsloop.WebSocket` run on the running asyncio loop (through its
adapter), and :class:`AioWebSocket` (in ``_aiows.py``, compiled with the
rest of the per-message path) turns their callbacks into awaitables. Received
messages wait in a bounded queue; when it is full reading pauses. ``send``
waits while the send buffer is over ``write_limit``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from ._aiows import AioWebSocket, Bridge, fail, resolve
from .client import Client
from .errors import ConnectionClosed
from .loops import get_loop
from .options import ClientOptions, Reconnect, ServerOptions
from .server import Server

__all__ = ["AioServer", "AioWebSocket", "Connect", "Serve", "connect", "serve"]

logger = logging.getLogger("wsloop")

DEFAULT_MAX_QUEUE = 32


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
        bridge = Bridge(self.max_queue, lambda aws: resolve(opened, aws))
        bridge.failed = lambda exc: fail(opened, exc)
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
        server.add_done_callback(lambda: resolve(closed, None))

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

        bridge = Bridge(self.max_queue, opened)
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
