"""Large writes: what the socket does not take at once stays queued as the
object it was given (the unsent rest goes out as a memoryview slice, never
as a copied remainder), and frames queued together are written without
being joined into one buffer when they are large."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import wsloop
from netkit import Echo, LoopThread, Recorder, tls_contexts
from wsloop.transport import SEND_SIZE, Transport


class Quiet:
    def data_received(self, data: memoryview, n: int) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


def test_partial_writes_keep_the_buffers_given_and_send_every_byte_in_order(
    backend: Any,
) -> None:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    transport = Transport(backend.loop, ours, Quiet())
    payloads = [os.urandom(300_000), os.urandom(5), os.urandom(2 * SEND_SIZE + 7)]
    total = sum(len(p) for p in payloads)
    received = bytearray()
    done = threading.Event()

    def read() -> None:
        theirs.settimeout(20)
        while len(received) < total:
            chunk = theirs.recv(8192)  # small reads: many partial writes on our side
            if not chunk:
                break
            received.extend(chunk)
        done.set()

    try:
        for payload in payloads:
            transport.write(payload)
        # The socket took part of the first buffer; what is queued is that
        # same object (not a copy of its rest), and the count is exact.
        queued = list(transport._buf)
        assert queued[0] is payloads[0]
        assert all(q is p for q, p in zip(queued, payloads, strict=False))
        assert 0 < transport.buffered < total
        assert transport.buffered == total - transport._head_sent
        reader = threading.Thread(target=read)
        reader.start()
        assert backend.run_until(lambda: done.is_set() and transport.buffered == 0, timeout=30)
        reader.join(10)
        assert bytes(received) == b"".join(payloads)
        assert not transport._buf and transport._head_sent == 0
    finally:
        transport.abort()
        theirs.close()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_large_and_small_messages_sent_together_arrive_in_order(
    backend: Any, peer: LoopThread, secure: bool
) -> None:
    """Sent in one burst, small frames are joined and large ones written on
    their own (FrameWriter.take_chunk); the peer sees them all, in order."""
    server_ctx, client_ctx = tls_contexts() if secure else (None, None)
    server = peer.call(
        lambda: wsloop.serve(Echo(), loop=peer.loop, ssl=server_ctx, max_message_size=None)
    )
    url = server.url.replace("127.0.0.1", "localhost") if secure else server.url
    expected: list[str | bytes] = []
    for i in range(12):
        expected.append(f"small {i}")
        if i % 3 == 0:
            expected.append(os.urandom(1 << 20) + bytes([i]))
    rec = Recorder(want=len(expected), send=expected)
    client = wsloop.connect(
        url, rec, loop=backend.loop, ssl=client_ctx, max_message_size=None, compression=False
    )
    try:
        assert backend.run_until(rec.got_all.is_set, timeout=60), rec.errors
        assert rec.messages == expected
    finally:
        client.close()
        backend.run_until(lambda: client.closed)
        peer.call(server.close)
