"""The asyncio front-end (asyncio and uvloop)::

    async with wsloop.aio.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            print(message)

It is a thin layer over the callback API: the same :class:`~wsloop.Client`
and :class:`~wsloop.WebSocket` run on the running asyncio loop (through its
adapter), and each connection's handler is an :class:`AioWebSocket` (in
``_aiows.py``, compiled with the rest of the per-message path), made for
that connection, which turns its callbacks into awaitables. Received
messages wait in a bounded queue; when it is full reading pauses. ``send``
waits while the send buffer is over ``write_limit``.

Like asyncio itself, which has streams and protocols, it has two forms.
Without a handler (above) messages are awaited. With one,
``await wsloop.aio.connect(url, handler)`` and ``wsloop.aio.serve(handler)``
await the opening and the closing, and each message goes to
``handler.on_message(ws, data)`` as it arrives: no queue, future or task
step per message, the fastest way to run WebSockets on asyncio/uvloop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from ._aiows import AioWebSocket, HandlerForm, fail, resolve
from ._view import ServerView
from .broker.aio import AioBroker
from .client import Client, reconnect_target
from .errors import ConnectionClosed
from .handler import Handler, has_callbacks, resolve_handler, split_callbacks
from .loops import get_loop
from .options import (
    DEFAULT_MAX_QUEUE,
    BeforeReconnect,
    ClientOptions,
    Reconnect,
    ServerOptions,
    check_max_queue,
)
from .server import Server

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import AioClientArgs, AioServerArgs

__all__ = [
    "AioBroker",
    "AioServer",
    "AioWebSocket",
    "Connect",
    "Serve",
    "connect",
    "open_broker",
    "serve",
]

logger = logging.getLogger("wsloop")


def _split_max_queue(options: dict[str, Any]) -> int:
    return check_max_queue(options.pop("max_queue", DEFAULT_MAX_QUEUE))


def _app(handler: Any, callbacks: dict[str, Any], options: dict[str, Any]) -> Handler:
    """The application's handler, for the handler form."""
    if "max_queue" in options:
        raise TypeError(
            "max_queue bounds the messages waiting for recv(); with a handler "
            "messages are not queued: pass no max_queue (pause_reading() pauses)"
        )
    return resolve_handler(handler, callbacks)


class Connect:
    """What :func:`connect` returns: await it, ``async with`` it, or
    ``async for ws in`` it to reconnect forever."""

    def __init__(self, url: str, handler: Any = None, **options: Any) -> None:
        self.url = url
        callbacks, options = split_callbacks(options)
        self.app = None if handler is None and not callbacks else _app(handler, callbacks, options)
        self.max_queue = _split_max_queue(options)
        # The policy of ``async for ws in connect(...)``; one awaited
        # connection does not reconnect.
        self.reconnect: bool | Reconnect | None = options.pop("reconnect", None)
        # Applied here, by ``async for``, which makes a new client per attempt.
        self.before_reconnect: BeforeReconnect | None = options.pop("before_reconnect", None)
        self.options = ClientOptions.build(options)  # errors now, not when awaited
        if self.reconnect is not None and not isinstance(self.reconnect, (bool, Reconnect)):
            raise TypeError("reconnect must be True, False or a wsloop.Reconnect")
        if self.before_reconnect is not None and not callable(self.before_reconnect):
            raise TypeError(
                "before_reconnect must be a function (url, headers) -> (url, headers) or None, "
                f"not {type(self.before_reconnect).__name__}"
            )
        self._ws: AioWebSocket | None = None

    async def _open(
        self, url: str | None = None, options: ClientOptions | None = None
    ) -> AioWebSocket:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[AioWebSocket] = loop.create_future()
        ready = functools.partial(resolve, opened)
        failed = functools.partial(fail, opened)
        handler = (
            AioWebSocket(self.max_queue, ready, failed)
            if self.app is None
            else HandlerForm(self.app, ready, failed)
        )
        client = Client(url or self.url, handler, get_loop(loop), options or self.options).start()
        try:
            return await opened
        except BaseException:
            client.close()
            raise

    def __await__(self) -> Generator[Any, None, AioWebSocket]:
        self._one_connection("ws = await wsloop.aio.connect(url)")
        return self._open().__await__()

    def _one_connection(self, how: str) -> None:
        for name in ("reconnect", "before_reconnect"):
            if getattr(self, name) is not None:
                raise TypeError(
                    f"{name}= applies to `async for ws in wsloop.aio.connect(url, "
                    f"reconnect=...)`; `{how}` opens one connection: pass no {name}"
                )

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and hasattr(AioWebSocket, name):
            raise AttributeError(
                f"{name!r} is the connection's: await wsloop.aio.connect() first "
                "(`ws = await wsloop.aio.connect(url)` or "
                "`async with wsloop.aio.connect(url) as ws`)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def __aenter__(self) -> AioWebSocket:
        self._one_connection("async with wsloop.aio.connect(url) as ws")
        self._ws = await self._open()
        return self._ws

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[AioWebSocket]:
        if self.reconnect is False:
            raise TypeError(
                "`async for ws in wsloop.aio.connect(...)` reconnects: pass reconnect=True "
                "or a wsloop.Reconnect, or use `async with` for one connection"
            )
        return self._forever()

    async def _forever(self) -> AsyncIterator[AioWebSocket]:
        policy = self.reconnect if isinstance(self.reconnect, Reconnect) else Reconnect()
        failures = 0
        url, options = self.url, self.options
        while True:
            error: BaseException
            try:
                ws = await self._open(url, options)
            except (TypeError, ValueError):
                raise  # a mistake in the call, not a network failure
            except Exception as exc:
                failures += 1
                if policy.max_attempts is not None and failures >= policy.max_attempts:
                    raise
                if not policy.retry_on(exc):
                    raise  # cannot succeed later (a 4xx, a bad certificate...)
                logger.info("connect to %s failed (%s); retrying", self.url, exc)
                error = exc
            else:
                failures = 1
                try:
                    yield ws
                finally:
                    await ws.close()
                error = ConnectionClosed.of(ws.ws.protocol.closed)
                if not policy.retry_on(error):
                    return
            await asyncio.sleep(policy.delay_after(error, failures, random.random()))
            if self.before_reconnect is not None:
                # The hook's mistakes are raised here, in the iterating task.
                url, headers = reconnect_target(
                    self.before_reconnect, self.url, self.options.header_items
                )
                options = dataclasses.replace(self.options, headers=headers)


class AioServer(ServerView[AioWebSocket]):
    """A running server seen from asyncio."""

    def __init__(self, server: Server, tasks: set[asyncio.Task[None]]) -> None:
        super().__init__(server)
        # The tasks running the connections' handler, until each returns.
        self._tasks = tasks
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = closed
        server.add_done_callback(lambda: resolve(closed, None))

    def broadcast(self, message: str | bytes) -> int:
        """Send to every open connection (see :func:`wsloop.broadcast`);
        returns how many got it."""
        return self.server.broadcast(message)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting and close every connection (1001); await
        :meth:`wait_closed` for the end."""
        self.server.close(timeout)

    async def wait_closed(self) -> None:
        """Wait until shutdown has finished and every connection's handler
        returned."""
        await asyncio.shield(self._closed)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        await self.wait_closed()


class Serve:
    """What :func:`serve` returns: await it or ``async with`` it. Each
    connection runs ``await handler(ws)``, or with a :class:`~wsloop.Handler`
    (or ``on_message=...`` functions) gets its callbacks."""

    def __init__(
        self,
        handler: Any = None,
        host: str | None = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        callbacks, options = split_callbacks(options)
        self.app: Handler | None = None
        if callbacks or has_callbacks(handler):
            self.app = _app(handler, callbacks, options)
        elif not callable(handler):
            raise TypeError(
                "handler must be an async function taking the connection, or a "
                "wsloop.Handler (or on_message=... functions) for callbacks"
            )
        self.handler: Callable[[AioWebSocket], Awaitable[None]] = handler
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

        app = self.app
        max_queue = self.max_queue

        def new_handler() -> AioWebSocket:
            if app is None:
                return AioWebSocket(max_queue, opened)
            return HandlerForm(app, lambda aws: None)

        server = Server(
            new_handler,
            get_loop(loop),
            self.options,
            host=self.host,
            port=self.port,
            sock=self.sock,
        )
        return AioServer(server, tasks)

    def __await__(self) -> Generator[Any, None, AioServer]:
        return self._start().__await__()

    async def __aenter__(self) -> AioServer:
        self._server = await self._start()
        return self._server

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def connect(url: str, handler: Any = None, **options: Unpack[AioClientArgs]) -> Connect:
    """The asyncio client: ``async with connect(url) as ws``, ``ws = await
    connect(url)``, or ``async for ws in connect(url)`` to reconnect; it
    gives an :class:`AioWebSocket` once the connection is open, and raises
    if it cannot open. ``reconnect`` (True or a :class:`~wsloop.Reconnect`)
    is the policy of ``async for``. Without a handler messages are awaited
    with ``recv()`` or ``async for``. With a
    ``handler`` (a :class:`~wsloop.Handler`, any object with some ``on_*``
    methods, or ``on_message=...``-style keywords) each message goes to
    ``on_message(ws, data)`` on arrival, ``ws`` being the
    :class:`~wsloop.WebSocket`, whose ``send`` does not wait: the fastest
    form. Other keywords are :class:`~wsloop.ClientOptions`, and
    ``max_queue`` (32), the messages waiting for ``recv()`` before reading
    pauses."""
    return Connect(url, handler, **options)


def serve(
    handler: Any = None,
    host: str | None = "127.0.0.1",
    port: int = 0,
    **options: Unpack[AioServerArgs],
) -> Serve:
    """The asyncio server: ``async with serve(handler, host, port) as
    server``. With ``async def handler(ws)`` each connection runs as a
    task, given an :class:`AioWebSocket`; with a :class:`~wsloop.Handler`
    (or ``on_message=...`` keywords) its callbacks run as for
    :func:`connect`. Other keywords are
    :class:`~wsloop.ServerOptions`, ``sock`` and ``max_queue``."""
    return Serve(handler, host, port, **options)


def open_broker(url: str | None = None, **options: Any) -> AioBroker:
    """A broker on the running loop, for :func:`serve`'s connections: ``None``
    or ``memory://`` for one process, ``redis://...`` to share channels
    through Redis. Options are :func:`wsloop.broker.open_broker`'s (but
    ``loop``). Call it in a coroutine."""
    from .broker.aio import open_aio_broker

    return open_aio_broker(url, **options)
