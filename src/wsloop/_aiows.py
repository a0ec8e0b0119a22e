"""The per-message half of the asyncio front-end: :class:`AioWebSocket`.

An ``AioWebSocket`` is the handler of one connection, made per connection
(as asyncio makes a protocol per connection from its factory): the
connection calls its ``on_*`` methods on the loop's thread, and it turns
them into what an ``async`` program awaits. In the awaited form messages
wait in its bounded queue for :meth:`AioWebSocket.recv`; in the handler
form (:class:`HandlerForm`) each one goes on to the application's handler.

Kept apart from :mod:`wsloop.aio` (connect/serve, reconnecting iterators)
so it can be compiled with the rest of the per-message path. Use
:mod:`wsloop.aio`; this module is its implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._inbox import Inbox
from ._view import ConnectionView
from .errors import ConnectionClosedOK, InvalidStateError
from .websocket import WebSocket

if TYPE_CHECKING:
    from .client import Client
    from .handler import Handler

__all__ = ["AioWebSocket", "HandlerForm", "fail", "resolve"]


def resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class AioWebSocket(ConnectionView):
    """A connection seen from asyncio. Use it from the loop it runs on.

    ``ws`` is the :class:`~wsloop.WebSocket` underneath. It is made per
    connection and is that connection's handler: ``opened(self)`` runs once
    the handshake is done, ``failed(error)`` if the attempt fails before.
    """

    inbox: Inbox

    def __init__(
        self,
        max_queue: int,
        opened: Callable[[AioWebSocket], object],
        failed: Callable[[BaseException], object] | None = None,
    ) -> None:
        self.max_queue = max_queue
        self._opened = opened
        self._failed = failed
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[str | bytes | None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # -- state ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed.done()

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
        ws = self.ws
        try:
            ws.send(data, compress=compress)
        except InvalidStateError:
            await self._raise_closed()
        limit = ws._write_limit
        while ws.buffered_amount > limit and self.inbox.closed is None:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    async def ping(self, data: bytes | str | None = None) -> float:
        """Send a ping and return the round-trip time in seconds once its
        pong arrives."""
        pong: asyncio.Future[float] = self._loop.create_future()
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
        """Wait until the connection is closed."""
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

    def __repr__(self) -> str:
        ws = getattr(self, "ws", None)
        return f"<AioWebSocket {ws!r}>"

    # -- the connection's handler (loop thread) ---------------------------

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws
        self.inbox = Inbox(ws, self.max_queue, self._wake, threaded=False)
        self._opened(self)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self.inbox.messages:
            waiter.set_result(data)  # a recv() is waiting: hand it over directly
        else:
            self.inbox.push(data)

    def on_ping(self, ws: WebSocket, data: bytes) -> None:
        pass

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        pass

    def on_writable(self, ws: WebSocket) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.inbox.close(code, reason, clean)
        self.on_writable(ws)
        if not self._closed.done():
            self._closed.set_result(None)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None and self._failed is not None:
            self._failed(error)

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        pass

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class HandlerForm(AioWebSocket):
    """The asyncio API with the application's callbacks, as asyncio's
    protocols are to its streams: opening and closing are awaited, and each
    event goes on to the application's handler (``app``) as it arrives,
    with no queue, future or task step per message. Its :meth:`recv`
    refuses: the messages are the handler's."""

    def __init__(
        self,
        app: Handler,
        opened: Callable[[AioWebSocket], object],
        failed: Callable[[BaseException], object] | None = None,
    ) -> None:
        super().__init__(1, opened, failed)  # its queue stays empty
        self.app = app
        # Looked up once, not per message: the application's handler is
        # resolved (and checked) before the connection exists.
        self._app_message: Callable[[WebSocket, str | bytes], object] = app.on_message

    async def recv(self) -> str | bytes:
        """Refuses: this form's messages go to the handler's ``on_message``."""
        raise InvalidStateError(
            "this connection's messages go to its handler's on_message; recv() and "
            "async for are for connections opened without a handler"
        )

    def on_open(self, ws: WebSocket) -> None:
        super().on_open(
            ws
        )  # first: an on_open that raises closes the connection, seen by the awaiter
        self.app.on_open(ws)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        self._app_message(ws, data)

    def on_ping(self, ws: WebSocket, data: bytes) -> None:
        self.app.on_ping(ws, data)

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        self.app.on_pong(ws, data)

    def on_writable(self, ws: WebSocket) -> None:
        super().on_writable(ws)
        self.app.on_writable(ws)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        super().on_close(ws, code, reason, clean)
        self.app.on_close(ws, code, reason, clean)

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        super().on_error(ws, error)
        self.app.on_error(ws, error)

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        self.app.on_state(client, state, detail)
