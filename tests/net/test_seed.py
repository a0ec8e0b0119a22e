"""The failure that started the project, on every backend: a client whose
connect is requested before its loop runs receives a steady feed."""

from __future__ import annotations

import inspect
import logging
import threading
import time

import pytest

import wsloop
from netkit import LoopThread, Recorder, Ticker, seqs


def start_ticker(peer: LoopThread, rate: float) -> wsloop.Server:
    return peer.call(lambda: wsloop.serve(Ticker(rate), loop=peer.loop))  # type: ignore[no-any-return]


def test_connect_before_loop_runs_receives_every_message(any_backend, peer) -> None:  # type: ignore[no-untyped-def]
    server = start_ticker(peer, rate=200)
    rec = Recorder(want=100)
    client = wsloop.connect(server.url, rec, loop=any_backend.loop)  # the loop has not run yet
    assert not rec.opened.is_set() and client.state == "idle"
    assert any_backend.run_until(rec.got_all.is_set, timeout=15)
    assert seqs(rec.messages)[:100] == list(range(1, 101))
    assert rec.threads == {threading.get_ident()}, "callbacks run on the loop's thread"
    client.close()
    assert any_backend.run_until(lambda: client.closed)
    assert rec.closes and rec.closes[0][2] is True
    peer.call(server.close)
    assert server.wait_closed(5)


def test_slow_feed_two_a_second(backend, peer) -> None:  # type: ignore[no-untyped-def]
    server = start_ticker(peer, rate=2)
    rec = Recorder(want=3)
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    started = time.monotonic()
    assert backend.run_until(rec.got_all.is_set, timeout=10)
    assert seqs(rec.messages) == [1, 2, 3]
    assert time.monotonic() - started >= 0.9
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


def test_connect_from_another_thread_while_loop_runs(any_backend, peer) -> None:  # type: ignore[no-untyped-def]
    server = start_ticker(peer, rate=200)
    rec = Recorder(want=20)
    clients: list[wsloop.Client] = []
    any_backend.loop.call_soon(lambda: None)

    def from_thread() -> None:
        clients.append(wsloop.connect(server.url, rec, loop=any_backend.loop))

    # The loop is running when the other thread connects.
    any_backend.loop.call_soon(lambda: threading.Thread(target=from_thread).start())
    assert any_backend.run_until(rec.got_all.is_set, timeout=15)
    assert seqs(rec.messages)[:20] == list(range(1, 21))
    assert rec.threads == {threading.get_ident()}
    clients[0].close()
    assert any_backend.run_until(lambda: clients[0].closed)
    peer.call(server.close)


def test_loop_started_long_after_connect_still_connects(backend, peer) -> None:  # type: ignore[no-untyped-def]
    server = start_ticker(peer, rate=200)
    rec = Recorder(want=5)
    client = wsloop.connect(server.url, rec, loop=backend.loop, open_timeout=0.5, loop_warning=None)
    # The scenario itself: the loop starts later than the open timeout. The
    # timeout's clock starts when the loop starts the attempt, not at
    # connect() (then it would run out at once). Once the loop runs, the
    # attempt has the whole 0.5 s, ample for a local handshake even on a
    # loaded machine.
    threading.Event().wait(0.6)
    assert backend.run_until(rec.got_all.is_set, timeout=10)
    assert not rec.errors
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


class _Flag(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.messages.append(record.getMessage())
            self.seen.set()


@pytest.mark.parametrize("name", ["libev", "builtin", "asyncio", "qt", "twisted", "trio", "tk"])
def test_a_loop_that_never_runs_is_reported(name: str, peer: LoopThread) -> None:
    from loopkit import require

    require(name)
    loop = wsloop.get_loop(name)
    server = start_ticker(peer, rate=100)
    flag = _Flag()
    logging.getLogger("wsloop").addHandler(flag)
    try:
        # Reported twice: a RuntimeWarning at the application's connect()
        # (issued first), and a record on the "wsloop" logger.
        with pytest.warns(RuntimeWarning, match="was requested") as warned:
            rec = Recorder(want=1)
            line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
            client = wsloop.connect(server.url, rec, loop=loop, loop_warning=0.1)
            others = [
                wsloop.connect(server.url, Recorder(), loop=loop, loop_warning=0.1)
                for _ in range(3)
            ]
            assert flag.seen.wait(5), "no warning about the loop that does not run"
        (warning,) = [w for w in warned if "was requested" in str(w.message)]
        assert (warning.filename, warning.lineno) == (__file__, line), "not at the connect()"
        (message,) = flag.messages
        assert str(warning.message) == message
        assert name in message and "run" in message and server.url in message
        how = {"qt": "app.exec()", "tk": "root.mainloop()"}.get(name, "run")
        assert how in message, message
        # ...and once it runs, it simply works.
        from loopkit import drive

        assert drive(loop, None, name, rec.got_all.is_set)
        for c in [client, *others]:
            c.close()
        assert drive(loop, None, name, lambda: all(c.closed for c in [client, *others]))
        assert len(flag.messages) == 1, "one warning per loop, not per connect"
    finally:
        logging.getLogger("wsloop").removeHandler(flag)
        loop.close()
        peer.call(server.close)
