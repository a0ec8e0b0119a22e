"""After everything is closed, nothing of wsloop's remains: fds, watchers, threads."""

from __future__ import annotations

import gc
import threading

import wsloop
from loopkit import native_count
from netkit import Echo, Recorder, open_fds, tls_contexts, wsloop_threads


def _prime_libuv_streams(b) -> None:  # type: ignore[no-untyped-def]
    """libuv opens one reserve fd per loop (for running out of fds) with its
    first stream; an application's loop that already had one keeps it. Make
    that happen before counting, with a stream that is not wsloop's."""
    import asyncio
    import socket

    left, right = socket.socketpair()

    async def adopt() -> None:
        transport, _ = await b.native.connect_accepted_socket(asyncio.Protocol, left)
        transport.close()

    b.native.run_until_complete(adopt())
    b.run_until(lambda: True)
    right.close()


def test_nothing_remains_after_close(any_backend) -> None:  # type: ignore[no-untyped-def]
    b = any_backend
    b.run_until(lambda: True)  # let the native loop set up its own helpers
    if b.name == "uvloop" and b.native is not None:
        _prime_libuv_streams(b)
    gc.collect()
    fds_before = open_fds()
    native_before = native_count(b.name, b.native) if b.native is not None else None
    server_ctx, client_ctx = tls_contexts()
    server = wsloop.serve(Echo(), loop=b.loop)
    tls_server = wsloop.serve(Echo(), loop=b.loop, ssl=server_ctx)
    recs = [Recorder(want=1, send=["x"]) for _ in range(4)]
    clients = []
    for i, rec in enumerate(recs):
        url = server.url if i % 2 == 0 else tls_server.url.replace("127.0.0.1", "localhost")
        # Half by name (DNS in a thread), half by IP literal; one from another thread.
        kwargs = {"ssl": client_ctx} if i % 2 else {}
        if i == 3:
            t = threading.Thread(
                target=lambda u=url, r=rec, k=kwargs: clients.append(
                    wsloop.connect(u, r, loop=b.loop, **k)
                )
            )
            t.start()
            t.join()
        else:
            clients.append(wsloop.connect(url, rec, loop=b.loop, ping_interval=0.05, **kwargs))
    assert b.run_until(lambda: all(r.got_all.is_set() for r in recs), timeout=15)
    for c in clients:
        c.close()
    server.close()
    tls_server.close()
    assert b.run_until(
        lambda: all(c.closed for c in clients) and server.closed and tls_server.closed
    )
    assert b.loop.stats() == {
        "readers": 0,
        "writers": 0,
        "pending": 0,
        "threadsafe": 0,
    }
    b.loop.close()
    if b.native is not None:
        from loopkit import native_run

        native_run(b.name, b.native, lambda: False, timeout=0.05)
        assert native_count(b.name, b.native) == native_before
    gc.collect()
    assert open_fds() <= fds_before, open_fds() - fds_before
    # DNS threads finish on their own; watchdog timers were cancelled.
    for t in threading.enumerate():
        if t.name.startswith("wsloop-"):
            t.join(5)
    assert wsloop_threads() == []


def test_helper_threads_stay_few_and_go_away(backend) -> None:  # type: ignore[no-untyped-def]
    """200 connects by name, requested before the loop runs: one watchdog
    thread, at most 8 resolver threads, and none left afterwards."""
    server = wsloop.serve(Echo(), loop=backend.loop)
    opened: list[int] = []
    peak = [0]

    def on_open(ws: wsloop.WebSocket) -> None:
        opened.append(1)
        peak[0] = max(peak[0], len(wsloop_threads()))

    clients = [
        wsloop.connect(f"ws://localhost:{server.port}/", loop=backend.loop, on_open=on_open)
        for _ in range(200)
    ]
    assert wsloop_threads() == ["wsloop-watchdog"]
    assert backend.run_until(lambda: len(opened) == 200, timeout=30)
    assert peak[0] <= 9, peak
    for c in clients:
        c.close()
    server.close()
    assert backend.run_until(lambda: server.closed and all(c.closed for c in clients))
    for t in threading.enumerate():
        if t.name.startswith("wsloop-"):
            t.join(5)
    assert wsloop_threads() == []
