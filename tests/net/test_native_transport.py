"""uvloop's own transports (AsyncioTransport, opt-in with
WSLOOP_NATIVE_TRANSPORTS=1): the same contract as the fd-watch transport,
including what happens before the native transport exists (adopting a
socket takes a loop iteration), a protocol that raises, back-pressure and
closing the loop adapter."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from test_transport import check_reads_reuse_one_buffer

import wsloop
from loopkit import drive, make_loop, require
from netkit import Echo, Recorder
from wsloop.loops import Loop
from wsloop.transport import AsyncioTransport, SocketTransport


class Uv:
    def __init__(self, foreign: bool) -> None:
        self.loop: Loop
        self.loop, self.native = make_loop("uvloop", foreign)

    def run_until(self, done: Any, timeout: float = 10.0) -> bool:
        return drive(self.loop, self.native, "uvloop", done, timeout)


@pytest.fixture(params=["owned", "foreign"])
def uv(request: pytest.FixtureRequest) -> Iterator[Uv]:
    require("uvloop")
    u = Uv(request.param == "foreign")
    yield u
    if not u.loop.closed:
        # As an application would: let the loop run on a little after the
        # test closed its transports, so uvloop closes their handles.
        u.run_until(lambda: False, timeout=0.02)
    u.loop.close()
    if u.native is not None:
        u.native.close()


class Stream:
    """A StreamProtocol that records everything."""

    def __init__(self, raise_on: bytes | None = None) -> None:
        self.data = bytearray()
        self.eof = False
        self.drained = 0
        self.lost: list[BaseException | None] = []
        self.raise_on = raise_on

    def data_received(self, data: memoryview, n: int) -> None:
        self.data += data[:n]
        if self.raise_on is not None and self.raise_on in self.data:
            self.raise_on = None
            raise RuntimeError("the protocol's own bug")

    def eof_received(self) -> None:
        self.eof = True

    def write_drained(self) -> None:
        self.drained += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


def receive_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def test_opted_in_connections_on_uvloop_use_its_transports(
    uv: Uv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wsloop.transport, "NATIVE_TRANSPORTS", True)
    server = wsloop.serve(Echo(), loop=uv.loop)
    rec = Recorder(want=2, send=["text", b"\x00binary"])
    client = wsloop.connect(server.url, rec, loop=uv.loop)
    assert uv.run_until(lambda: rec.got_all.is_set() and len(server.connections) == 1)
    assert rec.messages == ["text", b"\x00binary"]
    assert client.ws is not None
    assert type(client.ws.transport) is AsyncioTransport
    (peer,) = server.connections
    assert type(peer.transport) is AsyncioTransport
    client.close()
    server.close()
    assert uv.run_until(lambda: client.done.is_set() and server.closed.is_set())
    assert uv.loop.stats()["tracked"] == 0


def test_reads_land_in_our_buffer_lent_only_during_the_call(uv: Uv) -> None:
    check_reads_reuse_one_buffer(uv, AsyncioTransport)


@pytest.mark.parametrize(("name", "opted_in"), [("uvloop", False), ("asyncio", True)])
def test_fd_watches_by_default_and_on_other_loops(
    name: str, opted_in: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wsloop.transport, "NATIVE_TRANSPORTS", opted_in)
    require(name)
    loop = wsloop.get_loop(name)
    a, b = socket.socketpair()
    try:
        transport = wsloop.transport.open_transport(loop, a, Stream())
        assert type(transport) is SocketTransport
        transport.abort()
    finally:
        b.close()
        loop.close()


def test_what_is_written_before_adoption_is_sent_in_order_then_closed(uv: Uv) -> None:
    ours, theirs = socket.socketpair()
    stream = Stream()
    transport = AsyncioTransport(uv.loop, ours, stream)
    chunks = [b"first ", b"second " * 1000, b"third"]
    for chunk in chunks:
        transport.write(chunk)
    transport.close()  # before the loop ever ran: sent first, then closed
    assert transport.buffered == sum(map(len, chunks))
    assert uv.run_until(lambda: bool(stream.lost))
    assert receive_all(theirs) == b"".join(chunks)
    assert stream.lost == [None]
    assert uv.loop.stats()["tracked"] == 0
    theirs.close()


def test_abort_before_adoption_closes_the_socket_once(uv: Uv) -> None:
    ours, theirs = socket.socketpair()
    stream = Stream()
    reported: list[BaseException] = []
    uv.loop.exception_handler = lambda loop, exc, cb: reported.append(exc)
    transport = AsyncioTransport(uv.loop, ours, stream)
    transport.write(b"never sent")
    transport.abort()
    assert uv.run_until(lambda: bool(stream.lost))
    uv.run_until(lambda: False, timeout=0.05)  # the adoption task ends meanwhile
    assert stream.lost == [None]
    assert receive_all(theirs) == b""  # EOF, nothing written
    assert reported == []
    assert uv.loop.stats()["tracked"] == 0
    theirs.close()


def test_a_protocol_that_raises_is_reported_and_the_loop_goes_on(uv: Uv) -> None:
    ours, theirs = socket.socketpair()
    stream = Stream(raise_on=b"boom")
    reported: list[BaseException] = []
    uv.loop.exception_handler = lambda loop, exc, cb: reported.append(exc)
    transport = AsyncioTransport(uv.loop, ours, stream)
    theirs.sendall(b"boom")
    assert uv.run_until(lambda: bool(reported))
    assert [str(e) for e in reported] == ["the protocol's own bug"]
    # The loop runs on and the connection still works both ways.
    theirs.sendall(b" and more")
    assert uv.run_until(lambda: bytes(stream.data) == b"boom and more")
    transport.write(b"reply")
    theirs.settimeout(10)
    assert theirs.recv(100) == b"reply"
    theirs.shutdown(socket.SHUT_WR)
    assert uv.run_until(lambda: stream.eof)
    transport.close()
    assert uv.run_until(lambda: bool(stream.lost))
    theirs.close()


def test_write_drained_follows_back_pressure(uv: Uv) -> None:
    ours, theirs = socket.socketpair()
    for s in (ours, theirs):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    stream = Stream()
    transport = AsyncioTransport(uv.loop, ours, stream, high_water=64 * 1024)
    assert uv.run_until(lambda: transport._native is not None)
    payload = b"x" * (1024 * 1024)
    transport.write(payload)  # far more than the socket takes
    assert transport.buffered > transport.high_water
    assert transport.expect_drain()
    assert stream.drained == 0
    theirs.setblocking(False)
    got = bytearray()

    def read_some() -> bool:
        try:
            while chunk := theirs.recv(65536):
                got.extend(chunk)
        except BlockingIOError:
            pass
        return stream.drained > 0

    assert uv.run_until(read_some)
    assert stream.drained == 1
    assert transport.buffered <= transport.low_water
    transport.close()
    assert uv.run_until(lambda: bool(stream.lost) and (read_some() or True))
    theirs.setblocking(True)
    assert bytes(got) + receive_all(theirs) == payload
    theirs.close()


def test_closing_the_adapter_aborts_its_native_transports(uv: Uv) -> None:
    ours, theirs = socket.socketpair()
    stream = Stream()
    AsyncioTransport(uv.loop, ours, stream)
    assert uv.loop.stats()["tracked"] == 1
    theirs.sendall(b"hello")
    assert uv.run_until(lambda: bytes(stream.data) == b"hello")
    uv.loop.close()
    assert stream.lost == [None]  # delivered at once: the adapter is closed
    assert uv.loop.stats()["tracked"] == 0
    if uv.native is not None:
        # The application's loop runs on without anything of wsloop's: the
        # peer sees the socket closed, and nothing more reaches the protocol.
        async def settle() -> None:
            import asyncio

            await asyncio.sleep(0.05)

        theirs.sendall(b" ignored")
        uv.native.run_until_complete(settle())
        assert bytes(stream.data) == b"hello"
        try:  # closed with unread input: a reset rather than EOF
            assert receive_all(theirs) == b""
        except ConnectionResetError:
            pass
    theirs.close()
