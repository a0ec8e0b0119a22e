"""What only Twisted has: an application's reactor.run()/reactor.stop(),
shutdown disconnecting every descriptor, and hang-ups reported through
connectionLost instead of doRead/doWrite.

Each test makes its own reactor (not the process-wide one, which can run
only once per process); docs/foreign-loops.md's example runs the global
``twisted.internet.reactor`` in a process of its own (tests/test_docs.py)."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import wsloop
from loopkit import free_reactor, require
from netkit import LoopThread, Recorder, Ticker, free_port, seqs


@pytest.fixture
def reactor() -> Iterator[Any]:
    require("twisted")
    from wsloop.loops.twisted import new_reactor

    r = new_reactor()
    yield r
    free_reactor(r)


def guard(reactor: Any, seconds: float = 10) -> None:
    """Stop the reactor after ``seconds`` if the test has not (a failure)."""

    def expire() -> None:
        if reactor.running:
            reactor.stop()

    reactor.callLater(seconds, expire)


def test_application_runs_and_stops_its_reactor(reactor: Any, peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Ticker(200), loop=peer.loop))
    loop = wsloop.get_loop(reactor)
    rec = Recorder(want=5)
    client = wsloop.connect(server.url, rec, loop=loop)  # before reactor.run()
    rec.on_each = lambda r, ws, data: client.close() if len(r.messages) == 5 else None
    client.add_done_callback(reactor.stop)
    guard(reactor)
    reactor.run(installSignalHandlers=False)
    assert client.closed, "the reactor stopped for another reason"
    assert seqs(rec.messages)[:5] == [1, 2, 3, 4, 5]
    assert rec.closes and rec.closes[0][2] is True
    assert loop.stats() == {"readers": 0, "writers": 0, "pending": 0, "threadsafe": 0}
    loop.close()
    peer.call(server.close)


def test_shutdown_with_a_connection_open_lets_go_quietly(
    reactor: Any, peer: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """reactor.stop() disconnects every descriptor (connectionLost): wsloop
    must not treat that as a hang-up, call its watches and register them
    again on a reactor that is shutting down."""
    server = peer.call(lambda: wsloop.serve(Ticker(200), loop=peer.loop))
    loop = wsloop.get_loop(reactor)
    rec = Recorder(want=3)
    calls: list[int] = []
    rec.on_each = lambda r, ws, data: (calls.append(1), reactor.stop() if len(calls) == 3 else None)
    client = wsloop.connect(server.url, rec, loop=loop)
    guard(reactor)
    with caplog.at_level(logging.ERROR):
        reactor.run(installSignalHandlers=False)
    assert len(calls) == 3, "no message after the reactor began to stop"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert client.state == "open"
    assert loop.stats()["readers"] == 1  # still recorded; the reactor dropped it
    assert not [x for x in reactor.getReaders() if x is not reactor.waker]
    loop.close()
    assert loop.stats()["readers"] == 0
    assert client.ws is not None
    client.ws.transport.sock.close()  # the connection died with the reactor
    peer.call(server.close)


def test_a_hang_up_without_input_still_fires_the_watch(reactor: Any) -> None:
    """A refused connect polls as OUT|ERR|HUP: Twisted then unregisters the
    descriptor and calls connectionLost instead of doWrite. The watch must
    fire anyway, and again while it stays (level-triggered)."""
    loop = wsloop.get_loop(reactor)
    sock = socket.socket()
    sock.setblocking(False)
    assert sock.connect_ex(("127.0.0.1", free_port())) in (errno.EINPROGRESS, errno.ECONNREFUSED)
    fired: list[int] = []

    def writable() -> None:
        if not fired:  # reading SO_ERROR clears it
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        fired.append(1)
        if len(fired) == 3:
            loop.remove_writer(sock)
            loop.call_later(0.02, loop.stop)

    loop.add_writer(sock, writable)
    from loopkit import run_loop

    assert run_loop(loop, timeout=5)
    assert len(fired) == 3
    assert loop.stats()["writers"] == 0 and not reactor.getWriters()
    loop.close()
    sock.close()
