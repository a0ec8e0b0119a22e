"""The transport's read path: one reused buffer per thread, lent to the
protocol only for the duration of ``data_received``."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from wsloop.transport import READ_SIZE, Transport


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.views: list[memoryview] = []
        self.size = 0

    def data_received(self, data: bytes | memoryview) -> None:
        self.views.append(data)  # wrong on purpose: kept, not copied
        self.chunks.append(bytes(data))
        self.size += len(data)

    def eof_received(self) -> None:
        pass

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


def test_reads_reuse_one_buffer_and_lend_it_only_during_the_call(backend: Any) -> None:
    ours, theirs = socket.socketpair()
    payload = os.urandom(3 * READ_SIZE + 12345)
    recorder = Recorder()
    transport = Transport(backend.loop, ours, recorder)
    writer = threading.Thread(target=theirs.sendall, args=(payload,))
    writer.start()
    try:
        assert backend.run_until(lambda: recorder.size >= len(payload))
        # Every byte arrived intact, in order, although each read reused
        # the buffer the previous one was lent.
        assert b"".join(recorder.chunks) == payload
        # A protocol that kept the view instead of copying gets an error,
        # never bytes that silently changed under it.
        for view in recorder.views:
            try:
                bytes(view)
            except ValueError as exc:
                assert "released" in str(exc)
            else:
                raise AssertionError("a lent view outlived data_received")
    finally:
        writer.join(10)
        transport.abort()
        theirs.close()
