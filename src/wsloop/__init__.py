"""wsloop: WebSocket client and server (RFC 6455, RFC 7692) on the event
loop you already have: asyncio, uvloop, libev, libuv, GLib, or its own.

The callback API::

    import wsloop

    class Feed(wsloop.Handler):
        def on_message(self, ws, data):
            print(data)

    wsloop.connect("wss://example.com/feed", Feed(), loop="libev")
"""

from __future__ import annotations

import socket as _socket
import threading
from typing import Any, overload

from . import websocket as _websocket
from .client import Client
from .errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .handler import Handler, split_callbacks
from .loops import Loop, get_loop
from .options import ClientOptions, ConnectionOptions, Reconnect, ServerOptions
from .protocol import (
    CloseCode,
    DeflateOptions,
    HandshakeError,
    InvalidStateError,
    ProtocolError,
    WebSocketError,
)
from .server import Server, broadcast
from .websocket import WebSocket

__version__ = "0.1.0"

#: True when the modules every message goes through run compiled (a wheel
#: built with mypyc), False when they run as Python (an editable install, or
#: a wheel built without a compiler).
COMPILED = not (_websocket.__file__ or "").endswith(".py")

__all__ = [
    "COMPILED",
    "Client",
    "ClientOptions",
    "CloseCode",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionOptions",
    "DeflateOptions",
    "Handler",
    "HandshakeError",
    "InvalidStateError",
    "Loop",
    "ProtocolError",
    "Reconnect",
    "Server",
    "ServerOptions",
    "WebSocket",
    "WebSocketError",
    "broadcast",
    "connect",
    "default_loop",
    "get_loop",
    "run",
    "serve",
]

_default: Loop | None = None
_default_lock = threading.Lock()


def default_loop() -> Loop:
    """The process-wide builtin loop used when no ``loop=`` is given."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = get_loop("builtin")
        return _default


def run() -> None:
    """Run :func:`default_loop` until ``default_loop().stop()``."""
    default_loop().run()


def _loop(loop: Any) -> Loop:
    if loop is not None:
        return get_loop(loop)
    import asyncio

    try:
        return get_loop(asyncio.get_running_loop())
    except RuntimeError:
        return default_loop()


@overload
def connect(url: str, handler: None = None, *, loop: None = None, **kwargs: Any) -> Any: ...
@overload
def connect(url: str, handler: Any, *, loop: Any = None, **kwargs: Any) -> Client: ...


def connect(url: str, handler: Any = None, *, loop: Any = None, **kwargs: Any) -> Any:
    """Connect to ``url``.

    With a ``handler`` (a :class:`Handler`, any object with some ``on_*``
    methods, or ``on_message=...``-style keywords) this is the callback API:
    it returns the :class:`Client` at once and the callbacks run on
    ``loop``: a :class:`Loop`, a backend name (``"libev"``...), a native
    loop (asyncio, gevent, GLib), or None for the running asyncio loop if
    there is one, else :func:`default_loop`. Call it at any time and from
    any thread: before the loop runs (nothing happens until it does), while
    it runs, or from another thread.

    Without a handler it is the asyncio API (:func:`wsloop.aio.connect`):
    ``async with wsloop.connect(url) as ws``, ``ws = await
    wsloop.connect(url)``, or ``async for ws in wsloop.connect(url)`` to
    reconnect. Other keywords are :class:`ClientOptions`.
    """
    from .handler import resolve_handler

    callbacks, options = split_callbacks(kwargs)
    if handler is None and not callbacks:
        if loop is not None:
            raise TypeError("the asyncio API runs on the running asyncio loop; pass no loop=")
        from .aio import Connect

        return Connect(url, **options)
    resolved = resolve_handler(handler, callbacks)
    client = Client(url, resolved, _loop(loop), ClientOptions.build(options))
    return client.start()


def serve(
    handler: Any = None,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    sock: _socket.socket | None = None,
    loop: Any = None,
    **kwargs: Any,
) -> Server:
    """Listen for WebSocket clients on ``host``:``port`` (or ``sock``).

    Binds at once (``server.port`` tells the port when ``port=0``); accepts
    once the loop runs. Handler and ``loop`` as for :func:`connect`; other
    keywords are :class:`ServerOptions`. With an ``async def handler(ws)``
    this is the asyncio API (:func:`wsloop.aio.serve`): ``async with
    wsloop.serve(handler) as server``.
    """
    import inspect

    from .handler import resolve_handler

    callbacks, options = split_callbacks(kwargs)
    if inspect.iscoroutinefunction(handler):
        if loop is not None:
            raise TypeError("the asyncio API runs on the running asyncio loop; pass no loop=")
        from .aio import Serve

        return Serve(handler, host, port, sock=sock, **options)  # type: ignore[return-value]
    resolved = resolve_handler(handler, callbacks)
    return Server(
        resolved, _loop(loop), ServerOptions.build(options), host=host, port=port, sock=sock
    )
