"""The WebSocket connection state machine, for either role.

Theory of operation
-------------------
A :class:`Connection` is a pure function of the bytes it is given and the
calls made on it: it owns no socket, no clock and no thread. The I/O layer

1. feeds whatever arrived with :meth:`receive_data` (or :meth:`receive_eof`),
2. drains :meth:`next_event` until it returns None, acting on each event,
3. writes :meth:`data_to_send` to the peer, and
4. closes the transport once :attr:`close_transport` is True.

Parsing is lazy (as in h11): ``receive_data`` only buffers, and every call to
``next_event`` parses just far enough to produce one event. That ordering is
observable: when a valid message is followed by a bad frame, the application
sees (and can answer) the message before the connection fails. (Two
shortcuts keep that order: with the C accelerator, whole data frames that
arrive into an empty buffer are decoded on arrival, sparing a copy; and the
rest of a large binary message being assembled in place is copied into it on
arrival, see below.)

Data frames are consumed as their payload arrives rather than once complete:
each chunk is unmasked, inflated and UTF-8 checked immediately, so an invalid
byte fails the connection the moment it arrives (RFC 6455 8.1 "fail fast"),
and a large message is not held twice in memory. The last frame of an
uncompressed binary message goes one better once an eighth of the message
has arrived: the whole message is allocated once (a ``PayloadBuffer``) and
every later piece is copied straight into it as it arrives, instead of being
buffered, copied out and joined (three copies and as many allocations per
piece). The eighth bounds what a peer can make this end reserve ahead of
what it has sent.

States: CONNECTING (opening handshake) -> OPEN -> CLOSING (this end sent a
close frame) -> CLOSED. A :class:`~.events.Closed` event is produced exactly
once and nothing follows it. Timers (open, close, keepalive timeouts) belong
to the I/O layer, which calls :meth:`fail` or closes the transport.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import Final

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
    CONTROL_OPCODES,
    KNOWN_OPCODES,
    PayloadBuffer,
    PayloadBufferLike,
    apply_mask,
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

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ClientConnection",
    "Connection",
    "ServerConnection",
    "State",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
# Final: compiled code inlines them instead of looking them up per frame.
_TEXT: Final = 1
_BINARY: Final = 2
_CLOSE: Final = 8
_PING: Final = 9
_PONG: Final = 10
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# Final: compiled code keeps them in C statics, not a module-dict lookup per frame.
_read_frame: Final = read_frame
_build_frame: Final = build_frame
# Assemble a message in place once this share of it has arrived (1/8).
_FILL_RATIO: Final = 8


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def _check_max_size(value: int | None) -> int | None:
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
        self.max_message_size = _check_max_size(max_message_size)
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
        self._out: list[bytes] = []
        self._out_size = 0
        self._in = bytearray()
        self._pos = 0
        self._eof = False
        self._close_sent = False
        self._frames = False  # whether frames are being parsed
        self._mask_pool = b""
        self._mask_i = 0
        # The frame being read: remaining payload bytes, or -1 between frames.
        self._f_left = -1
        self._f_fin = False
        self._f_mask: bytes | None = None
        self._f_off = 0
        # The message being read: opcode, or 0 when none is in progress.
        self._m_op = 0
        self._m_deflated = False
        self._m_size = 0
        self._m_parts: list[bytes] | list[str] = []
        self._m_decoder: codecs.IncrementalDecoder | None = None
        # The message being assembled in place (its bytes so far: _m_size).
        self._fill: PayloadBufferLike | None = None

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
        pos = 0
        if self._fill is not None and not len(self._in):
            # More of the message being assembled: straight into it.
            pos = min(self._f_left, end)
            event = self._fill_from(data, 0, pos)
            if event is None:
                return  # all of data was payload
            self._events.append(event)
        if not (len(self._in) or _read_frame is None or self._f_left >= 0 or self._m_op):
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
            self._in += data[pos:end] if pos or end < len(data) else data

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
        return self._out_size

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the peer."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        return data

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

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
        self._queue(frame)
        return True

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
            self._queue(encode_frame(_CLOSE, payload, mask_key=self._mask_key()))
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
        first_byte = 0x80 | opcode
        codec = self._codec
        if (
            codec is not None
            and compress
            and codec.can_compress
            and len(data) >= codec.options.min_size
        ):
            data = codec.compress(data)
            first_byte |= 0x40  # RSV1: compressed
        self._queue(_build_frame(first_byte, data, self._mask_key() if self.is_client else None))

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
        self._queue(encode_frame(opcode, bytes(data), mask_key=self._mask_key()))

    def _mask_key(self) -> bytes | None:
        if not self.is_client:
            return None
        i = self._mask_i
        if i >= len(self._mask_pool):
            self._mask_pool = os.urandom(256)
            i = 0
        self._mask_i = i + 4
        return self._mask_pool[i : i + 4]

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def _start_frames(self, rest: bytes) -> None:
        self._frames = True
        self._in += rest

    def _finish(self, event: Closed) -> Closed:
        self.state = State.CLOSED
        self.closed = event
        self._in = bytearray()
        self._pos = 0
        self._m_parts = []
        self._m_decoder = None
        self._fill = None
        self._frames = False
        return event

    def _fail(self, code: int, reason: str) -> Closed:
        if self.state in (State.OPEN, State.CLOSING) and not self._close_sent:
            data = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self._queue(
                encode_frame(_CLOSE, encode_close_payload(code, data), mask_key=self._mask_key())
            )
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
        buf = self._in
        if len(buf) <= self._pos:
            return None
        if self._f_left < 0 and not self._m_op and read_frame is not None:
            # The common case, a whole unfragmented message, in C when it
            # can; whatever it declines is parsed below, from the same place.
            limit = self.max_message_size
            got = read_frame(
                buf, self._pos, len(buf), self.is_client, -1 if limit is None else limit
            )
            if got is not None:
                self._consume(got[1] - self._pos)
                return Message(got[0])
        while True:
            pos = self._pos
            avail = len(buf) - pos
            if self._f_left < 0:
                if avail < 2:
                    break
                b0 = buf[pos]
                b1 = buf[pos + 1]
                opcode = b0 & 0x0F
                masked = b1 & 0x80
                length = b1 & 0x7F
                if opcode not in KNOWN_OPCODES:
                    return self._fail(1002, f"unknown opcode {opcode:#x}")
                if b0 & 0x30:
                    return self._fail(1002, "RSV2/RSV3 set without a negotiated extension")
                rsv1 = bool(b0 & 0x40)
                fin = bool(b0 & 0x80)
                if bool(masked) == self.is_client:
                    which = "masked" if masked else "unmasked"
                    return self._fail(
                        1002, f"{which} frame from the {'server' if masked else 'client'}"
                    )
                if opcode in CONTROL_OPCODES:
                    if not fin:
                        return self._fail(1002, "fragmented control frame")
                    if length > 125:
                        return self._fail(1002, "control frame payload over 125 bytes")
                    if rsv1:
                        return self._fail(1002, "RSV1 set on a control frame")
                elif rsv1 and (self._codec is None or opcode == 0):
                    return self._fail(1002, "RSV1 set without permessage-deflate on a first frame")
                head = 2
                if length == 126:
                    if avail < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    head = 4
                    if length < 126:
                        return self._fail(1002, "frame length not minimally encoded")
                elif length == 127:
                    if avail < 10:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    head = 10
                    if length < 65536 or length >> 63:
                        return self._fail(1002, "frame length not minimally encoded")
                if masked:
                    head += 4
                if avail < head:
                    break
                key = bytes(buf[pos + head - 4 : pos + head]) if masked else None
                if opcode >= 8:
                    if avail < head + length:
                        break
                    payload = bytes(buf[pos + head : pos + head + length])
                    self._consume(head + length)
                    if key is not None:
                        payload = apply_mask(payload, key)
                    return self._control(opcode, payload)
                if opcode == 0:
                    if not self._m_op:
                        return self._fail(1002, "continuation frame without a message to continue")
                else:
                    if self._m_op:
                        return self._fail(1002, "new message started before the last one finished")
                    self._m_op = opcode
                    self._m_deflated = rsv1
                    self._m_size = 0
                    self._m_parts = []
                    self._m_decoder = None
                limit = self.max_message_size
                if not self._m_deflated and limit is not None and self._m_size + length > limit:
                    return self._fail(1009, f"message over the {limit}-byte limit")
                self._consume(head)
                self._f_left = length
                self._f_fin = fin
                self._f_mask = key
                self._f_off = 0
                pos = self._pos
                avail = len(buf) - pos
                if length == 0:
                    event = self._payload(b"")
                    if event is not None:
                        return event
                    continue
            # Payload of the current data frame, as much as has arrived.
            take = min(self._f_left, avail)
            if take == 0:
                break
            if self._fill is None and take < self._f_left and self._fill_worth(take):
                self._start_fill()
            if self._fill is not None:
                event = self._fill_from(buf, pos, take)
                self._consume(take)
                if event is not None:
                    return event
                continue
            if pos == 0 and take == len(buf):
                chunk = bytes(buf)  # the common case: one whole frame, one copy
            else:
                with memoryview(buf) as view:
                    chunk = bytes(view[pos : pos + take])  # one copy, not two
            self._consume(take)
            event = self._payload(chunk)
            if event is not None:
                return event
        return None

    def _consume(self, n: int) -> None:
        pos = self._pos + n
        if pos >= len(self._in):
            self._in.clear()
            pos = 0
        elif pos > 65536 and pos * 2 > len(self._in):
            del self._in[:pos]
            pos = 0
        self._pos = pos

    def _fill_worth(self, take: int) -> bool:
        """Whether to assemble the rest of this message in place, given
        ``take`` more bytes of it now, not all of it (the caller checks):
        the last frame of an uncompressed binary message, an eighth of it
        received."""
        return (
            self._f_fin
            and self._m_op == _BINARY
            and not self._m_deflated
            and self._f_left - take <= _FILL_RATIO * (self._m_size + take)
        )

    def _start_fill(self) -> None:
        dest = PayloadBuffer(self._m_size + self._f_left)
        for part in self._m_parts:  # earlier frames of a fragmented message
            dest.fill(part, 0, len(part), None, 0)  # type: ignore[arg-type]
        self._m_parts = []
        self._fill = dest

    def _fill_from(self, src: bytes | bytearray | memoryview, start: int, n: int) -> Event | None:
        """Copy ``n`` payload bytes from ``src[start:]`` into the message
        being assembled; its Message event once that was the last of it."""
        dest = self._fill
        assert dest is not None
        key = self._f_mask
        dest.fill(src, start, n, key, self._f_off)
        self._m_size += n
        if key is not None:
            self._f_off += n
        self._f_left -= n
        if self._f_left:
            return None
        self._fill = None
        self._f_left = -1
        self._m_op = 0
        return Message(dest.take())

    def _payload(self, chunk: bytes) -> Event | None:
        """Take a piece of the current data frame; an event when it ends a
        message or breaks the protocol."""
        key = self._f_mask
        if key is not None and chunk:
            chunk = apply_mask(chunk, key, self._f_off)
            self._f_off += len(chunk)
        self._f_left -= len(chunk)
        done = self._f_left == 0 and self._f_fin
        if self._f_left == 0:
            self._f_left = -1
        limit = self.max_message_size
        if self._m_deflated:
            codec = self._codec
            assert codec is not None
            budget = None if limit is None else limit - self._m_size
            try:
                data = codec.decompress(chunk, budget) if chunk else b""
                if done and (budget is None or len(data) <= budget):
                    data += codec.end_message(None if budget is None else budget - len(data))
            except ProtocolError as exc:
                return self._fail(exc.code, exc.reason)
            self._m_size += len(data)
            if limit is not None and self._m_size > limit:
                return self._fail(1009, f"message over the {limit}-byte limit after decompression")
        else:
            data = chunk
            self._m_size += len(data)
        parts: list[bytes] | list[str] = self._m_parts
        if self._m_op == _TEXT:
            decoder = self._m_decoder
            if done and decoder is None and not parts:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    return self._fail(1007, "invalid UTF-8 in a text message")
                self._m_op = 0
                return Message(text)
            if decoder is None:
                decoder = self._m_decoder = _utf8_decoder()
            try:
                piece = decoder.decode(data, done)
            except UnicodeDecodeError:
                return self._fail(1007, "invalid UTF-8 in a text message")
            if piece:
                parts.append(piece)  # type: ignore[arg-type]
            if done:
                self._m_op = 0
                self._m_decoder = None
                self._m_parts = []
                return Message("".join(parts))  # type: ignore[arg-type]
            return None
        if done and not parts:
            self._m_op = 0
            return Message(data)
        if data:
            parts.append(data)  # type: ignore[arg-type]
        if done:
            self._m_op = 0
            self._m_parts = []
            return Message(b"".join(parts))  # type: ignore[arg-type]
        return None

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == _PING:
            if self.state is State.OPEN:
                self._queue(encode_frame(_PONG, payload, mask_key=self._mask_key()))
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
            self._queue(encode_frame(_CLOSE, echo, mask_key=self._mask_key()))
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
            want = min(int(length), MAX_HEAD) if length.isdigit() else 0
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
            self._in += data
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
        self._in += rest
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
