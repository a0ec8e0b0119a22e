"""The blocking front-end, from several threads at once."""

from __future__ import annotations

import threading
import time

import pytest

import wsloop
import wsloop.sync
from netkit import Echo, LoopThread, wsloop_threads


def round_trip(ws: wsloop.sync.SyncWebSocket) -> float:
    """``ws.ping()``'s round trip, checked against the time the call took
    (a fixed bound could be broken by a loaded machine's scheduler alone)."""
    started = time.monotonic()
    rtt = ws.ping(timeout=10)
    assert rtt <= time.monotonic() - started, rtt
    return rtt


def test_many_threads_each_with_a_connection(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with wsloop.sync.connect(server.url) as ws:
                for i in range(50):
                    ws.send(f"{n}-{i}")
                    assert ws.recv(timeout=5) == f"{n}-{i}"
                assert round_trip(ws) >= 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    # One shared loop thread, stopped after the last connection closed.
    for t in threading.enumerate():
        if t.name == "wsloop-sync-loop":
            t.join(5)
    assert wsloop_threads() == []
    peer.call(server.close)


def test_one_connection_shared_by_threads(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    with wsloop.sync.connect(server.url) as ws:

        def send(n: int) -> None:
            for i in range(100):
                ws.send(f"{n}:{i}")

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        got = [ws.recv(timeout=5) for _ in range(400)]
        for n in range(4):
            assert [m for m in got if str(m).startswith(f"{n}:")] == [
                f"{n}:{i}" for i in range(100)
            ]
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
    with pytest.raises(wsloop.ConnectionClosedOK):
        ws.recv()
    peer.call(server.close)


def test_iteration_and_errors(peer: LoopThread) -> None:
    def on_open(ws: wsloop.WebSocket) -> None:
        for i in range(3):
            ws.send(str(i))
        ws.close()

    server = peer.call(lambda: wsloop.serve(loop=peer.loop, on_open=on_open))
    with wsloop.sync.connect(server.url) as ws:
        assert list(ws) == ["0", "1", "2"]
    from netkit import free_port

    with pytest.raises(ConnectionRefusedError):
        wsloop.sync.connect(f"ws://127.0.0.1:{free_port()}/")
    peer.call(server.close)


def test_a_blocking_server_runs_a_function_per_connection_in_threads() -> None:
    started = threading.Barrier(3, timeout=10)

    def handler(ws: wsloop.sync.SyncWebSocket) -> None:
        first = ws.recv(timeout=10)
        if first == "boom":
            raise RuntimeError("bug in the handler")
        started.wait()  # both connections are served at once, not one after the other
        ws.send(f"{threading.current_thread().name}:{first}")
        for message in ws:
            ws.send(message)

    with wsloop.sync.serve(handler) as server:
        assert server.url.startswith("ws://127.0.0.1:")
        with wsloop.sync.connect(server.url) as a, wsloop.sync.connect(server.url) as b:
            a.send("a")
            b.send("b")
            started.wait()
            assert a.recv(timeout=10) == "wsloop-sync-handler:a"
            assert b.recv(timeout=10) == "wsloop-sync-handler:b"
            b.send(b"\x00bytes")
            assert b.recv(timeout=10) == b"\x00bytes"
            assert len(server.connections) == 2
            assert all(c.state == "open" for c in server.connections)
            assert server.broadcast("all") == 2
            assert a.recv(timeout=10) == b.recv(timeout=10) == "all"
            assert a.local_address == server.connections[0].remote_address or (
                a.local_address == server.connections[1].remote_address
            )
        # A function that raises: its connection closes with 1011.
        with wsloop.sync.connect(server.url) as c:
            c.send("boom")
            with pytest.raises(wsloop.ConnectionClosedError) as info:
                c.recv(timeout=10)
            assert info.value.code == 1011
            assert c.wait_closed(10) and c.closed and c.close_code == 1011
    assert server.closed
    for t in threading.enumerate():
        if t.name == "wsloop-sync-loop":
            t.join(5)
    assert wsloop_threads() == []


def test_a_blocking_server_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match="function taking the connection"):
        wsloop.sync.serve("echo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue must be at least 1"):
        wsloop.sync.serve(print, max_queue=0)
    with pytest.raises(TypeError, match="valid options"):
        wsloop.sync.serve(print, ping_intervall=3)
    assert wsloop_threads() == []


class Sink(wsloop.Handler):
    """Reads every message and answers none."""

    def __init__(self) -> None:
        self.received = 0
        self.got = threading.Event()

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.received += len(data)
        if self.received >= 8 * 100_000:
            self.got.set()


@pytest.mark.parametrize("compression", [False, True])
def test_a_blocking_send_returns_once_its_data_is_within_the_limit(
    peer: LoopThread, compression: bool
) -> None:
    # The kernel takes a 100 KB message at once: no writable event ever
    # follows, and the send must still return (issue 17, defect 1).
    sink = Sink()
    server = peer.call(lambda: wsloop.serve(sink, loop=peer.loop, compression=compression))
    with wsloop.sync.connect(server.url, compression=compression) as ws:
        done = [threading.Event() for _ in range(8)]

        def send(n: int) -> None:
            ws.send(bytes([n]) * 100_000)  # no timeout: it must not need one
            done[n].set()

        threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        assert all(d.wait(10) for d in done), "a blocking send never returned"
        assert sink.got.wait(10)
    peer.call(server.close)


def test_a_str_that_cannot_be_encoded_fails_in_the_sending_thread(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    with wsloop.sync.connect(server.url) as ws:
        with pytest.raises(UnicodeEncodeError):
            ws.send("lone surrogate \ud800")
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
    peer.call(server.close)


def test_ping_on_a_closed_connection_raises_connection_closed(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    ws = wsloop.sync.connect(server.url)
    assert round_trip(ws) >= 0
    ws.close()
    with pytest.raises(wsloop.ConnectionClosedOK):
        ws.ping(timeout=5)  # at once, not after the timeout
    peer.call(server.close)


def test_closing_a_closed_server_does_nothing_after_its_loop_has_gone() -> None:
    with wsloop.sync.serve(lambda ws: None) as server:
        pass
    # The shared loop thread stops once its last user is done: wait for it,
    # so that the close below meets a closed loop every time.
    for thread in threading.enumerate():
        if thread.name == "wsloop-sync-loop":
            thread.join(10)
            assert not thread.is_alive()
    assert server.closed
    server.close()  # once raised "the builtin loop adapter is closed"
    assert server.wait_closed(0)
