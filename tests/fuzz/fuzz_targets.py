"""Fuzz targets for wsloop's sans-I/O core: one function per target, each
taking the fuzzer's bytes and raising :class:`Finding` (or anything else)
when the core misbehaves.

What counts as misbehaving. The core's contract for hostile input is that
``receive_data`` / ``next_event`` never raise: a broken peer becomes a
:class:`~wsloop.protocol.Closed` event carrying a
:class:`~wsloop.protocol.ProtocolError` (1002, 1007, 1009) or, during the
handshake, a :class:`~wsloop.protocol.HandshakeFailed` event carrying a
:class:`~wsloop.protocol.HandshakeError`. The HTTP head parser and the
handshake's parsing functions raise :class:`HandshakeError` and nothing
else. So any other exception is a finding; so are a second ``Closed``, an
event after ``Closed``, a message over the size limit, a wrong type, and
an input that takes more than a second (a hang). Crashes of the C
accelerator kill the process, which the runner reports.

The same functions serve atheris (``run.py``, coverage-guided, by hand or
bounded in the test command) and the plain replay of the corpus under
pytest (``test_fuzz.py``).

Frame targets read their input as a small program, so that mutations stay
near well-formed frames instead of being refused at the first byte::

    byte 0       how the stream is cut into receive_data calls (1..256 bytes)
    then records: a header byte h, then its operands
      h & 0x0F   opcode          h & 0x80  FIN          h & 0x40  RSV1
      (h >> 4) & 3:
        0  raw: a length byte n, then n bytes added to the stream as they are
        1  frame: a length byte n (255: two more bytes give it), n payload
           bytes; masked as the peer must; with RSV1 and deflate on, the
           payload is really compressed (a whole message, or this fragment
           of one)
        2  huge: a frame that declares an 8-byte length from the next 8
           bytes, followed by what is left of a length byte's worth
        3  wrongly masked: like 1, masked when it must not be and not when
           it must
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    HandshakeError,
    HandshakeFailed,
    Message,
    Opened,
    Ping,
    Pong,
    ProtocolError,
    RequestReceived,
    ServerConnection,
    accept_key,
    apply_mask,
)
from wsloop.protocol.handshake import (
    HeadParser,
    Request,
    parse_extensions,
    parse_request_line,
    parse_status_line,
    validate_request,
)

MAX_MESSAGE = 64 * 1024  # small, so the fuzzer reaches the limit
MAX_SECONDS = 1.0  # one input taking longer is a hang
#: The close codes the core fails a connection with.
FAIL_CODES = {1002, 1007, 1009}
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n"
)


class Finding(AssertionError):
    """The core broke its contract on this input."""


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def _compress(payload: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def build_stream(program: bytes, *, masked: bool, deflate: bool) -> tuple[int, bytes]:
    """Turn a frame program (see the module docstring) into (cut size, bytes)."""
    if not program:
        return 1, b""
    cut = program[0] + 1
    out = bytearray()
    i = 1
    n_prog = len(program)
    while i < n_prog:
        h = program[i]
        i += 1
        mode = (h >> 4) & 3
        opcode = h & 0x0F
        fin = h & 0x80
        rsv1 = h & 0x40
        if mode == 0:
            n = program[i] if i < n_prog else 0
            out += program[i + 1 : i + 1 + n]
            i += 1 + n
            continue
        if mode == 2:
            declared = int.from_bytes(program[i : i + 8].ljust(8, b"\0"), "big")
            i += 8
            n = program[i] if i < n_prog else 0
            payload = program[i + 1 : i + 1 + n]
            i += 1 + n
            head = bytes([fin | rsv1 | opcode, (0x80 if masked else 0) | 127])
            out += head + declared.to_bytes(8, "big")
            if masked:
                out += b"\x00\x00\x00\x00"
            out += payload
            continue
        n = program[i] if i < n_prog else 0
        i += 1
        if n == 255:
            n = int.from_bytes(program[i : i + 2].ljust(2, b"\0"), "big")
            i += 2
        payload = program[i : i + n]
        i += n
        if rsv1 and deflate and opcode in (0, 1, 2):
            payload = _compress(payload)
        mask = masked if mode == 1 else not masked
        n = len(payload)
        if n < 126:
            head = bytes([fin | rsv1 | opcode, (0x80 if mask else 0) | n])
        elif n < 65536:
            head = bytes([fin | rsv1 | opcode, (0x80 if mask else 0) | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([fin | rsv1 | opcode, (0x80 if mask else 0) | 127]) + n.to_bytes(8, "big")
        if mask:
            key = bytes([(h * 7 + n) & 0xFF, 0x5A, 0xA5, n & 0xFF])
            out += head + key + apply_mask(payload, key)
        else:
            out += head + payload
    return cut, bytes(out)


def _opened_pair(is_client: bool, deflate: bool) -> ClientConnection | ServerConnection:
    """The end under test, open (handshake done in memory)."""
    options = DeflateOptions() if deflate else None
    client = ClientConnection("ws://example.com/", deflate=options, max_message_size=MAX_MESSAGE)
    server = ServerConnection(deflate=options, max_message_size=MAX_MESSAGE)
    server.receive_data(client.data_to_send())
    event = server.next_event()
    assert isinstance(event, RequestReceived)
    server.accept()
    assert isinstance(server.next_event(), Opened)
    client.receive_data(server.data_to_send())
    assert isinstance(client.next_event(), Opened)
    assert (client.extensions != []) == deflate
    return client if is_client else server


def drive(conn: ClientConnection | ServerConnection, chunks: list[bytes], echo: bool) -> None:
    """Feed the chunks, then EOF; check every event; answer messages."""
    closed = 0
    after_close = False
    started = time.monotonic()
    for chunk in [*chunks, None]:
        if chunk is None:
            conn.receive_eof()
        else:
            conn.receive_data(chunk)
        for event in conn.events():
            if closed:
                after_close = True
            if isinstance(event, Closed):
                closed += 1
                if event.error is not None:
                    if not isinstance(event.error, (ProtocolError, HandshakeError)):
                        raise Finding(f"unexpected error type: {event.error!r}")
                    if isinstance(event.error, ProtocolError) and (
                        event.error.code not in FAIL_CODES
                    ):
                        raise Finding(f"failed with an unexpected code: {event.error!r}")
            elif isinstance(event, Message):
                data = event.data
                if not isinstance(data, (str, bytes)):
                    raise Finding(f"message of type {type(data).__name__}")
                size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
                if size > MAX_MESSAGE:
                    raise Finding(f"a {size}-byte message passed the {MAX_MESSAGE}-byte limit")
                if echo and conn.closed is None and conn.state.value == "open":
                    if isinstance(data, str):
                        conn.send_text(data)
                    else:
                        conn.send_binary(data)
            elif isinstance(event, (Ping, Pong)):
                if not isinstance(event.data, bytes) or len(event.data) > 125:
                    raise Finding(f"bad control payload {event.data!r}")
            elif isinstance(event, (HandshakeFailed, RequestReceived, Opened)):
                pass
            else:
                raise Finding(f"unknown event {event!r}")
        out = conn.data_to_send()
        if not isinstance(out, bytes):
            raise Finding(f"data_to_send returned {type(out).__name__}")
        if time.monotonic() - started > MAX_SECONDS:
            raise Finding(f"one input took over {MAX_SECONDS}s")
    if closed != 1 or after_close:
        raise Finding(f"{closed} Closed events (after EOF there must be exactly one, last)")
    if not conn.close_transport:
        raise Finding("closed, yet the core does not ask to close the transport")


def _frames_target(is_client: bool, deflate: bool) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        conn = _opened_pair(is_client, deflate)
        # A server receives masked frames, a client unmasked ones.
        cut, stream = build_stream(data, masked=not is_client, deflate=deflate)
        drive(conn, _cut(stream, cut), echo=bool(data[:1]) and data[0] & 1 == 1)

    return target


def server_handshake(data: bytes) -> None:
    """A server reads a request (the fuzzer's bytes, cut at byte 0's size;
    frames may follow it), accepts it if valid, and goes on."""
    cut = (data[0] + 1) if data else 1
    conn = ServerConnection(deflate=DeflateOptions(), max_message_size=MAX_MESSAGE, origins=None)
    started = time.monotonic()
    for chunk in [*_cut(data[1:], cut), None]:
        if chunk is None:
            conn.receive_eof()
        else:
            conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, RequestReceived):
                request = conn.request
                if request is None or not request.path.startswith("/"):
                    raise Finding(f"accepted request with target {request!r}")
                if any(ord(c) < 0x21 or ord(c) > 0x7E for c in request.path):
                    raise Finding(f"request target not printable ASCII: {request.path!r}")
                conn.accept()
            elif isinstance(event, HandshakeFailed):
                status = event.error.status
                if not isinstance(event.error, HandshakeError):
                    raise Finding(f"refused with {event.error!r}")
                if status == 0 and chunk is None:
                    continue  # the client left before its request was whole
                if not 400 <= status <= 505:
                    raise Finding(f"refused with {event.error!r}")
                reply = conn.data_to_send()
                if not reply.startswith(f"HTTP/1.1 {status} ".encode()):
                    raise Finding(f"refusal does not say its status: {reply[:60]!r}")
            elif (
                isinstance(event, Closed)
                and event.error is not None
                and not isinstance(event.error, (ProtocolError, HandshakeError))
            ):
                raise Finding(f"unexpected error type: {event.error!r}")
        conn.data_to_send()
        if time.monotonic() - started > MAX_SECONDS:
            raise Finding(f"one input took over {MAX_SECONDS}s")
    if conn.closed is None:
        raise Finding("no Closed event after EOF")


def client_handshake(data: bytes) -> None:
    """A client reads a response (the fuzzer's bytes; ``ACCEPTKEY`` in them
    is replaced by the right Sec-WebSocket-Accept, so the fuzzer can reach
    the open state and the frames after it)."""
    cut = (data[0] + 1) if data else 1
    conn = ClientConnection(
        "ws://example.com/chat",
        deflate=DeflateOptions(),
        max_message_size=MAX_MESSAGE,
        subprotocols=["chat", "v2"],
        key=KEY,
    )
    conn.data_to_send()
    body = data[1:].replace(b"ACCEPTKEY", accept_key(conn.key).encode())
    started = time.monotonic()
    for chunk in [*_cut(body, cut), None]:
        if chunk is None:
            conn.receive_eof()
        else:
            conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, HandshakeFailed) and not isinstance(event.error, HandshakeError):
                raise Finding(f"refused with {event.error!r}")
            if (
                isinstance(event, Closed)
                and event.error is not None
                and not isinstance(event.error, (ProtocolError, HandshakeError))
            ):
                raise Finding(f"unexpected error type: {event.error!r}")
            if isinstance(event, Opened) and conn.subprotocol not in (None, "chat", "v2"):
                raise Finding(f"opened with a subprotocol not offered: {conn.subprotocol!r}")
        conn.data_to_send()
        if time.monotonic() - started > MAX_SECONDS:
            raise Finding(f"one input took over {MAX_SECONDS}s")
    if conn.closed is None:
        raise Finding("no Closed event after EOF")


def http_head(data: bytes) -> None:
    """The HTTP head parser and the parsing functions around it: they
    either return or raise HandshakeError, nothing else."""
    cut = (data[0] + 1) if data else 1
    parser = HeadParser()
    head = None
    try:
        for chunk in _cut(data[1:], cut):
            head = parser.feed(chunk)
            if head is not None:
                break
    except HandshakeError:
        return
    if head is None:
        return
    line, headers, rest = head
    if not isinstance(line, str) or not isinstance(rest, (bytes, bytearray)):
        raise Finding(f"head parsed as {head!r}")
    for parse in (parse_request_line, parse_status_line):
        try:
            parse(line)
        except HandshakeError:
            pass
    try:
        method, target, version = parse_request_line(line)
        validate_request(Request(method, target, version, headers))
    except HandshakeError:
        pass
    try:
        parse_extensions(headers.get_all("Sec-WebSocket-Extensions"))
    except HandshakeError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "server_frames": _frames_target(is_client=False, deflate=False),
    "server_frames_deflate": _frames_target(is_client=False, deflate=True),
    "client_frames": _frames_target(is_client=True, deflate=False),
    "client_frames_deflate": _frames_target(is_client=True, deflate=True),
    "server_handshake": server_handshake,
    "client_handshake": client_handshake,
    "http_head": http_head,
}
