"""A connected stream, with optional TLS, driven by any :class:`~wsloop.loops.Loop`.

:class:`Transport` is what the layers above see. Two kinds move its bytes:
:class:`SocketTransport` reads and writes a non-blocking socket on the
loop's fd watches (every backend, the default), and, on request
(``WSLOOP_NATIVE_TRANSPORTS=1``), :class:`AsyncioTransport` hands the
socket to uvloop's own transport, which reads and writes in C
(:func:`open_transport` picks).

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
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from ._accel import speedups
from .loops import Loop

__all__ = ["AsyncioTransport", "SocketTransport", "StreamProtocol", "Transport", "open_transport"]

logger = logging.getLogger("wsloop")

# Reads go into one preallocated buffer per thread (recv_into), never a new
# bytes object per read: socket.recv(n) allocates n bytes every call, and
# above glibc's mmap threshold that is a map, page faults and an unmap each
# time (recv(256 KiB) measured 15 us per small message here against 2.5 us).
# The protocol copies what it keeps before data_received returns.
READ_SIZE = 1024 * 1024  # per thread, not per connection: a 256 KiB message is one read
SEND_SIZE = 1024 * 1024
# uvloop's own transports (AsyncioTransport) are opt-in: on this project's
# machine they were no faster than fd watches for round trips, a third
# slower for a broadcast to 10,000 connections and 0.5 KB more per
# connection (docs/performance.md). WSLOOP_NATIVE_TRANSPORTS=1 turns them on.
NATIVE_TRANSPORTS = os.environ.get("WSLOOP_NATIVE_TRANSPORTS", "0") == "1"
_per_thread = threading.local()
_accel = speedups()
# A socket's two calls per message: the C accelerator's send/recv_into on
# its fd (same results and exceptions as the socket methods, but the GIL is
# kept for small messages and no arguments are parsed: together over a
# tenth of a small round trip's instructions), else the socket's own
# methods. Each transport keeps what they take (fd or socket) as _io.
_send: Final[Callable[[Any, bytes | memoryview], int]] = (
    getattr(_accel, "send", None) or socket.socket.send
)
_recv_into: Final[Callable[[Any, memoryview], int]] = (
    getattr(_accel, "recv_into", None) or socket.socket.recv_into
)
_ON_FD: Final = getattr(_accel, "send", None) is not None


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_per_thread, "view", None)
    if view is None:
        view = _per_thread.view = memoryview(bytearray(READ_SIZE))
    return view


# Large buffers, once written, are retired rather than freed at once. glibc
# gives the top of its heap back to the kernel when enough is free there, so
# a program exchanging large messages frees a frame and a message per round
# trip and page-faults every new large object in again (two 256 KiB
# allocate-and-copy steps measured 246 us here, 12 us without the trim).
# With the C accelerator, retire() keeps the last two large buffers written
# and its encode_frame writes the next frame of the same size into one that
# nothing references any more: a client or server sending large messages
# stops allocating a frame per message (_speedups.c). Without it, this
# module holds the last RETIRE_COUNT large buffers written per thread, which
# keeps the freed space inside the heap for the next large objects to reuse.
# Two, because an await API frees the received message before it sends, a
# callback after: with one, only the callback API stopped faulting (brk
# calls per 1,000 256 KiB round trips of the asyncio client: 1,546 with
# one, 52 with two). docs/performance.md has the round trips per second.
# (Final: compiled code inlines the numbers; writers test RETIRE_MIN first,
# which rules out every small message without a call.)
RETIRE_MIN: Final = 64 * 1024
RETIRE_MAX: Final = 4 * 1024 * 1024
RETIRE_COUNT: Final = 2


def _retire_python(data: bytes) -> None:
    if RETIRE_MIN <= len(data) <= RETIRE_MAX:
        retired: deque[bytes] | None = getattr(_per_thread, "retired", None)
        if retired is None:
            retired = _per_thread.retired = deque(maxlen=RETIRE_COUNT)
        retired.append(data)


_retire: Final[Callable[[bytes], object]] = getattr(_accel, "retire", None) or _retire_python


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

    This base holds everything that does not depend on how bytes reach the
    peer: TLS, the protocol's callbacks, closing. Subclasses move the raw
    bytes. Create one on the loop's thread; use it only there.
    """

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: StreamProtocol,
        high_water: int,
        low_water: int | None,
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
        self._tls: ssl.SSLObject | None = None
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._tls_done: Callable[[BaseException | None], None] | None = None
        # This thread's read buffer, looked up once: the transport is used
        # only on the thread that created it (the loop's).
        self._view = _read_buffer()

    # -- public ---------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes accepted by :meth:`write` and not yet taken by the kernel."""
        return self._buffered_bytes()

    @property
    def is_closing(self) -> bool:
        return self._closing or self._closed

    @property
    def tls(self) -> ssl.SSLObject | None:
        return self._tls

    def expect_drain(self) -> bool:
        """Ask for ``write_drained`` once the buffer falls to the low
        watermark; False if it already has (nothing will be reported)."""
        if self._buffered_bytes() > self.low_water:
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
        if tls is not None:
            assert self._tls_out is not None
            try:
                tls.write(data)
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            data = self._tls_out.read()
            if not data:
                return
        self._write_raw(data)

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            self._stop_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if not self._closed and not self._eof:
                self._start_reading()
                if self._tls is not None and self._tls.pending():
                    self.loop.call_soon(self._read_tls)

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

    # -- what a subclass provides ---------------------------------------------

    def _buffered_bytes(self) -> int:
        raise NotImplementedError

    def _start_reading(self) -> None:
        raise NotImplementedError

    def _stop_reading(self) -> None:
        raise NotImplementedError

    def _write_raw(self, data: bytes) -> None:
        """Send ``data`` as is (already encrypted), buffering what waits."""
        raise NotImplementedError

    def _close_raw(self) -> None:
        """Close once the buffer is sent, then call :meth:`_finish`."""
        raise NotImplementedError

    def _release_raw(self) -> None:
        """Drop the buffer and the stream now (from :meth:`_finish`)."""
        raise NotImplementedError

    # -- shared by both -------------------------------------------------------

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
        tls = self._tls
        assert tls is not None
        buffer = self._view
        # Given a buffer, SSLObject.read returns a count; typeshed says bytes,
        # and compiled code checks what the annotation says.
        read_into: Any = tls.read
        while not self._paused and not self._closed:
            try:
                n: int = read_into(READ_SIZE, buffer)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._flush_tls()
                self._on_eof()
                return
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            if not n:
                self._on_eof()
                return
            self.protocol.data_received(buffer, n)
        self._flush_tls()

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


class SocketTransport(Transport):
    """A non-blocking socket on the loop's fd watches: works on every backend."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: StreamProtocol,
        *,
        high_water: int = 64 * 1024,
        low_water: int | None = None,
    ) -> None:
        super().__init__(loop, sock, protocol, high_water, low_water)
        self.sock = sock
        self._fd = sock.fileno()
        self._io: Any = self._fd if _ON_FD else sock
        self._buf: deque[bytes] = deque()
        self._buffered = 0
        self._writer = False
        self._start_reading()

    def _buffered_bytes(self) -> int:
        return self._buffered

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
            data = data[sent:]
        self._buf.append(data)
        self._buffered += len(data)
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
            chunk = memoryview(data)[:SEND_SIZE]
            try:
                sent = _send(self._io, chunk)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fatal(exc)
                return
            self._buffered -= sent
            if sent == len(data):
                _retire(buf.popleft())
            else:
                buf[0] = data[sent:]
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
        try:
            n = _recv_into(self._io, buffer)
        except (BlockingIOError, InterruptedError):
            n = -1
        except OSError as exc:
            self._fatal(exc)
            return
        if n == 0:
            self._on_eof()
            return
        self._received(buffer, n)


def _unset(*_: object) -> Any:
    raise AssertionError("the native transport does not exist yet")


class AsyncioTransport(Transport):
    """The socket handed to an asyncio loop's own transport, which does the
    reads and writes; TLS, buffering policy and the protocol stay here.

    Meant for uvloop, whose transports read and write in C, straight into
    our read buffer (this class is a buffered protocol to it); the standard
    asyncio loop's transports allocate a new ``bytes`` per read and measured
    far slower than fd watches (``bench/asyncio_transports.py``). Opt-in
    (see ``NATIVE_TRANSPORTS``): on uvloop too, fd watches measured as fast.

    The native loop calls the protocol methods below directly, not through
    :meth:`Loop._invoke <wsloop.loops.Loop>`, so each one shields the loop
    from what it raises in the same way.
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
        super().__init__(loop, sock, protocol, high_water, low_water)
        self._sock: socket.socket | None = sock  # until the native transport owns it
        self._native: Any = None  # the asyncio transport, from connection_made
        # Its two methods called per message, looked up once.
        self._native_write: Callable[[bytes], object] = _unset
        self._native_buffered: Callable[[], int] = _unset
        self._native_lost = False
        self._native_paused = False
        # What is written before the native transport exists (the client's
        # handshake request): adopting a socket takes a loop iteration.
        self._early: list[bytes] = []
        self._reading = True  # asyncio transports start reading at once
        loop.track(self)
        native_loop: Any = loop.native
        self._adoption: Any = native_loop.create_task(
            native_loop.connect_accepted_socket(self._this, sock)
        )
        self._adoption.add_done_callback(self._adopted)

    def _this(self) -> AsyncioTransport:
        return self

    def _adopted(self, task: Any) -> None:
        """The adoption task ended: report a failure (a success already
        called connection_made)."""
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        try:
            self._fatal(exc)
        except Exception as error:
            self.loop._report(error, self._adopted)

    # -- raw operations ----------------------------------------------------

    def _buffered_bytes(self) -> int:
        if self._native is None or self._native_lost:
            return sum(len(data) for data in self._early)
        size: int = self._native_buffered()
        return size

    def expect_drain(self) -> bool:
        # The native transport reports resume_writing only after it paused.
        if self._native_paused:
            self._over_high = True
            return True
        return False

    def _start_reading(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            if self._native is not None:
                self._native.resume_reading()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            if self._native is not None and not self._native_lost:
                self._native.pause_reading()

    def _write_raw(self, data: bytes) -> None:
        if self._native is None:
            self._early.append(data)
        elif not self._native_lost:
            self._native_write(data)
            if len(data) >= RETIRE_MIN:
                _retire(data)  # the native transport lets go of it once sent

    def _close_raw(self) -> None:
        if self._native is not None and not self._native_lost:
            self._native.close()  # connection_lost follows once sent

    def _release_raw(self) -> None:
        self.loop.untrack(self)
        self._early.clear()
        if self._native is None:
            # Closed before adoption finished: the cancelled task closes the
            # native transport if it made one; the socket is closed here
            # (asyncio defers that while it holds the socket).
            self._adoption.cancel()
            if self._sock is not None:
                self._sock.close()
        elif not self._native_lost:
            self._native.abort()

    # -- the asyncio protocol the native transport calls -------------------

    def connection_made(self, native: Any) -> None:
        self._native = native
        self._native_write = native.write
        self._native_buffered = native.get_write_buffer_size
        self._sock = None
        try:
            if self._closed:
                native.abort()
                return
            native.set_write_buffer_limits(self.high_water, self.low_water)
            if not self._reading:
                native.pause_reading()
            early, self._early = self._early, []
            if early:
                native.writelines(early)
            if self._closing:
                native.close()
        except Exception as exc:
            self.loop._report(exc, self.connection_made)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._closed:
            return
        try:
            self._received(self._view, nbytes)
        except Exception as exc:
            self.loop._report(exc, self.protocol.data_received)

    def eof_received(self) -> bool:
        try:
            self._on_eof()
        except Exception as exc:
            self.loop._report(exc, self.protocol.eof_received)
        return True  # half-closed: the protocol above decides when to close

    def pause_writing(self) -> None:
        self._native_paused = True
        self._over_high = True

    def resume_writing(self) -> None:
        self._native_paused = False
        if self._over_high and not self._closed:
            self._over_high = False
            try:
                self.protocol.write_drained()
            except Exception as exc:
                self.loop._report(exc, self.protocol.write_drained)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._native_lost = True
        try:
            self._finish(exc)
        except Exception as error:
            self.loop._report(error, self.protocol.connection_lost)


def open_transport(
    loop: Loop,
    sock: socket.socket,
    protocol: StreamProtocol,
    *,
    high_water: int = 64 * 1024,
) -> Transport:
    """The transport for ``loop``: fd watches, or uvloop's own transport
    when ``WSLOOP_NATIVE_TRANSPORTS=1`` and the loop is uvloop."""
    if loop.name == "uvloop" and NATIVE_TRANSPORTS:
        return AsyncioTransport(loop, sock, protocol, high_water=high_water)
    return SocketTransport(loop, sock, protocol, high_water=high_water)
