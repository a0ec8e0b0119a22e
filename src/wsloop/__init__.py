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
from typing import Any

from .client import Client
from .handler import Handler
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

__all__ = [
    "Client",
    "ClientOptions",
    "CloseCode",
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


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    callbacks = {k: v for k, v in kwargs.items() if k.startswith("on_")}
    options = {k: v for k, v in kwargs.items() if not k.startswith("on_")}
    return callbacks, options


def _loop(loop: Any) -> Loop:
    return default_loop() if loop is None else get_loop(loop)


def connect(url: str, handler: Any = None, *, loop: Any = None, **kwargs: Any) -> Client:
    """Connect to ``url`` on ``loop``; returns the :class:`Client` at once.

    ``handler`` is a :class:`Handler` (or any object with some ``on_*``
    methods); ``on_message=...`` and the other ``on_*`` keywords add or
    override callbacks. ``loop`` is a :class:`Loop`, a backend name
    (``"libev"``...), a native loop (asyncio, gevent, GLib), or None for
    :func:`default_loop`. Other keywords are :class:`ClientOptions`.

    Call it at any time and from any thread: before the loop runs (nothing
    happens until it does), while it runs, or from another thread.
    """
    from .handler import resolve_handler

    callbacks, options = _split(kwargs)
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
    keywords are :class:`ServerOptions`.
    """
    from .handler import resolve_handler

    callbacks, options = _split(kwargs)
    resolved = resolve_handler(handler, callbacks)
    return Server(
        resolved, _loop(loop), ServerOptions.build(options), host=host, port=port, sock=sock
    )
