"""The WebSocket connection state machine, for either role.

Theory of operation
-------------------
A :class:`Connection` is a pure function of the bytes it is given and the
calls made on it: it owns no socket, no clock and no thread. The I/O layer

1. feeds whatever arrived with :meth:`receive_data` (or :meth:`receive_eof`),
2. drains :meth:`next_event` until it returns None, acting on each event,
3. writes :meth:`data_to_send` to the peer, and
4. closes the transport once :attr:`close_transport` is True.

It is made of three parts, one module each, and this module's state
machine, which decides what is allowed when:

* :mod:`.reader`: bytes in, frames out (headers checked, payloads unmasked);
* :mod:`.assembler`: data frames in, messages out (fragments, deflate,
  UTF-8, the size limit);
* :mod:`.writer`: messages and control frames out (masking, deflate);
* :mod:`.handshake`: the opening handshake's HTTP, for both roles below.

Parsing is lazy (as in h11): ``receive_data`` only buffers, and every call to
``next_event`` parses just far enough to produce one event. That ordering is
observable: when a valid message is followed by a bad frame, the application
sees (and can answer) the message before the connection fails. (Two
shortcuts keep that order: with the C accelerator, whole data frames that
arrive into an empty buffer are decoded on arrival, sparing a copy; and the
rest of a large binary message being assembled in place is copied into it on
arrival, see :mod:`.assembler`.)

States: CONNECTING (opening handshake) -> OPEN -> CLOSING (this end sent a
close frame) -> CLOSED. A :class:`~.events.Closed` event is produced exactly
once and nothing follows it. Timers (open, close, keepalive timeouts) belong
to the I/O layer, which calls :meth:`fail` or closes the transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import Final

from .assembler import MessageAssembler
from .deflate import Deflate, DeflateOptions
from .errors import HandshakeError, InvalidStateError, ProtocolError
from .events import (
    Closed,
    Event,
    HandshakeFailed,
    Message,
    Opened,
    Ping,
    Pong,
    RequestReceived,
)
from .frames import (
    build_frame,
    encode_close_payload,
    encode_frame,
    is_valid_close_code,
    read_frame,
)
from .handshake import (
    MAX_HEAD,
    Headers,
    HeadParser,
    OriginRule,
    Request,
    Response,
    WebSocketURL,
    accept_key,
    check_origin,
    error_response,
    new_key,
    parse_extensions,
    parse_request_line,
    parse_status_line,
    parse_url,
    token_list,
    validate_request,
)
from .reader import CONTROL, NEED_MORE, FrameReader
from .writer import FrameWriter

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ClientConnection",
    "Connection",
    "ServerConnection",
    "State",
    "check_max_message_size",
]

#: The default ``max_message_size``: 1 MiB, after decompression.
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
# Final: compiled code inlines them instead of looking them up per frame.
_TEXT: Final = 1
_BINARY: Final = 2
_CLOSE: Final = 8
_PING: Final = 9
_PONG: Final = 10
# Final: compiled code keeps it in a C static, not a module-dict lookup per read.
_read_frame: Final = read_frame
#: The share key of every server connection that sends uncompressed frames.
_PLAIN_KEY: Final[tuple[object, ...]] = ("plain",)


class State(Enum):
    """Where a connection is: handshaking, open, closing (a close frame sent
    or received), closed."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def check_max_message_size(value: int | None) -> int | None:
    """``max_message_size``, checked: a positive int, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_message_size must be an int or None, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"max_message_size must be positive or None for no limit, not {value}")
    return value


class Connection:
    """State shared by both roles; use :class:`ClientConnection` or
    :class:`ServerConnection`."""

    is_client: bool = False

    def __init__(
        self,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        deflate: DeflateOptions | None = None,
    ) -> None:
        if deflate is not None and not isinstance(deflate, DeflateOptions):
            raise TypeError("deflate must be a DeflateOptions or None")
        self.deflate_options = deflate
        self.state = State.CONNECTING
        #: True once this end should close the TCP connection.
        self.close_transport = False
        #: The negotiated subprotocol and extensions, once open.
        self.subprotocol: str | None = None
        self.extensions: list[str] = []
        #: The Closed event, once there is one.
        self.closed: Closed | None = None
        self._codec: Deflate | None = None
        # Events not yet taken: a list read from _ev_next on (cleared once
        # all are taken), because compiled code appends to and indexes a
        # list natively where deque methods are generic calls.
        self._events: list[Event] = []
        self._ev_next = 0
        self._reader = FrameReader(self.is_client)
        self._assembler = MessageAssembler(check_max_message_size(max_message_size))
        self._writer = FrameWriter(self.is_client)
        self._eof = False
        self._close_sent = False
        self._frames = False  # whether frames are being parsed

    @property
    def max_message_size(self) -> int | None:
        """Larger messages (after inflating) fail the connection with 1009."""
        return self._assembler.max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int | None) -> None:
        self._assembler.max_message_size = check_max_message_size(value)

    # -- input ------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, size: int = -1) -> None:
        """Buffer bytes from the peer; call :meth:`next_event` next.

        ``data`` is copied: the caller may reuse its buffer afterwards.
        ``size``: only the first ``size`` bytes of ``data`` arrived (a read
        into a reused buffer, passed without slicing it); all by default."""
        if self._eof:
            raise InvalidStateError("receive_data() after receive_eof()")
        end = len(data)
        if size != -1:
            if not 0 <= size <= end:
                raise ValueError(f"size must be -1 (all of data) or 0 to {end}, not {size}")
            end = size
        if self.closed is not None or not end:
            return
        if self.state is State.CONNECTING and not self._frames:
            self._receive_handshake(data[:end] if end < len(data) else data)
            return
        reader = self._reader
        assembler = self._assembler
        pos = 0
        dest = assembler.filling
        if dest is not None and not reader.buffered:
            # More of the message being assembled: straight into it.
            pos = min(reader.left, end)
            reader.fill_from(dest, data, 0, pos)
            message = assembler.filled(pos, reader.left == 0)
            if message is None:
                return  # all of data was payload
            reader.left = -1
            self._events.append(Message(message))
        if not (reader.buffered or _read_frame is None or reader.left >= 0 or assembler.opcode):
            # Nothing buffered: whole data frames at the head of ``data`` are
            # decoded straight from it by the C fast path (the copy into the
            # buffer saved) and queued as events; the rest is buffered and
            # parsed lazily as usual, so nothing changes order.
            limit = self.max_message_size
            size_limit = -1 if limit is None else limit
            is_client = self.is_client
            events = self._events
            while True:
                got = _read_frame(data, pos, end, is_client, size_limit)
                if got is None:
                    break
                events.append(Message(got[0]))
                pos = got[1]
        if pos < end:
            reader.feed(data[pos:end] if pos or end < len(data) else data)

    def receive_eof(self) -> None:
        """The peer closed its end of the TCP connection."""
        self._eof = True
        self.close_transport = True

    def next_event(self) -> Event | None:
        """The next event, or None when more input is needed."""
        if self._events:
            return self._take_event()
        if self.closed is not None:
            return None
        if self._frames:
            event = self._parse()
            if event is not None:
                return event
        if self._eof:
            return self._on_eof()
        return None

    def _take_event(self) -> Event:
        events = self._events
        i = self._ev_next
        event = events[i]
        if i + 1 == len(events):
            events.clear()
            self._ev_next = 0
        else:
            self._ev_next = i + 1
        return event

    def events(self) -> Iterator[Event]:
        """Iterate :meth:`next_event` until it returns None."""
        while (event := self.next_event()) is not None:
            yield event

    # -- output -----------------------------------------------------------

    @property
    def bytes_to_send(self) -> int:
        """How many bytes :meth:`data_to_send` would return now."""
        return self._writer.size

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the peer."""
        return self._writer.take()

    def data_to_send_chunk(self) -> bytes:
        """Take the next chunk of the bytes queued for the peer (b"" when
        none): small frames joined, a large frame on its own. Writing the
        chunks until b"" writes what :meth:`data_to_send` would return,
        without copying large frames into one joined buffer."""
        return self._writer.take_chunk()

    def send_text(self, data: str, *, compress: bool = True) -> None:
        """Queue a text message."""
        if not isinstance(data, str):
            raise TypeError(
                f"send_text() takes a str, not {type(data).__name__}; use send_binary() for bytes"
            )
        self._send(_TEXT, data.encode("utf-8"), compress)

    def send_utf8(self, data: bytes, *, compress: bool = True) -> None:
        """Queue a text message already encoded as UTF-8 (by the caller,
        from a ``str``: it is not checked again)."""
        self._send(_TEXT, data, compress)

    def send_binary(self, data: bytes | bytearray | memoryview, *, compress: bool = True) -> None:
        """Queue a binary message."""
        if type(data) is not bytes:  # bytes, the usual case, go as they are
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"send_binary() takes bytes-like data, not {type(data).__name__}")
            data = bytes(data)  # the caller may reuse its buffer
        self._send(_BINARY, data, compress)

    @staticmethod
    def prepare_message(data: str | bytes) -> bytes:
        """An unmasked, uncompressed frame for ``data``, built once and
        queued on many server connections with :meth:`send_prepared`."""
        if isinstance(data, str):
            return encode_frame(_TEXT, data.encode("utf-8"))
        return encode_frame(_BINARY, bytes(data))

    def send_prepared(self, frame: bytes) -> bool:
        """Queue a frame from :meth:`prepare_message`; False (nothing
        queued) where it cannot be used as is: a client (frames must be
        masked) or a connection that compresses."""
        if self.state is not State.OPEN:
            raise InvalidStateError(f"cannot send a message: the connection is {self.state.value}")
        if self.is_client or self._codec is not None:
            return False
        self._writer.queue(frame)
        return True

    @property
    def share_key(self) -> tuple[object, ...] | None:
        """Connections with equal keys (not None) send a message as the same
        bytes, so a fan-out builds its frame once per key
        (:meth:`prepare_shared`): one key for every server connection that
        does not compress, one per set of deflate parameters for those that
        compress each message on its own (no context takeover). None where
        the frame depends on this connection's own state: a client (masked),
        or a compressor that keeps its context between messages."""
        if self.is_client:
            return None
        codec = self._codec
        if codec is None or not codec.can_compress:
            return _PLAIN_KEY
        if not codec.local_no_takeover:
            return None
        options = codec.options
        return ("deflate", codec.local_bits, options.level, options.mem_level, options.min_size)

    def prepare_shared(self, data: str | bytes) -> bytes:
        """The frame this connection sends for ``data``, which every
        connection with the same :attr:`share_key` (not None) can send with
        :meth:`send_shared`; compressed when this one would compress it.
        ValueError where the frame is this connection's own (``share_key``
        None): building it would advance its compression context, or it
        would go unmasked from a client."""
        if self.share_key is None:
            raise ValueError("this connection's frames are its own (share_key is None): use send")
        if isinstance(data, str):
            opcode, payload = _TEXT, data.encode("utf-8")
        else:
            opcode, payload = _BINARY, bytes(data)
        codec = self._codec
        if codec is not None and codec.can_compress and len(payload) >= codec.options.min_size:
            # No context takeover: compress() starts and drops its own zlib
            # stream, so this connection's state is untouched.
            return build_frame(0x80 | 0x40 | opcode, codec.compress(payload), None)
        return encode_frame(opcode, payload)

    def send_shared(self, frame: bytes) -> None:
        """Queue a frame from :meth:`prepare_shared` of a connection with the
        same :attr:`share_key`."""
        if self.state is not State.OPEN:
            raise InvalidStateError(f"cannot send a message: the connection is {self.state.value}")
        if self.share_key is None:
            raise ValueError("this connection's frames are its own (share_key is None): use send")
        self._writer.queue(frame)

    def send_ping(self, data: bytes = b"") -> None:
        """Queue a ping; its payload is at most 125 bytes."""
        self._send_control(_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Queue an unsolicited pong (pings are answered automatically)."""
        self._send_control(_PONG, data)

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake; harmless if already closing or closed."""
        payload = encode_close_payload(code, reason)
        if self.state is State.OPEN:
            self._writer.control(_CLOSE, payload)
            self._close_sent = True
            self.state = State.CLOSING
        elif self.state is State.CONNECTING and self.closed is None:
            self.close_transport = True
            self._events.append(
                self._finish(Closed(1006, "closed before the handshake completed", False))
            )

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame with
        ``code`` if none was sent yet, then ask for the transport to close.
        Used by the I/O layer, e.g. for a keepalive timeout (1011)."""
        if self.closed is None:
            self._events.append(self._fail(code, reason))

    # -- internals --------------------------------------------------------

    def _send(self, opcode: int, data: bytes, compress: bool) -> None:
        if self.state is not State.OPEN:
            raise InvalidStateError(f"cannot send a message: the connection is {self.state.value}")
        self._writer.message(opcode, data, compress)

    def _send_control(self, opcode: int, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"ping/pong payload must be bytes or str, not {type(data).__name__}")
        if len(data) > 125:
            raise ValueError(f"ping/pong payload is {len(data)} bytes; at most 125 are allowed")
        if self.state is not State.OPEN:
            raise InvalidStateError(
                f"cannot send a ping/pong: the connection is {self.state.value}"
            )
        self._writer.control(opcode, bytes(data))

    def _queue(self, data: bytes) -> None:
        self._writer.queue(data)

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def _start_frames(self, rest: bytes | bytearray) -> None:
        self._frames = True
        if rest:
            self._reader.feed(rest)

    def _finish(self, event: Closed) -> Closed:
        self.state = State.CLOSED
        self.closed = event
        self._reader.clear()
        self._assembler.clear()
        self._frames = False
        return event

    def _fail(self, code: int, reason: str) -> Closed:
        if self.state in (State.OPEN, State.CLOSING) and not self._close_sent:
            data = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self._writer.control(_CLOSE, encode_close_payload(code, data))
            self._close_sent = True
        self.close_transport = True
        return self._finish(Closed(code, reason, False, ProtocolError(code, reason)))

    def _on_eof(self) -> Event | None:
        if self.state is State.CONNECTING:
            return self._handshake_eof()
        self.close_transport = True
        return self._finish(Closed(1006, "connection closed without a close frame", False))

    def _handshake_eof(self) -> Event | None:
        self._finish(Closed(1006, "connection closed during the opening handshake", False))
        return HandshakeFailed(HandshakeError(0, "connection closed during the opening handshake"))

    def _parse(self) -> Event | None:
        """Parse input until one event is ready or more bytes are needed."""
        reader = self._reader
        if not reader.buffered:
            return None
        assembler = self._assembler
        if reader.left < 0 and not assembler.opcode:
            # The common case, a whole unfragmented message, in C when it
            # can; whatever it declines is parsed below, from the same place.
            whole = reader.read_whole(self.max_message_size)
            if whole is not None:
                return Message(whole)
        try:
            while True:
                if reader.left < 0:
                    kind = reader.read_header(self._codec is not None)
                    if kind == NEED_MORE:
                        return None
                    if kind == CONTROL:
                        return self._control(reader.opcode, reader.control_payload)
                    assembler.start_frame(reader.opcode, reader.rsv1, reader.left)
                    if reader.left == 0:
                        reader.left = -1
                        message = assembler.payload(b"", reader.fin)
                        if message is not None:
                            return Message(message)
                        continue
                # Payload of the current data frame, as much as has arrived.
                take = reader.available()
                if take == 0:
                    return None
                left = reader.left
                dest = assembler.filling
                if dest is None and take < left and assembler.fill_worth(take, left, reader.fin):
                    dest = assembler.start_fill(left)
                if dest is not None:
                    reader.take_into(dest, take)
                    message = assembler.filled(take, reader.left == 0)
                else:
                    chunk = reader.take(take)
                    message = assembler.payload(chunk, reader.left == 0 and reader.fin)
                if reader.left == 0:
                    reader.left = -1
                if message is not None:
                    return Message(message)
        except ProtocolError as exc:
            return self._fail(exc.code, exc.reason)

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == _PING:
            if self.state is State.OPEN:
                self._writer.answer_ping(payload)
            return Ping(payload)
        if opcode == _PONG:
            return Pong(payload)
        # Close frame (RFC 6455 5.5.1, 7.1.5).
        if len(payload) == 1:
            return self._fail(1002, "close frame with a 1-byte payload")
        code = 1005
        reason = ""
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                return self._fail(1002, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(1007, "invalid UTF-8 in the close reason")
        if not self._close_sent:
            echo = payload[:2] if payload else b""
            self._writer.control(_CLOSE, echo)
            self._close_sent = True
        if not self.is_client:
            # The server closes the TCP connection first (RFC 6455 7.1.1).
            self.close_transport = True
        return self._finish(Closed(code, reason, True))

    def _open(
        self,
        subprotocol: str | None,
        codec: Deflate | None,
        ext: list[str],
        request: Request | None,
        response: Response | None,
    ) -> None:
        self.state = State.OPEN
        self.subprotocol = subprotocol
        self._codec = codec
        self._assembler.codec = codec
        self._writer.codec = codec
        self.extensions = ext
        self._events.append(Opened(subprotocol, ext, request, response))


class ClientConnection(Connection):
    """The client side: queues its opening handshake on creation."""

    is_client = True

    def __init__(
        self,
        url: str | WebSocketURL,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        extra_headers: Iterable[tuple[str, str]] | Headers = (),
        deflate: DeflateOptions | None = DeflateOptions(),  # noqa: B008 - frozen
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        key: str | None = None,
    ) -> None:
        super().__init__(max_message_size=max_message_size, deflate=deflate)
        self.url = parse_url(url) if isinstance(url, str) else url
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a list of str, not one str")
        self.offered_subprotocols = list(subprotocols)
        self.key = key or new_key()
        headers = Headers()
        headers.add("Host", self.url.host_header)
        headers.add("Upgrade", "websocket")
        headers.add("Connection", "Upgrade")
        headers.add("Sec-WebSocket-Key", self.key)
        headers.add("Sec-WebSocket-Version", "13")
        if origin is not None:
            headers.add("Origin", origin)
        if self.offered_subprotocols:
            headers.add("Sec-WebSocket-Protocol", ", ".join(self.offered_subprotocols))
        if deflate is not None:
            headers.add("Sec-WebSocket-Extensions", deflate.client_offer())
        if self.url.authorization is not None:
            headers.add("Authorization", self.url.authorization)
        for name, value in extra_headers:
            headers.add(name, value)
        self.request = Request("GET", self.url.resource, "HTTP/1.1", headers)
        self.response: Response | None = None
        self._head = HeadParser()
        self._pending: tuple[int, str, Headers, int] | None = None  # a refusal awaiting its body
        self._body = bytearray()
        self._queue(self.request.serialize())

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is not None:
            self._body += data
            self._maybe_refused()
            return
        try:
            head = self._head.feed(data)
            if head is None:
                return
            line, headers, rest = head
            status, reason = parse_status_line(line)
        except HandshakeError as exc:
            self._handshake_failed(HandshakeError(0, f"invalid HTTP response: {exc.reason}"))
            return
        if status != 101:
            length = headers.get("Content-Length", "0") or "0"
            want = min(int(length), MAX_HEAD) if length.isascii() and length.isdigit() else 0
            self._pending = (status, reason, headers, want)
            self._body += rest
            self._maybe_refused()
            return
        response = Response(status, reason, headers)
        self.response = response
        try:
            subprotocol, codec, ext = self._check_response(headers)
        except HandshakeError as exc:
            self._handshake_failed(HandshakeError(101, exc.reason, response=response))
            return
        self._open(subprotocol, codec, ext, self.request, response)
        self._start_frames(rest)

    def _maybe_refused(self, eof: bool = False) -> None:
        assert self._pending is not None
        status, reason, headers, want = self._pending
        if len(self._body) < want and not eof:
            return
        response = Response(status, reason, headers, bytes(self._body[:want]))
        self.response = response
        text = response.body.decode("utf-8", "replace").strip()
        message = f"server refused the WebSocket handshake with {status} {reason}"
        if text:
            message += f": {text[:200]}"
        self._handshake_failed(HandshakeError(status, message, response=response))

    def _handshake_failed(self, error: HandshakeError) -> None:
        error.request = self.request
        self.close_transport = True
        self._finish(Closed(1006, error.reason, False))
        self._events.append(HandshakeFailed(error))

    def _handshake_eof(self) -> Event | None:
        if self._pending is not None:
            self._maybe_refused(eof=True)
            return self._take_event() if self._events else None
        return super()._handshake_eof()

    def _check_response(self, headers: Headers) -> tuple[str | None, Deflate | None, list[str]]:
        if "websocket" not in token_list(headers.get_all("Upgrade")):
            raise HandshakeError(101, "response lacks Upgrade: websocket")
        if "upgrade" not in token_list(headers.get_all("Connection")):
            raise HandshakeError(101, "response lacks Connection: Upgrade")
        if headers.get_all("Sec-WebSocket-Accept") != [accept_key(self.key)]:
            raise HandshakeError(101, "wrong Sec-WebSocket-Accept")
        codec: Deflate | None = None
        ext: list[str] = []
        values = headers.get_all("Sec-WebSocket-Extensions")
        if values:
            try:
                answers = parse_extensions(values)
            except HandshakeError:
                raise HandshakeError(101, "malformed Sec-WebSocket-Extensions") from None
            for name, params in answers:
                if (
                    name != "permessage-deflate"
                    or self.deflate_options is None
                    or codec is not None
                ):
                    raise HandshakeError(101, f"server accepted an extension not offered: {name}")
                codec = self.deflate_options.client_accept(params)
            ext = [v.strip() for v in values]
        protocols = headers.get_all("Sec-WebSocket-Protocol")
        subprotocol = None
        if protocols:
            if len(protocols) != 1 or protocols[0].strip() not in self.offered_subprotocols:
                raise HandshakeError(101, f"server chose a subprotocol not offered: {protocols!r}")
            subprotocol = protocols[0].strip()
        return subprotocol, codec, ext


class ServerConnection(Connection):
    """The server side: parses the client's request, then is accepted or
    rejected by the application.

    ``origins``: None accepts any ``Origin``; else the request is refused
    with 403 unless :func:`~.handshake.check_origin` allows it."""

    def __init__(
        self,
        *,
        deflate: DeflateOptions | None = DeflateOptions(),  # noqa: B008 - frozen
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        origins: Sequence[OriginRule] | None = None,
    ) -> None:
        super().__init__(max_message_size=max_message_size, deflate=deflate)
        if isinstance(origins, (str, bytes)):
            raise TypeError(f"origins must be a list of origins such as [{origins!r}], not a str")
        self.origins: tuple[OriginRule, ...] | None = None if origins is None else tuple(origins)
        self.request: Request | None = None
        self._head: HeadParser | None = HeadParser()
        self._key = ""

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is None:  # request received, answer pending
            self._reader.feed(data)
            return
        try:
            head = self._head.feed(data)
            if head is None:
                return
            self._head = None
            line, headers, rest = head
            method, target, version = parse_request_line(line)
            request = Request(method, target, version, headers)
            self._key = validate_request(request)
            parse_extensions(headers.get_all("Sec-WebSocket-Extensions"))
            if self.origins is not None:
                check_origin(request, self.origins)
        except HandshakeError as exc:
            self._head = None
            self._refuse(exc)
            return
        self.request = request
        self._reader.feed(rest)
        self._events.append(
            RequestReceived(request, token_list(headers.get_all("Sec-WebSocket-Protocol")))
        )

    def accept(
        self,
        subprotocol: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Complete the handshake, optionally choosing one of the client's
        subprotocols."""
        request = self.request
        if request is None or self.state is not State.CONNECTING:
            raise InvalidStateError("accept() needs a received request that was not answered yet")
        offered = token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
        if subprotocol is not None and subprotocol.lower() not in offered:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client ({offered})"
            )
        headers = Headers()
        headers.add("Upgrade", "websocket")
        headers.add("Connection", "Upgrade")
        headers.add("Sec-WebSocket-Accept", accept_key(self._key))
        codec = None
        ext: list[str] = []
        if self.deflate_options is not None:
            offers = parse_extensions(request.headers.get_all("Sec-WebSocket-Extensions"))
            negotiated = self.deflate_options.server_negotiate(offers)
            if negotiated is not None:
                value, codec = negotiated
                headers.add("Sec-WebSocket-Extensions", value)
                ext = [value]
        if subprotocol is not None:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
        for name, value in extra_headers:
            headers.add(name, value)
        response = Response(101, "Switching Protocols", headers)
        self._queue(response.serialize())
        self._open(subprotocol, codec, ext, request, response)
        self._start_frames(b"")

    def reject(
        self,
        status: int = 403,
        body: str = "",
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Refuse the handshake with an HTTP error response."""
        if self.state is not State.CONNECTING or self.closed is not None:
            raise InvalidStateError("reject() is only possible before the handshake completes")
        if not isinstance(status, int) or not 300 <= status <= 599:
            raise ValueError(f"reject() takes an HTTP status from 300 to 599, not {status!r}")
        self._refuse(HandshakeError(status, body or "rejected", headers=Headers(extra_headers)))

    def _refuse(self, error: HandshakeError) -> None:
        response = error_response(error.status, error.reason, error.headers or ())
        self._queue(response.serialize())
        self.close_transport = True
        self._finish(Closed(1006, error.reason, False))
        self._events.append(HandshakeFailed(error))
