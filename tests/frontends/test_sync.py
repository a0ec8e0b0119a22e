"""The blocking front-end, from several threads at once."""

from __future__ import annotations

import threading

import pytest

import wsloop
import wsloop.sync
from netkit import Echo, LoopThread, wsloop_threads


def test_many_threads_each_with_a_connection(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with wsloop.sync.connect(server.url) as ws:
                for i in range(50):
                    ws.send(f"{n}-{i}")
                    assert ws.recv(timeout=5) == f"{n}-{i}"
                assert ws.ping() < 1
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
