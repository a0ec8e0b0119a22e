"""Issue 17, defect 4, second half: a peer that floods pings and reads none
of the pongs is no longer read while its pongs fill this end's send buffer;
and two wsloop peers that both send more than they read never stop reading
each other (the hold counts only the core's own answers, see
WebSocket._hold_reading)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import wsloop
from netkit import Echo
from wsloop.protocol import ClientConnection, Message, Opened, Pong, encode_frame

LIMIT = 64 * 1024  # write_limit's default
FLOOD = 48 << 20  # what the client tries to send: bounded, whether read or not
SMALL = 32768  # the kernel buffers of the flooded link, each end, each way


class CountingEcho(Echo):
    """Echoes messages; records the largest send buffer any ping left."""

    def __init__(self) -> None:
        self.pings = 0
        self.peak = 0
        self.echoed = threading.Event()
        self.closes: list[int] = []
        self.closed = threading.Event()

    def on_open(self, ws: wsloop.WebSocket) -> None:
        # A slow link: small kernel buffers, so unread pongs reach the
        # server's own buffer after megabytes of pings, not hundreds of them.
        assert ws.transport is not None
        ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
        ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)

    def on_ping(self, ws: wsloop.WebSocket, data: bytes) -> None:
        self.pings += 1
        self.peak = max(self.peak, ws.buffered_amount)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        super().on_message(ws, data)
        self.echoed.set()

    def on_close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        self.closes.append(code)
        self.closed.set()


class PingFlooder:
    """A raw client, in a thread: handshake, then pings with 125-byte
    payloads (the largest pongs) in 1 MiB writes, reading nothing, until
    ``FLOOD`` bytes went out or a write stalls for ``stall`` seconds (the
    server stopped reading and the kernel's buffers are full)."""

    def __init__(self, port: int, stall: float = 1.0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.proto = ClientConnection(f"ws://127.0.0.1:{port}/", deflate=None)
        self.stall = stall
        self.sent = 0
        self.stalled = False
        self.rest = b""
        self.reset = False
        self.flooded = threading.Event()
        self.pongs = 0
        self.echo: list[str | bytes] = []
        self.done = threading.Event()
        threading.Thread(target=self._flood, name="test-ping-flood", daemon=True).start()

    def _flood(self) -> None:
        try:
            self.sock.sendall(self.proto.data_to_send())
            while not any(isinstance(e, Opened) for e in self.proto.events()):
                self.proto.receive_data(self.sock.recv(65536))
            ping = encode_frame(9, b"p" * 125, mask_key=b"\x01\x02\x03\x04")
            chunk = ping * ((1 << 16) // len(ping))
            self.sock.settimeout(self.stall)
            while self.sent < FLOOD:
                view = memoryview(chunk)
                while view:
                    try:
                        n = self.sock.send(view)
                    except TimeoutError:
                        self.stalled = True
                        self.rest = bytes(view)  # the frame cut short is finished later
                        return
                    view = view[n:]
                    self.sent += n
        except OSError:
            self.reset = True  # the server dropped the connection
        finally:
            self.flooded.set()

    def read_everything(self) -> None:
        """Now read every pong and, meanwhile, send the rest of the flood
        and a message; wait for the message's echo."""
        self.sock.settimeout(30)
        threading.Thread(target=self._read, name="test-ping-reader", daemon=True).start()
        threading.Thread(target=self._finish, name="test-ping-writer", daemon=True).start()

    def _finish(self) -> None:
        try:
            self.sock.sendall(self.rest + encode_frame(1, b"after", mask_key=b"\x05\x06\x07\x08"))
        except OSError:
            pass

    def _read(self) -> None:
        try:
            while not self.echo:
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                self.proto.receive_data(data)
                for event in self.proto.events():
                    if isinstance(event, Message):
                        self.echo.append(event.data)
                    elif isinstance(event, Pong):
                        self.pongs += 1
        except OSError:
            pass
        finally:
            self.done.set()


def test_a_client_that_floods_pings_and_reads_nothing_is_no_longer_read(backend) -> None:  # type: ignore[no-untyped-def]
    """Without the hold, the server reads all 48 MiB and holds pongs for
    every batch it read (megabytes); with it, it stops reading once the
    unread pongs pass write_limit, the client's writes stall, and once the
    client reads its pongs the server reads it again."""
    handler = CountingEcho()
    server = wsloop.serve(handler, loop=backend.loop, ping_interval=None)
    client = PingFlooder(server.port)
    try:
        assert backend.run_until(client.flooded.is_set, timeout=60)
        assert client.stalled, f"the server read all {client.sent} bytes of pings"
        assert client.sent < FLOOD
        ws = server.connections[0]
        assert handler.peak <= 2 * LIMIT, handler.peak
        assert ws.buffered_amount <= 2 * LIMIT, ws.buffered_amount
        # The server is still sound: once the client reads, it is read again
        # (the rest of the flood, then the message behind it).
        client.read_everything()
        assert backend.run_until(client.done.is_set, timeout=60)
        assert client.echo == ["after"] and client.pongs > 0
        assert handler.peak <= 2 * LIMIT, handler.peak
    finally:
        client.sock.close()
        server.close()
        backend.run_until(lambda: not server.connections, timeout=10)


def test_keepalive_still_drops_a_held_client_that_never_reads(backend) -> None:  # type: ignore[no-untyped-def]
    """A held connection is not kept forever: the server's keepalive ping
    waits behind the unread pongs, and ping_timeout ends the connection."""
    handler = CountingEcho()
    server = wsloop.serve(
        handler, loop=backend.loop, ping_interval=0.2, ping_timeout=0.5, close_timeout=0.5
    )
    client = PingFlooder(server.port)
    try:
        assert backend.run_until(client.flooded.is_set, timeout=60)
        assert backend.run_until(handler.closed.is_set, timeout=20)
        assert handler.closes == [1011]
    finally:
        client.sock.close()
        server.close()
        backend.run_until(lambda: not server.connections, timeout=10)


class Both(wsloop.Handler):
    """Either end: on open, sends ``count`` messages of ``size`` bytes at
    once (far over write_limit, never paced) and ``pings`` pings, then
    counts what arrives."""

    def __init__(self, count: int, size: int, pings: int) -> None:
        self.count = count
        self.payload = os.urandom(size)
        self.expect = b""  # what the other end sends
        self.pings = pings
        self.received = 0
        self.ponged: set[int] = set()
        self.bad = 0
        self.errors: list[BaseException] = []

    def on_open(self, ws: wsloop.WebSocket) -> None:
        for _ in range(self.count):
            ws.send(self.payload)
        for i in range(self.pings):
            ws.ping(i.to_bytes(4, "big"), lambda rtt, i=i: self.ponged.add(i))

    def on_message(self, ws: wsloop.WebSocket, data: Any) -> None:
        self.received += 1
        if data != self.expect:
            self.bad += 1

    def on_error(self, ws: Any, error: BaseException) -> None:
        self.errors.append(error)


def test_two_wsloop_peers_sending_more_than_they_read_both_ways_do_not_deadlock(backend) -> None:  # type: ignore[no-untyped-def]
    """Each end sends 16 MiB at once, far over write_limit, and pings
    (keepalive every 20 ms, and 200 of its own): if the hold counted the
    application's sends, or pongs a wsloop peer asks for, both would stop
    reading, each waiting for the other to drain it."""
    count, size = 64, 256 * 1024
    server_side = Both(count, size, pings=200)
    client_side = Both(count, size, pings=200)
    server_side.expect, client_side.expect = client_side.payload, server_side.payload
    options: dict[str, Any] = {"ping_interval": 0.02, "ping_timeout": 10, "compression": False}
    server = wsloop.serve(server_side, loop=backend.loop, max_message_size=None, **options)
    client = wsloop.connect(
        server.url, client_side, loop=backend.loop, max_message_size=None, **options
    )
    try:

        def done() -> bool:
            return server_side.received == count and client_side.received == count

        assert backend.run_until(done, timeout=60), (server_side.received, client_side.received)
        # Answered (a burst past 32 unsent pongs gets only its latest, which
        # a keepalive ping behind it may replace: RFC 6455 5.5.3), and open.
        assert backend.run_until(lambda: server_side.ponged and client_side.ponged, timeout=20)
        assert server.connections[0].open and client.ws is not None and client.ws.open
        assert server_side.bad == client_side.bad == 0
        assert not server_side.errors and not client_side.errors
    finally:
        client.close()
        server.close()
        backend.run_until(lambda: not server.connections, timeout=10)
