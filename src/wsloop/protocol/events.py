"""Events produced by :meth:`Connection.next_event`."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import HandshakeError, ProtocolError
from .handshake import Request, Response

__all__ = [
    "Closed",
    "Event",
    "HandshakeFailed",
    "Message",
    "Opened",
    "Ping",
    "Pong",
    "RequestReceived",
]


@dataclass(slots=True)
class RequestReceived:
    """Server side: a valid opening handshake arrived.

    Answer with :meth:`ServerConnection.accept` or :meth:`ServerConnection.reject`.
    ``subprotocols`` are the client's, in its order of preference.
    """

    request: Request
    subprotocols: list[str]


@dataclass(slots=True)
class Opened:
    """The handshake completed; messages may flow."""

    subprotocol: str | None
    extensions: list[str]
    request: Request | None
    response: Response | None


@dataclass(slots=True)
class HandshakeFailed:
    """The opening handshake failed; the transport should be closed."""

    error: HandshakeError


@dataclass(slots=True, init=False)
class Message:
    """A whole data message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes

    # Written out, not generated: compiled, it costs no interpreter frame,
    # and one Message is made per message received.
    def __init__(self, data: str | bytes) -> None:
        self.data = data


@dataclass(slots=True)
class Ping:
    """A ping arrived (the pong was already queued)."""

    data: bytes


@dataclass(slots=True)
class Pong:
    """A pong arrived: the answer to a ping (``data`` is its payload)."""

    data: bytes


@dataclass(slots=True)
class Closed:
    """The WebSocket is closed; delivered exactly once, and last.

    ``clean`` is True when close frames were exchanged. ``code`` is the code
    the peer sent (1005 for none), or, when this end failed the connection,
    the code it sent (``error`` then says why), or 1006 for a connection that
    ended without a close frame.
    """

    code: int
    reason: str
    clean: bool
    error: ProtocolError | None = None


#: Any event a :class:`~wsloop.protocol.Connection` returns.
Event = RequestReceived | Opened | HandshakeFailed | Message | Ping | Pong | Closed
