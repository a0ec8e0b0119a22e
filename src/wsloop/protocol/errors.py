"""Exceptions raised or reported by the sans-I/O core."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .handshake import Headers, Request, Response

__all__ = ["HandshakeError", "InvalidStateError", "ProtocolError", "WebSocketError"]


class WebSocketError(Exception):
    """Base class of every error wsloop raises about a WebSocket."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455/7692; the connection was failed with ``code``.

    Never raised out of :meth:`Connection.receive_data`: it is carried by the
    :class:`~wsloop.protocol.events.Closed` event of the failed connection.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


class HandshakeError(WebSocketError):
    """The opening handshake failed.

    On a server, ``status`` is the HTTP status sent to the client. On a client,
    ``status`` is the status the server answered with and ``response`` holds
    the whole response (a 3xx carries ``Location``, a 401 its challenge)
    and ``request`` the request it answered (for logs: ``wsloop connect -v``).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        headers: Headers | None = None,
        response: Response | None = None,
        request: Request | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.response = response
        self.request = request


class InvalidStateError(WebSocketError, RuntimeError):
    """An operation was asked of a connection in a state that forbids it.

    For example sending a message after the close handshake has started.
    """
