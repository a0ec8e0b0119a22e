"""wsloop: WebSocket client and server (RFC 6455, RFC 7692) on the event
loop you already have: asyncio, uvloop, libev, libuv, GLib, Qt, Tk, or its own.

The callback API::

    import wsloop

    class Feed(wsloop.Handler):
        def on_message(self, ws, data):
            print(data)

    wsloop.connect("wss://example.com/feed", Feed(), loop="libev")
"""

from __future__ import annotations

import logging as _logging
import socket as _socket
import threading
from typing import TYPE_CHECKING, Any

from . import websocket as _websocket
from .client import Client
from .errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, ProxyError
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

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import ClientArgs, ServerArgs

__version__ = "0.2.0"

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
    "ProxyError",
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

# A library's logger gets a NullHandler (the logging HOWTO's advice): an
# application that configures logging sees wsloop's records, one that does
# not is never printed to by wsloop. docs/logging.md lists what is logged.
_logging.getLogger("wsloop").addHandler(_logging.NullHandler())

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


def connect(
    url: str, handler: Any = None, *, loop: Any = None, **kwargs: Unpack[ClientArgs]
) -> Client:
    """Connect to ``url`` with the callback API; returns the :class:`Client` at once.

    ``handler`` is a :class:`Handler`, any object with some ``on_*``
    methods, and/or ``on_message=...``-style keywords. The callbacks run on
    ``loop``: a :class:`Loop`, a backend name (``"libev"``...), a native
    loop (asyncio, gevent, GLib, a Qt application, a Twisted reactor, a Tk
    root; for trio the adapter from :func:`wsloop.loops.trio.open_loop`), or
    None for the running asyncio loop if there is one, else
    :func:`default_loop`. Call it at any time and from any thread: before the
    loop runs (nothing happens until it does), while it runs, or from another
    thread. Other keywords are :class:`ClientOptions`.

    For ``await``, use :func:`wsloop.aio.connect`; for a blocking
    connection, :func:`wsloop.sync.connect`.
    """
    from .handler import resolve_handler

    callbacks, options = split_callbacks(kwargs)
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
    **kwargs: Unpack[ServerArgs],
) -> Server:
    """Listen for WebSocket clients on ``host``:``port`` (or ``sock``) with
    the callback API.

    Binds at once (``server.port`` tells the port when ``port=0``); accepts
    once the loop runs. Every connection's events go to ``handler``, given
    as for :func:`connect`, as is ``loop``; other keywords are
    :class:`ServerOptions`. For an ``async def handler(ws)``, use
    :func:`wsloop.aio.serve`; for a blocking function per connection,
    :func:`wsloop.sync.serve`.
    """
    import inspect

    from .handler import resolve_handler

    if inspect.iscoroutinefunction(handler):
        raise TypeError(
            "wsloop.serve() takes a callback handler; an async def handler(ws) is for "
            "wsloop.aio.serve(handler, host, port)"
        )
    callbacks, options = split_callbacks(kwargs)
    resolved = resolve_handler(handler, callbacks)
    return Server(
        lambda: resolved,
        _loop(loop),
        ServerOptions.build(options),
        host=host,
        port=port,
        sock=sock,
    )
