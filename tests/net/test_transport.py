"""The transport's buffers: reads go into one reused buffer per thread, lent
to the protocol (with how much of it is filled) only for the duration of
``data_received``; the last large buffer written is held until the next
one, not freed at once."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from wsloop.transport import READ_SIZE, RETIRE_COUNT, RETIRE_MIN, Transport


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.buffers: set[int] = set()
        self.size = 0

    def data_received(self, data: memoryview, n: int) -> None:
        assert 0 < n <= len(data)
        self.buffers.add(id(data))
        self.chunks.append(bytes(data[:n]))
        self.size += n

    def eof_received(self) -> None:
        pass

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


def test_reads_reuse_one_buffer(backend: Any) -> None:
    check_reads_reuse_one_buffer(backend, Transport)


def check_reads_reuse_one_buffer(backend: Any, kind: type[Transport]) -> None:
    """Also run for uvloop's transports (test_native_transport.py)."""
    ours, theirs = socket.socketpair()
    payload = os.urandom(3 * READ_SIZE + 12345)
    recorder = Recorder()
    transport = kind(backend.loop, ours, recorder)  # type: ignore[call-arg]
    writer = threading.Thread(target=theirs.sendall, args=(payload,))
    writer.start()
    try:
        assert backend.run_until(lambda: recorder.size >= len(payload))
        # Every byte arrived intact, in order, although each read reused
        # the buffer the previous one was lent.
        assert b"".join(recorder.chunks) == payload
        assert len(recorder.chunks) > 3  # several reads (READ_SIZE each at most)...
        assert len(recorder.buffers) == 1  # ...into one buffer
    finally:
        writer.join(10)
        transport.abort()
        theirs.close()


def receive_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "peer closed early"
        data += chunk
    return bytes(data)


def test_the_last_large_buffers_written_are_held_until_replaced(backend: Any) -> None:
    # Freed at once, every large frame lets glibc trim its heap, and the
    # next large object is page-faulted in again (docs/performance.md).
    # The last RETIRE_COUNT large buffers per thread are held; small ones
    # never replace them.
    assert RETIRE_COUNT == 2
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    theirs.settimeout(10)
    transport = Transport(backend.loop, ours, Recorder())
    try:
        large = [os.urandom(RETIRE_MIN + i) for i in range(3)]
        small = os.urandom(RETIRE_MIN - 1)
        refs = [sys.getrefcount(large[i]) for i in range(3)]

        def held() -> list[bool]:
            return [sys.getrefcount(large[i]) > refs[i] for i in range(3)]

        expected = ([True, False, False], [True, True, False], [False, True, True])
        for i in range(3):
            transport.write(large[i])  # taken by the socket at once
            assert receive_exactly(theirs, len(large[i])) == large[i]
            assert held() == expected[i]
        transport.write(small)
        assert receive_exactly(theirs, len(small)) == small
        assert held() == [False, True, True]
    finally:
        transport.abort()
        theirs.close()


class PausingReader(Recorder):
    """Pauses reading at every chunk it is given and resumes from the loop's
    next turn: as the asyncio front-end's inbox does when it fills."""

    def __init__(self, loop: Any) -> None:
        super().__init__()
        self.loop = loop
        self.transport: Transport | None = None

    def data_received(self, data: memoryview, n: int) -> None:
        super().data_received(data, n)
        assert self.transport is not None
        self.transport.pause_reading()
        self.loop.call_soon(self.transport.resume_reading)


def test_tls_records_already_received_are_read_after_a_resume(backend: Any) -> None:
    # With TLS, one socket read can bring many records into the MemoryBIO,
    # and reading pauses after the first one's plaintext is delivered. The
    # rest are in this process, not in the socket: no readiness will come
    # for them, so resume_reading must decrypt them itself (it once looked
    # only at SSLObject.pending(), the plaintext of a record already
    # decrypted, and the connection stalled).
    from netkit import tls_contexts

    server_ctx, client_ctx = tls_contexts()
    ours, theirs = socket.socketpair()
    reader = PausingReader(backend.loop)
    client = Transport(backend.loop, ours, reader)
    reader.transport = client
    server = Transport(backend.loop, theirs, Recorder())
    ready: list[BaseException | None] = []
    try:
        client.start_tls(
            client_ctx, server_side=False, server_hostname="localhost", done=ready.append
        )
        server.start_tls(server_ctx, server_side=True, server_hostname=None, done=ready.append)
        assert backend.run_until(lambda: len(ready) == 2)
        assert ready == [None, None]
        records = [bytes([i]) * 64 for i in range(100)]
        for record in records:
            server.write(record)  # one send, so one TLS record, each
        assert backend.run_until(lambda: reader.size >= 64 * len(records), timeout=5), (
            f"stalled after {reader.size} of {64 * len(records)} bytes"
        )
        assert b"".join(reader.chunks) == b"".join(records)
    finally:
        client.abort()
        server.abort()


@contextlib.contextmanager
def tls_records_waiting(
    backend: Any, reader: Any, records: list[bytes], *, close_notify: bool = False
) -> Iterator[Transport]:
    """A TLS client Transport delivering to ``reader``, given once the
    peer's ``records`` (one TLS record each, then its close_notify if asked)
    all wait unread in its socket: the loop has stopped meanwhile, so its
    next read brings them all at once and no readiness follows."""
    import ssl

    from netkit import tls_contexts

    server_ctx, client_ctx = tls_contexts()
    ours, theirs = socket.socketpair()
    handshaken, go, written = threading.Event(), threading.Event(), threading.Event()
    finish = threading.Event()

    def peer() -> None:
        with server_ctx.wrap_socket(theirs, server_side=True) as tls:
            handshaken.set()
            go.wait(10)  # until the test's loop has stopped
            for record in records:
                tls.sendall(record)
            if close_notify:
                tls.setblocking(False)
                try:
                    tls.unwrap()  # sends close_notify...
                except ssl.SSLWantReadError:
                    pass  # ...and would wait for ours, which never comes
            written.set()
            finish.wait(30)

    thread = threading.Thread(target=peer)
    thread.start()
    client = Transport(backend.loop, ours, reader)
    ready: list[BaseException | None] = []
    try:
        client.start_tls(
            client_ctx, server_side=False, server_hostname="localhost", done=ready.append
        )
        assert backend.run_until(lambda: bool(ready) and handshaken.is_set(), timeout=10)
        assert ready == [None]
        go.set()
        assert written.wait(10)  # every record is in our socket, unread
        yield client
    finally:
        finish.set()
        client.abort()
        thread.join(10)


def test_many_tls_records_in_one_read_are_all_delivered(backend: Any) -> None:
    # One recv brings all the records into the MemoryBIO. The transport must
    # decrypt every one of them from that single read (it stops reading when
    # the BIO and the SSLObject are empty, not at the first record), and
    # pass them on together, as a clear read would: what the protocol sends
    # in answer then goes out in one write.
    records = [bytes([i]) * 64 for i in range(100)]
    reader = Recorder()
    with tls_records_waiting(backend, reader, records):
        assert backend.run_until(lambda: reader.size >= 64 * len(records), timeout=5), (
            f"stalled after {reader.size} of {64 * len(records)} bytes"
        )
        assert b"".join(reader.chunks) == b"".join(records)
        assert len(reader.chunks) == 1, [len(chunk) for chunk in reader.chunks]


def test_a_tls_write_larger_than_a_chunk_arrives_whole(backend: Any) -> None:
    # Large writes are encrypted TLS_WRITE_CHUNK at a time (each piece's
    # records taken out of the BIO before the next goes in): every piece,
    # the short last one included, arrives, in order.
    from netkit import tls_contexts
    from wsloop.transport import TLS_WRITE_CHUNK

    server_ctx, client_ctx = tls_contexts()
    ours, theirs = socket.socketpair()
    receiver = Recorder()
    client = Transport(backend.loop, ours, Recorder())
    server = Transport(backend.loop, theirs, receiver)
    ready: list[BaseException | None] = []
    try:
        client.start_tls(
            client_ctx, server_side=False, server_hostname="localhost", done=ready.append
        )
        server.start_tls(server_ctx, server_side=True, server_hostname=None, done=ready.append)
        assert backend.run_until(lambda: len(ready) == 2)
        assert ready == [None, None]
        payload = os.urandom(3 * TLS_WRITE_CHUNK + 12345)
        client.write(payload)
        client.write(b"and after it")
        total = len(payload) + len(b"and after it")
        assert backend.run_until(lambda: receiver.size >= total, timeout=20)
        assert b"".join(receiver.chunks) == payload + b"and after it"
    finally:
        client.abort()
        server.abort()


class EndingRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.ended: list[str] = []

    def eof_received(self) -> None:
        self.ended.append(f"eof after {self.size} bytes")


def test_tls_records_before_a_close_notify_are_delivered_first(backend: Any) -> None:
    # Records and the peer's close_notify arrive in one read: the plaintext
    # passed on together must come before the end, none of it dropped.
    records = [bytes([i]) * 100 for i in range(20)]
    reader = EndingRecorder()
    with tls_records_waiting(backend, reader, records, close_notify=True):
        assert backend.run_until(lambda: bool(reader.ended), timeout=5), reader.size
        assert len(reader.chunks) == 1, [len(chunk) for chunk in reader.chunks]
        assert reader.ended == [f"eof after {100 * len(records)} bytes"]
        assert b"".join(reader.chunks) == b"".join(records)


class PausingAtOnce(EndingRecorder):
    """Pauses reading at the first chunk it is given, until told."""

    transport: Transport | None = None

    def data_received(self, data: memoryview, n: int) -> None:
        super().data_received(data, n)
        assert self.transport is not None
        self.transport.pause_reading()


def test_a_tls_end_read_while_paused_is_reported_on_resuming(backend: Any) -> None:
    # The peer's last records and its close_notify arrive in one read; the
    # protocol pauses on the records. As with a clear EOF, it must hear of
    # the end only when it resumes reading (not while paused, and not never:
    # the close_notify has already left the BIO).
    records = [bytes([i]) * 100 for i in range(5)]
    reader = PausingAtOnce()
    with tls_records_waiting(backend, reader, records, close_notify=True) as client:
        reader.transport = client
        assert backend.run_until(lambda: reader.size == 100 * len(records), timeout=5)
        # Paused: the end waits (a short window suffices: nothing is coming).
        assert not backend.run_until(lambda: bool(reader.ended), timeout=0.3)
        client.resume_reading()
        assert backend.run_until(lambda: bool(reader.ended), timeout=5)
        assert reader.ended == [f"eof after {100 * len(records)} bytes"]
        assert b"".join(reader.chunks) == b"".join(records)
