"""Exceptions of the asyncio and blocking front-ends (and the core's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .protocol.errors import HandshakeError, InvalidStateError, ProtocolError, WebSocketError

if TYPE_CHECKING:
    from .protocol.events import Closed

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InvalidStateError",
    "ProtocolError",
    "ProxyError",
    "WebSocketError",
]


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code``, ``reason`` and ``clean`` say how."""

    def __init__(self, code: int, reason: str, clean: bool) -> None:
        how = "cleanly" if clean else "abnormally"
        super().__init__(
            f"connection closed {how} with code {code}" + (f": {reason}" if reason else "")
        )
        self.code = code
        self.reason = reason
        self.clean = clean

    @staticmethod
    def make(code: int, reason: str, clean: bool) -> ConnectionClosed:
        """The exception for a close: :class:`ConnectionClosedOK` for a clean
        1000 or 1001, else :class:`ConnectionClosedError`."""
        ok = clean and code in (1000, 1001)
        return (ConnectionClosedOK if ok else ConnectionClosedError)(code, reason, clean)

    @staticmethod
    def of(closed: Closed | None) -> ConnectionClosed:
        """The exception for how a connection ended (its ``protocol.closed``;
        None, if it never got that far, is 1006)."""
        if closed is None:
            return ConnectionClosedError(1006, "", False)
        return ConnectionClosed.make(closed.code, closed.reason, closed.clean)


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally (1000 or 1001, close frames exchanged): iteration stops."""


class ConnectionClosedError(ConnectionClosed):
    """Closed by an error, or without a close frame."""


class ProxyError(HandshakeError):
    """The HTTP proxy refused to open the tunnel (its answer to ``CONNECT``
    was not 200): ``status`` and ``reason`` are the proxy's, ``proxy`` is its
    ``host:port``. A :class:`HandshakeError`, so code that handles refused
    handshakes handles it too; the server itself was never reached."""

    def __init__(self, status: int, reason: str, *, proxy: str) -> None:
        super().__init__(status, f"proxy {proxy} refused CONNECT with {status} {reason}")
        self.proxy = proxy
