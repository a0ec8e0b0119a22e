"""The per-message half of the asyncio front-end: :class:`AioWebSocket`
and the handler that feeds it.

Kept apart from :mod:`wsloop.aio` (connect/serve, reconnecting iterators)
so it can be compiled with the rest of the per-message path: every
message received or sent through ``await ws.recv()``/``ws.send()`` runs
here. Use :mod:`wsloop.aio`; this module is its implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ._inbox import Inbox
from .errors import ConnectionClosedOK, InvalidStateError
from .handler import Handler
from .websocket import MessageSink, WebSocket

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # only the compiler reads the decorator (hatch_build.py)

    def mypyc_attr(*_: object, **__: object) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda cls: cls


__all__ = ["AioWebSocket", "Bridge", "HandlerBridge", "fail", "resolve"]


def resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class AioWebSocket(MessageSink):
    """A connection seen from asyncio. Use it from the loop it runs on.

    Opened with a handler (``wsloop.aio.connect(url, handler)``), its
    messages go to the handler's ``on_message`` and :meth:`recv` refuses.
    """

    def __init__(self, ws: WebSocket, max_queue: int, *, to_handler: bool = False) -> None:
        self.ws = ws
        #: True when messages go to the handler's callbacks, not to recv().
        self.to_handler = to_handler
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
        if self.to_handler:
            raise InvalidStateError(
                "this connection's messages go to its handler's on_message; recv() and "
                "async for are for connections opened without a handler"
            )
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
        limit = self.ws._write_limit
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
            self.ws.ping(data, lambda rtt: resolve(pong, rtt))
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

    def __aiter__(self) -> AioWebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """``async for message in ws``: messages until a clean close."""
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def _raise_closed(self) -> None:
        await self.wait_closed()
        assert self.inbox.closed is not None
        raise self.inbox.closed

    # -- from the connection (its sink) and the bridge (loop thread) ----------

    def deliver(self, data: str | bytes) -> None:
        """A message from the connection (its sink; loop thread)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self.inbox.messages:
            waiter.set_result(data)  # a recv() is waiting: hand it over directly
        else:
            self.inbox.push(data)

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


# Handler stays interpreted (applications subclass it, duck-type it and set
# attributes on it); a compiled class may only extend it as a plain Python
# class, whose methods are still compiled.
@mypyc_attr(native_class=False)
class Bridge(Handler):
    """Callbacks -> the AioWebSocket of each connection (kept in ws.data)."""

    def __init__(self, max_queue: int, opened: Callable[[AioWebSocket], None]) -> None:
        self.max_queue = max_queue
        self.opened = opened
        self.failed: Callable[[BaseException], None] | None = None

    def on_open(self, ws: WebSocket) -> None:
        aws = ws.data["aio"] = AioWebSocket(ws, self.max_queue)
        ws.sink = aws  # messages go to aws.deliver, not to on_message
        self.opened(aws)

    def on_writable(self, ws: WebSocket) -> None:
        ws.data["aio"]._writable()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        ws.data["aio"]._on_close(code, reason, clean)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None and self.failed is not None:
            self.failed(error)


@mypyc_attr(native_class=False)
class HandlerBridge(Bridge):
    """The asyncio API with the application's callbacks, as asyncio's
    protocols are to its streams: opening and closing are awaited, and each
    message goes to ``handler.on_message(ws, data)`` on arrival, with no
    queue, future or task step in between.

    The per-message and per-frame callbacks are set as instance attributes,
    shadowing :class:`Bridge`'s methods: the connection looks them up and
    calls the application's functions directly, so a message costs what it
    costs in the callback API.
    """

    def __init__(self, handler: Handler, opened: Callable[[AioWebSocket], None]) -> None:
        super().__init__(1, opened)
        self.app = handler
        for name in ("on_message", "on_ping", "on_pong", "on_state"):
            setattr(self, name, getattr(handler, name))

    def on_open(self, ws: WebSocket) -> None:
        aws = ws.data["aio"] = AioWebSocket(ws, 1, to_handler=True)  # its queue stays empty
        self.opened(aws)  # first: an on_open that raises closes the connection, seen by the awaiter
        self.app.on_open(ws)

    def on_writable(self, ws: WebSocket) -> None:
        ws.data["aio"]._writable()
        self.app.on_writable(ws)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        ws.data["aio"]._on_close(code, reason, clean)
        self.app.on_close(ws, code, reason, clean)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        Bridge.on_error(self, ws, error)
        self.app.on_error(ws, error)
