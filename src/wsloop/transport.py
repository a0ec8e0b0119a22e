"""A connected stream, with optional TLS, driven by any :class:`~wsloop.loops.Loop`.

:class:`Transport` reads and writes a non-blocking socket on the loop's fd
watches (``add_reader``/``add_writer``), the one operation every backend
has, so a connection behaves the same on all of them.

TLS runs through :class:`ssl.SSLObject` and a pair of :class:`ssl.MemoryBIO`
buffers rather than ``ssl.SSLSocket``: the loop only ever sees the raw
socket's readiness, so TLS works identically on every backend (an
``SSLSocket`` can hold decrypted bytes that no fd readiness announces).

Bytes flow one way through here: socket -> (TLS) -> ``protocol.data_received``,
and ``write`` -> (TLS) -> socket. The transport buffers what the socket does
not take at once and tells the protocol when that buffer drains below its
low watermark after having gone over its high watermark.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any, Final, Protocol

from .loops import Loop

__all__ = ["StreamProtocol", "Transport"]

logger = logging.getLogger("wsloop")

# Reads go into one preallocated buffer per thread (recv_into), never a new
# bytes object per read (docs/performance.md, "Reads"). The protocol copies
# what it keeps before data_received returns.
READ_SIZE = 1024 * 1024  # per thread, not per connection: a 256 KiB message is one read
SEND_SIZE = 1024 * 1024
# A read whose bytes took the protocol longer than SLOW_READ seconds to
# process, at under SLOW_RATE bytes a second, makes the next read as much
# smaller as it was slower (down to READ_MIN); fast ones double it back.
# What a peer can make this connection's turn on the loop cost is bounded
# so, whatever its bytes cost to process (a flood of one-byte frames costs
# ~100x a large message per byte, issue 17), and other connections get their
# turn in between. Large messages are processed at hundreds of MB/s (tens
# under valgrind) and keep their large reads.
READ_MIN: Final = 16 * 1024
# Large writes are encrypted this much at a time, each piece's records
# taken out of the MemoryBIO before the next goes in: else the BIO grows
# (reallocating and zeroing) to hold a whole 16 MiB message once more
# beside the message and its encrypted copy.
TLS_WRITE_CHUNK: Final = 256 * 1024
# The most plaintext one TLS record holds (2**14 bytes, RFC 8446 5.1).
TLS_RECORD_MAX: Final = 16 * 1024
SLOW_READ: Final = 0.01
SLOW_RATE: Final = 20_000_000
_per_thread = threading.local()

# A socket's two calls per message: the C accelerator's send/recv_into on
# the fd (the socket methods' results and exceptions, without their
# argument parsing and GIL round trip), or the socket's own methods. Chosen
# here, once; each transport keeps what they take (fd or socket) as _io.
_send: Callable[[Any, bytes | memoryview], int]
_recv_into: Callable[[Any, memoryview], int]
try:
    from ._speedups import recv_into as _recv_into
    from ._speedups import send as _send

    _ON_FD = True
except ImportError:
    _send = socket.socket.send
    _recv_into = socket.socket.recv_into
    _ON_FD = False


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_per_thread, "view", None)
    if view is None:
        view = _per_thread.view = memoryview(bytearray(READ_SIZE))
    return view


# The last large buffers written on this thread are kept a little longer
# instead of freed at once, so that the heap does not shrink and grow again
# with every large message (docs/performance.md, "Large messages").
RETIRE_MIN: Final = 64 * 1024
RETIRE_MAX: Final = 4 * 1024 * 1024
RETIRE_COUNT: Final = 2


def _retire(data: bytes) -> None:
    if RETIRE_MIN <= len(data) <= RETIRE_MAX:
        retired: deque[bytes] | None = getattr(_per_thread, "retired", None)
        if retired is None:
            retired = _per_thread.retired = deque(maxlen=RETIRE_COUNT)
        retired.append(data)


class StreamProtocol(Protocol):
    """What a :class:`Transport` calls, always on the loop's thread."""

    def data_received(self, data: memoryview, n: int) -> None:
        """The first ``n`` (> 0) bytes of ``data`` arrived. ``data`` is the
        transport's read buffer, reused by the next read: copy what you
        keep. (Lent whole rather than as a ``data[:n]`` view: slicing and
        releasing a view per read cost more than parsing a small frame.)"""

    def eof_received(self) -> None: ...

    def write_drained(self) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


class Transport:
    """One connected stream: what the layers above write to and pause.

    Create one on the loop's thread; use it only there. It starts reading at
    once.
    """

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: StreamProtocol,
        *,
        high_water: int = 64 * 1024,
        low_water: int | None = None,
    ) -> None:
        sock.setblocking(False)
        self.loop = loop
        self.protocol = protocol
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        #: The peer's and our own address, as the socket reports them.
        self.peername: Any = None
        self.sockname: Any = None
        try:
            self.peername = sock.getpeername()
        except OSError:
            pass
        try:
            self.sockname = sock.getsockname()
        except OSError:
            pass
        self._over_high = False
        self._reading = False
        self._paused = False
        self._closing = False
        self._closed = False
        self._eof = False
        # The peer's close_notify, decrypted with records read before a pause:
        # reported when reading resumes, as a clear EOF would be.
        self._tls_ended = False
        self._tls: ssl.SSLObject | None = None
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._tls_done: Callable[[BaseException | None], None] | None = None
        # This thread's read buffer, looked up once: the transport is used
        # only on the thread that created it (the loop's).
        self._view = _read_buffer()
        self._read_size = READ_SIZE
        self.sock = sock
        self._fd = sock.fileno()
        self._io: Any = self._fd if _ON_FD else sock
        self._buf: deque[bytes] = deque()
        # How much of _buf[0] the kernel has taken: the rest goes out as a
        # memoryview slice, never as a copy of the unsent remainder.
        self._head_sent = 0
        self._buffered = 0
        self._writer = False
        self._start_reading()

    # -- public ---------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes accepted by :meth:`write` and not yet taken by the kernel."""
        return self._buffered

    @property
    def is_closing(self) -> bool:
        return self._closing or self._closed

    @property
    def tls(self) -> ssl.SSLObject | None:
        return self._tls

    def expect_drain(self) -> bool:
        """Ask for ``write_drained`` once the buffer falls to the low
        watermark; False if it already has (nothing will be reported)."""
        if self._buffered > self.low_water:
            self._over_high = True
            return True
        return False

    def set_protocol(self, protocol: StreamProtocol) -> None:
        self.protocol = protocol

    def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Run a TLS handshake over this stream, then call ``done(None)`` (or
        ``done(error)``); from then on data is encrypted transparently."""
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._tls_in, self._tls_out, server_side=server_side, server_hostname=server_hostname
        )
        self._tls_done = done
        self._handshake()

    def write(self, data: bytes) -> None:
        if self._closing or self._closed or not data:
            return
        tls = self._tls
        if tls is None:
            self._write_raw(data)
            return
        tls_out = self._tls_out
        assert tls_out is not None
        view = memoryview(data) if len(data) > TLS_WRITE_CHUNK else data
        for at in range(0, len(data), TLS_WRITE_CHUNK):
            try:
                tls.write(view[at : at + TLS_WRITE_CHUNK])
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            records = tls_out.read()
            if records:
                self._write_raw(records)
            if self._closed:
                return

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            self._stop_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if not self._closed and not self._eof:
                self._start_reading()
                if self._tls is not None and self._tls_done is None:
                    # Records the kernel already delivered wait in the
                    # MemoryBIO (and plaintext in the SSLObject): no new
                    # readiness will announce them, so read them now.
                    assert self._tls_in is not None
                    if self._tls_in.pending or self._tls.pending() or self._tls_ended:
                        self.loop.call_soon(self._read_tls_resumed)

    def close(self) -> None:
        """Close once everything written so far has been sent."""
        if self._closing or self._closed:
            return
        self._closing = True
        self._stop_reading()
        if self._tls is not None and self._tls_done is None:
            try:
                self._tls.unwrap()  # queue close_notify
            except (ssl.SSLError, ValueError):
                pass
            self._flush_tls()
        self._close_raw()

    def abort(self, exc: BaseException | None = None) -> None:
        """Close now, dropping whatever is still buffered."""
        self._finish(exc)

    # -- internals ------------------------------------------------------------

    def _received(self, buffer: memoryview, n: int) -> None:
        """``n`` bytes arrived in ``buffer``, or none yet (-1): decrypt and
        pass them on."""
        if self._tls is None:
            if n > 0:
                self.protocol.data_received(buffer, n)
            return
        assert self._tls_in is not None
        if n > 0:
            self._tls_in.write(buffer[:n])
        if self._tls_done is not None:
            self._handshake()
            return
        self._read_tls()

    def _read_tls(self) -> None:
        """Decrypt what the BIO holds and pass it on: the plaintext of all
        the records that one socket read brought in one ``data_received``
        (as a clear read passes all its frames at once), so that what the
        protocol sends in answer goes out in one write, not one per record."""
        tls = self._tls
        tls_in = self._tls_in
        assert tls is not None and tls_in is not None
        if self._paused or self._closed:
            self._flush_tls()
            return
        buffer = self._view
        # Given a buffer, SSLObject.read returns a count; typeshed says bytes,
        # and compiled code checks what the annotation says.
        read_into: Any = tls.read
        filled = 0
        ended = False
        error: ssl.SSLError | None = None
        while True:
            try:
                n: int = read_into(READ_SIZE - filled, buffer[filled:] if filled else buffer)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._flush_tls()
                ended = True
                break
            except ssl.SSLError as exc:
                error = exc
                break
            if not n:
                ended = True
                break
            filled += n
            # Nothing left in the BIO and no decrypted bytes held: a further
            # read could only raise SSLWantReadError, which costs more than
            # a small record's decryption. (OpenSSL takes a record from the
            # BIO only to process it, as Python never turns its read-ahead
            # on: a partial one waits for the bytes a readable event brings.)
            more = tls_in.pending or tls.pending()
            if more and READ_SIZE - filled >= TLS_RECORD_MAX:
                continue
            self.protocol.data_received(buffer, filled)
            filled = 0
            if not more or self._paused or self._closed:
                break
        if filled:  # what came before the end or the error
            self.protocol.data_received(buffer, filled)
        if self._closed:
            return
        if error is not None:
            self._fatal(error)
        elif ended and self._paused:
            self._tls_ended = True  # a paused protocol hears of the end on resuming
        elif ended:
            self._on_eof()
        else:
            self._flush_tls()

    def _read_tls_resumed(self) -> None:
        if self._paused or self._closing or self._closed or self._eof:
            return
        if self._tls_ended:
            self._tls_ended = False
            self._on_eof()
            return
        self._read_tls()

    def _handshake(self) -> None:
        tls = self._tls
        assert tls is not None
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self._flush_tls()
            done, self._tls_done = self._tls_done, None
            self.abort(exc)
            if done is not None:
                done(exc)
            return
        self._flush_tls()
        done, self._tls_done = self._tls_done, None
        if done is not None:
            done(None)
        if (
            not self._closed
            and self._tls_in is not None
            and (self._tls_in.pending or tls.pending())
        ):
            self._read_tls()

    def _flush_tls(self) -> None:
        out = self._tls_out
        if out is not None and out.pending:
            self._write_raw(out.read())

    def _on_eof(self) -> None:
        self._eof = True
        self._stop_reading()
        if self._tls_done is not None:
            self._fatal(ConnectionResetError("connection closed during the TLS handshake"))
            return
        self.protocol.eof_received()

    def _fatal(self, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET):
            logger.debug("connection reset: %s", exc)
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._stop_reading()
        self._release_raw()
        if self._tls_done is not None:
            done, self._tls_done = self._tls_done, None
            done(exc or ConnectionResetError("connection closed during the TLS handshake"))
        # Deliver the loss from a fresh stack, never from inside a callback
        # of the protocol that may have caused it.
        if self.loop.closed:
            self.protocol.connection_lost(exc)
        else:
            self.loop.call_soon(self.protocol.connection_lost, exc)

    def _start_reading(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            self.loop.add_reader(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)

    def _write_raw(self, data: bytes) -> None:
        if not self._buf:
            try:
                sent = _send(self._io, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fatal(exc)
                return
            if sent == len(data):
                if sent >= RETIRE_MIN:
                    _retire(data)
                return
            self._head_sent = sent
            self._buffered -= sent
        self._buf.append(data)
        self._buffered += len(data)
        self._want_writable()

    def _want_writable(self) -> None:
        if not self._writer:
            self._writer = True
            self.loop.add_writer(self._fd, self._on_writable)
        if self._buffered > self.high_water:
            self._over_high = True

    def _close_raw(self) -> None:
        if not self._buf:
            self._finish(None)

    def _release_raw(self) -> None:
        if self._writer:
            self._writer = False
            self.loop.remove_writer(self._fd)
        self._buf.clear()
        self._head_sent = 0
        self._buffered = 0
        # Never the fd number again: once closed, the kernel may give it to
        # another file. -1 fails like a closed socket object (EBADF).
        self._io = -1 if _ON_FD else self.sock
        try:
            self.sock.close()
        except OSError:
            pass

    def _on_writable(self) -> None:
        buf = self._buf
        while buf:
            data = buf[0]
            at = self._head_sent
            if at or len(data) > SEND_SIZE:
                try:
                    sent = _send(self._io, memoryview(data)[at : at + SEND_SIZE])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    self._fatal(exc)
                    return
            else:
                try:
                    sent = _send(self._io, data)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    self._fatal(exc)
                    return
            self._buffered -= sent
            at += sent
            if at == len(data):
                self._head_sent = 0
                _retire(buf.popleft())
            else:
                self._head_sent = at
                break
        if not buf:
            self._writer = False
            self.loop.remove_writer(self._fd)
            if self._closing:
                self._finish(None)
                return
        if self._over_high and self._buffered <= self.low_water:
            self._over_high = False
            self.protocol.write_drained()

    def _on_readable(self) -> None:
        if self._closed:
            return
        buffer = self._view
        size = self._read_size
        try:
            n = _recv_into(self._io, buffer if size == READ_SIZE else buffer[:size])
        except (BlockingIOError, InterruptedError):
            n = -1
        except OSError as exc:
            self._fatal(exc)
            return
        if n == 0:
            self._on_eof()
            return
        if n < READ_MIN:
            self._received(buffer, n)  # too little to be a long turn: not timed
            return
        started = monotonic()
        self._received(buffer, n)
        took = monotonic() - started
        if took > SLOW_READ and n < took * SLOW_RATE:
            if size > READ_MIN:
                self._read_size = max(READ_MIN, int(n * SLOW_READ / took))
        elif size < READ_SIZE and took < SLOW_READ / 4:
            self._read_size = min(READ_SIZE, size * 2)
