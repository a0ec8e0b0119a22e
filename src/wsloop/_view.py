"""What every front-end's connections and servers tell about themselves,
read from the :class:`~wsloop.WebSocket` or :class:`~wsloop.Server`
underneath: one definition of those names for the asyncio
(:class:`~wsloop.aio.AioWebSocket`, :class:`~wsloop.aio.AioServer`) and
blocking (:class:`~wsloop.sync.SyncWebSocket`,
:class:`~wsloop.sync.SyncServer`) front-ends, which add their own ways to
send, receive, close and wait."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .server import Server
from .websocket import WebSocket

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # only the compiler reads the decorator (hatch_build.py)

    def mypyc_attr(*_: object, **__: object) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda cls: cls


__all__ = ["ConnectionView", "ServerView"]

H = TypeVar("H")


# The blocking front-end's connection, an interpreted class, derives from it.
@mypyc_attr(allow_interpreted_subclasses=True)
class ConnectionView:
    """The state of a connection, as the callback API's ``WebSocket`` names it."""

    #: The :class:`~wsloop.WebSocket` underneath (set when it opens).
    ws: WebSocket

    @property
    def state(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed``."""
        return self.ws.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        return self.ws.subprotocol

    @property
    def extensions(self) -> list[str]:
        """The extensions agreed in the handshake (``permessage-deflate``...)."""
        return self.ws.extensions

    @property
    def local_address(self) -> Any:
        """This end's address, as the socket reports it."""
        return self.ws.local_address

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        return self.ws.remote_address

    @property
    def request(self) -> Any:
        """The handshake request (the server's view: what the client sent)."""
        return self.ws.request

    @property
    def response(self) -> Any:
        """The handshake response (the client's view: what the server sent)."""
        return self.ws.response

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last answered ping, in seconds."""
        return self.ws.latency

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet handed to the kernel."""
        return self.ws.buffered_amount

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closing or closed (1006: no close frame)."""
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closing or closed."""
        return self.ws.close_reason


# The asyncio and blocking servers, interpreted classes, derive from it.
@mypyc_attr(allow_interpreted_subclasses=True)
class ServerView(Generic[H]):
    """A server, as :class:`~wsloop.Server` names it; ``H`` is the type of
    its connections' handlers, which are what :attr:`connections` lists."""

    def __init__(self, server: Server) -> None:
        #: The :class:`~wsloop.Server` underneath.
        self.server = server

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.server.port

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` with TLS)."""
        return self.server.url

    @property
    def connections(self) -> list[H]:
        """The open connections."""
        return [ws.handler for ws in self.server.connections]  # type: ignore[misc]

    @property
    def closed(self) -> bool:
        """True once shutdown has finished."""
        return self.server.closed
