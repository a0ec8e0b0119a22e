"""wsloop's sans-I/O WebSocket core (RFC 6455 and RFC 7692).

Bytes in, events and bytes out: nothing in this package touches a socket, a
clock, a thread or an event loop. See the docstring of
``wsloop/protocol/connection.py`` for how to drive it.
"""

from .connection import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientConnection,
    Connection,
    ServerConnection,
    State,
)
from .deflate import DeflateOptions
from .errors import HandshakeError, InvalidStateError, ProtocolError, WebSocketError
from .events import Closed, Event, HandshakeFailed, Message, Opened, Ping, Pong, RequestReceived
from .frames import CloseCode, Opcode, apply_mask, encode_frame
from .handshake import Headers, Request, Response, WebSocketURL, accept_key, parse_url

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ClientConnection",
    "CloseCode",
    "Closed",
    "Connection",
    "DeflateOptions",
    "Event",
    "HandshakeError",
    "HandshakeFailed",
    "Headers",
    "InvalidStateError",
    "Message",
    "Opcode",
    "Opened",
    "Ping",
    "Pong",
    "ProtocolError",
    "Request",
    "RequestReceived",
    "Response",
    "ServerConnection",
    "State",
    "WebSocketError",
    "WebSocketURL",
    "accept_key",
    "apply_mask",
    "encode_frame",
    "parse_url",
]
