"""Reconnect, keepalive, backpressure, TLS, compression and sizes, on every backend."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

import pytest

import wsloop
import wsloop.sync
from netkit import (
    Echo,
    LoopThread,
    RawPeer,
    Recorder,
    ResumableFeed,
    Ticker,
    resume_from_last_seq,
    seqs,
    tls_contexts,
)


def test_reconnects_with_backoff_after_server_restart(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Ticker(200), loop=peer.loop))
    port = server.port
    policy = wsloop.Reconnect(initial_delay=0.05, max_delay=0.2, factor=2, jitter=0.1)
    rec = Recorder()
    phase = {"restarted": False, "second": None}

    def on_state(client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        rec.states.append((state, detail))
        waits = [d for s, d in rec.states if s == "waiting"]
        # Keep the server down for three failed attempts, then restart it.
        if state == "waiting" and len(waits) == 4 and not phase["restarted"]:
            phase["restarted"] = True
            peer.loop.call_soon_threadsafe(restart)

    def restart() -> None:
        phase["second"] = wsloop.serve(Ticker(200), port=port, loop=peer.loop)

    rec.on_state = on_state  # type: ignore[method-assign]

    def on_each(r: Recorder, ws: wsloop.WebSocket, data: Any) -> None:
        if len(r.messages) == 10 and not phase["restarted"]:
            peer.loop.call_soon_threadsafe(server.close)

    rec.on_each = on_each
    client = wsloop.connect(server.url, rec, loop=backend.loop, reconnect=policy)

    def resumed() -> bool:
        return phase["restarted"] and len(rec.messages) >= 20

    assert backend.run_until(resumed, timeout=15), rec.states
    states = [s for s, _ in rec.states]
    assert states[:2] == ["connecting", "open"]
    assert states[-1] == "open" and states.count("open") == 2
    delays = [d["delay"] for s, d in rec.states if s == "waiting"]
    assert delays[1] > delays[0] * 1.5 and max(delays) <= 0.2 * 1.1 + 1e-9, delays
    # The new server counts from 1 again: the feed resumed on a new connection.
    assert seqs(rec.messages)[10] == 1
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert client.state == "closed"
    second = phase["second"]
    peer.call(second.close)  # type: ignore[attr-defined]


def test_gives_up_after_max_attempts(backend) -> None:  # type: ignore[no-untyped-def]
    from netkit import free_port

    rec = Recorder()
    policy = wsloop.Reconnect(initial_delay=0.01, max_attempts=3)
    client = wsloop.connect(
        f"ws://127.0.0.1:{free_port()}/", rec, loop=backend.loop, reconnect=policy
    )
    assert backend.run_until(lambda: client.closed)
    assert client.state == "gave_up"
    assert [s for s, _ in rec.states].count("connecting") == 3
    assert all(isinstance(e, ConnectionRefusedError) for e in rec.errors) and len(rec.errors) == 3


def timed_states(rec: Recorder) -> list[tuple[str, dict[str, Any], float]]:
    """Make ``rec`` also record when each state began."""
    out: list[tuple[str, dict[str, Any], float]] = []

    def on_state(client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        rec.states.append((state, detail))
        out.append((state, detail, time.monotonic()))

    rec.on_state = on_state  # type: ignore[method-assign]
    return out


def test_backoff_doubles_up_to_max_delay_against_a_refused_port(backend) -> None:  # type: ignore[no-untyped-def]
    from netkit import free_port

    rec = Recorder()
    states = timed_states(rec)
    policy = wsloop.Reconnect(initial_delay=0.02, factor=2, max_delay=0.1, jitter=0, max_attempts=6)
    client = wsloop.connect(
        f"ws://127.0.0.1:{free_port()}/", rec, loop=backend.loop, reconnect=policy
    )
    assert backend.run_until(lambda: client.closed)
    assert client.state == "gave_up"
    waits = [(d["attempt"], d["delay"]) for s, d, _ in states if s == "waiting"]
    assert waits == [
        (1, pytest.approx(0.02)),
        (2, pytest.approx(0.04)),
        (3, pytest.approx(0.08)),
        (4, pytest.approx(0.1)),
        (5, pytest.approx(0.1)),
    ]
    # Each wait lasted its delay before the next attempt.
    for (s1, d1, t1), (s2, _, t2) in itertools.pairwise(states):
        if s1 == "waiting":
            assert s2 == "connecting" and t2 - t1 >= d1["delay"] - 0.005, (t1, t2, d1)


def test_backoff_starts_over_after_a_connection_that_opened(backend) -> None:  # type: ignore[no-untyped-def]
    # A server that accepts every connection, then closes it at once.
    server = wsloop.serve(loop=backend.loop, on_open=lambda ws: ws.close(1001, "bye"))
    rec = Recorder()
    states = timed_states(rec)
    policy = wsloop.Reconnect(initial_delay=0.02, factor=2, max_delay=10, jitter=0)
    client = wsloop.connect(server.url, rec, loop=backend.loop, reconnect=policy)
    assert backend.run_until(lambda: [s for s, _ in rec.states].count("waiting") >= 4)
    client.close()
    server.close()
    assert backend.run_until(lambda: client.closed and server.closed)
    names = [s for s, _, _ in states]
    assert names[:9] == ["connecting", "open", "waiting"] * 3, names
    waits = [(d["attempt"], d["delay"]) for s, d, _ in states if s == "waiting"]
    assert waits[:4] == [(1, pytest.approx(0.02))] * 4, waits
    assert rec.closes[:4] == [(1001, "bye", True)] * 4


def test_close_while_waiting_to_reconnect_stops_for_good(backend) -> None:  # type: ignore[no-untyped-def]
    from netkit import free_port

    rec = Recorder()
    policy = wsloop.Reconnect(initial_delay=0.3, jitter=0)
    client = wsloop.connect(
        f"ws://127.0.0.1:{free_port()}/", rec, loop=backend.loop, reconnect=policy
    )
    assert backend.run_until(lambda: client.state == "waiting")
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert client.state == "closed"
    assert [s for s, _ in rec.states] == ["connecting", "waiting", "closed"]
    # Bounded negative wait, past the retry's due time: no further attempt.
    assert not backend.run_until(lambda: len(rec.states) > 3, timeout=0.5)
    assert client.attempts == 1 and len(rec.errors) == 1


def test_before_reconnect_resumes_from_the_last_message_seen(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    feed = ResumableFeed(per_connection=3)
    server = peer.call(lambda: wsloop.serve(feed, loop=peer.loop))
    rec = Recorder()
    policy = wsloop.Reconnect(initial_delay=0.01, jitter=0)
    client = wsloop.connect(
        server.url + "feed",
        rec,
        loop=backend.loop,
        headers={"X-Client": "test"},
        reconnect=policy,
        before_reconnect=resume_from_last_seq(rec),
    )
    rec.on_each = lambda r, ws, data: client.close() if len(r.messages) == 12 else None
    assert backend.run_until(lambda: client.closed)
    assert seqs(rec.messages) == list(range(1, 13))  # exactly once, in order
    # The hook got the URL and headers the client was made with, each time.
    assert [path for path, _ in feed.requests] == [
        "/feed",
        "/feed?since=3",
        "/feed?since=6",
        "/feed?since=9",
    ]
    assert [h.get("x-last-seq") for _, h in feed.requests] == [None, "3", "6", "9"]
    assert all(h["x-client"] == "test" for _, h in feed.requests)
    connecting = [d["url"] for s, d in rec.states if s == "connecting"]
    assert connecting[1] == server.url + "feed?since=3"
    peer.call(server.close)


def test_before_reconnect_mistakes_are_reported_and_stop_the_client(
    backend, peer: LoopThread
) -> None:  # type: ignore[no-untyped-def]
    # A hook's mistake is the application's: reported to on_error, then the
    # policy's retry_on decides, and the default gives up on it.
    feed = ResumableFeed(per_connection=1)
    server = peer.call(lambda: wsloop.serve(feed, loop=peer.loop))

    def raises(url: str, headers: list[tuple[str, str]]) -> Any:
        raise RuntimeError("bug in the hook")

    def returns_a_url(url: str, headers: list[tuple[str, str]]) -> Any:
        return url  # not a (url, headers) pair

    hooks = [raises, returns_a_url]
    for hook, kind in zip(hooks, [RuntimeError, TypeError], strict=True):
        rec = Recorder()
        policy = wsloop.Reconnect(initial_delay=0.01, jitter=0)
        client = wsloop.connect(
            server.url, rec, loop=backend.loop, reconnect=policy, before_reconnect=hook
        )
        assert backend.run_until(lambda c=client: c.closed)  # type: ignore[misc]
        assert client.state == "gave_up"
        assert [type(e) for e in rec.errors] == [kind]
        gave_up = rec.states[-1][1]
        assert gave_up["retryable"] is False and gave_up["error"] is rec.errors[0]
    assert "before_reconnect must return (url, headers)" in str(rec.errors[0])
    assert len(feed.requests) == 2  # one connection each: no attempt with what the hook got wrong
    peer.call(server.close)


def test_before_reconnect_says_what_it_needs() -> None:
    loop = wsloop.get_loop("builtin")
    try:
        with pytest.raises(ValueError, match="pass reconnect=True"):
            wsloop.connect("ws://127.0.0.1:1/", loop=loop, before_reconnect=lambda u, h: (u, h))
        with pytest.raises(TypeError, match="before_reconnect must be a function"):
            wsloop.connect("ws://127.0.0.1:1/", loop=loop, reconnect=True, before_reconnect=3)  # type: ignore[typeddict-item]
    finally:
        loop.close()
    with pytest.raises(ValueError, match="does not reconnect by itself"):
        wsloop.sync.connect("ws://127.0.0.1:1/", before_reconnect=lambda u, h: (u, h))


def test_keepalive_detects_a_peer_that_stops_answering(backend) -> None:  # type: ignore[no-untyped-def]
    pings: list[int] = []

    def silent(sock: socket.socket, conn: Any) -> None:
        # The peer keeps TCP open and reads, but never answers a ping: it
        # counts them until the client drops the connection.
        from wsloop.protocol import Ping

        seen = 0
        try:
            while data := sock.recv(65536):
                conn.receive_data(data)
                seen += sum(isinstance(event, Ping) for event in conn.events())
        except OSError:
            pass
        pings.append(seen)

    peer = RawPeer(silent)
    rec = Recorder()
    interval, timeout = 0.2, 0.4
    times: dict[str, float] = {}

    def on_open(ws: wsloop.WebSocket) -> None:
        times.setdefault("open", time.monotonic())
        Recorder.on_open(rec, ws)

    def on_close(ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        times.setdefault("close", time.monotonic())
        Recorder.on_close(rec, ws, code, reason, clean)

    rec.on_open = on_open  # type: ignore[method-assign]
    rec.on_close = on_close  # type: ignore[method-assign]
    client = wsloop.connect(
        peer.url, rec, loop=backend.loop, ping_interval=interval, ping_timeout=timeout
    )
    assert backend.run_until(rec.closed.is_set, timeout=5)
    # Dropped once the first ping's timeout ran out: not before, and not
    # after a later ping's (no keepalive ping follows an unanswered one, so
    # the peer saw one). Not timed from above: on a loaded machine the
    # timer itself may fire late.
    elapsed = times["close"] - times["open"]
    assert elapsed >= interval + timeout - 0.05, elapsed
    assert any(isinstance(e, TimeoutError) for e in rec.errors)
    assert rec.closes[0][0] == 1011
    assert peer.done.wait(10)
    assert pings == [1], pings
    peer.close()
    assert backend.run_until(lambda: client.closed)


def test_keepalive_keeps_a_healthy_connection(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    rec = Recorder()
    pongs: list[bytes] = []
    rec.on_pong = lambda ws, data: pongs.append(data)  # type: ignore[method-assign]
    # Pings often; a pong gets seconds (the machine may be loaded).
    started = time.monotonic()
    client = wsloop.connect(
        server.url, rec, loop=backend.loop, ping_interval=0.05, ping_timeout=5.0
    )
    assert backend.run_until(lambda: len(pongs) >= 4, timeout=10)
    # A round trip: within the time the test has run, however loaded the
    # machine (not a bound of its own, which a slow scheduler could break).
    latency = rec.ws.latency if rec.ws is not None else None
    assert latency is not None and 0 <= latency <= time.monotonic() - started
    assert not rec.closes
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


def test_keepalive_keeps_a_connection_whose_pongs_are_slow(backend) -> None:  # type: ignore[no-untyped-def]
    """A pong that arrives within ping_timeout, even late, settles its ping:
    a peer that answers every ping 180 ms late, past the next keepalive
    ticks (every 50 ms), stays connected while the next pings go out.

    The timeout (1 s) leaves the late pong most of a second to spare on a
    loaded machine; the test still outlasts the first ping's, so a pong
    that did not settle its ping would have failed the connection first."""
    delay = 0.18
    timers: list[threading.Timer] = []
    first_ping: list[float] = []

    def slow_ponger(sock: socket.socket, conn: Any) -> None:
        from wsloop.protocol import Closed, Ping, encode_frame

        def pong(payload: bytes) -> None:
            try:
                sock.sendall(encode_frame(0xA, payload))
            except OSError:
                pass

        while True:
            data = sock.recv(65536)
            if not data:
                return
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, Ping):
                    if not first_ping:
                        first_ping.append(time.monotonic())
                    conn.data_to_send()  # not the pong it queued at once...
                    timer = threading.Timer(delay, pong, (event.data,))  # ...but a late one
                    timers.append(timer)
                    timer.start()
                elif isinstance(event, Closed):
                    sock.sendall(conn.data_to_send())
                    return

    peer = RawPeer(slow_ponger)
    rec = Recorder()
    pongs: list[bytes] = []
    rec.on_pong = lambda ws, data: pongs.append(data)  # type: ignore[method-assign]
    timeout = 1.0
    client = wsloop.connect(
        peer.url, rec, loop=backend.loop, ping_interval=0.05, ping_timeout=timeout
    )

    def past_the_first_timeout() -> bool:
        # Several late pongs, and the first ping's timeout long gone (its
        # ping went out before the peer saw it).
        if rec.closed.is_set():
            return True
        return (
            len(pongs) >= 5
            and bool(first_ping)
            and time.monotonic() > first_ping[0] + timeout + 0.2
        )

    try:
        assert backend.run_until(past_the_first_timeout, timeout=10)
        assert not rec.closes and not rec.errors, (rec.closes, rec.errors)
        assert rec.ws is not None and rec.ws.latency is not None and rec.ws.latency >= delay
        client.close()
        assert backend.run_until(lambda: client.closed)
        assert rec.closes == [(1000, "", True)]
    finally:
        for timer in timers:
            timer.cancel()
        peer.close()


def test_pause_reading_holds_messages_and_keepalive_waits(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    rec = Recorder()
    pongs: list[bytes] = []
    rec.on_pong = lambda ws, data: pongs.append(data)  # type: ignore[method-assign]

    def on_open(ws: wsloop.WebSocket) -> None:
        Recorder.on_open(rec, ws)
        ws.pause_reading()
        ws.send("held")

    rec.on_open = on_open  # type: ignore[method-assign]
    # A short pong timeout, as it must run out (twice) while reading is
    # paused; once reading resumes, a pong must beat it: 300 ms, not less,
    # so that it does on a loaded machine too.
    client = wsloop.connect(
        server.url, rec, loop=backend.loop, ping_interval=0.05, ping_timeout=0.3
    )
    assert backend.run_until(rec.opened.is_set)
    # Bounded negative wait, past two ping timeouts (the first ping goes out
    # 50 ms after the open): the echo and the pongs wait unread, and
    # keepalive does not drop the paused connection.
    assert not backend.run_until(lambda: bool(rec.messages) or rec.closed.is_set(), timeout=0.8)
    assert rec.ws is not None and rec.ws.state == "open" and not pongs
    rec.ws.resume_reading()
    assert backend.run_until(lambda: rec.messages == ["held"] and len(pongs) >= 2)
    assert not rec.closes and not rec.errors
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert rec.closes == [(1000, "", True)]
    peer.call(server.close)


def test_close_timeout_drops_a_peer_that_never_answers_the_close(backend) -> None:  # type: ignore[no-untyped-def]
    stop = threading.Event()

    def mute(sock: socket.socket, conn: Any) -> None:
        # Keeps TCP open but never reads again, so never answers the close.
        stop.wait(20)

    peer = RawPeer(mute)
    rec = Recorder()
    client = wsloop.connect(peer.url, rec, loop=backend.loop, close_timeout=0.3)
    try:
        assert backend.run_until(rec.opened.is_set)
        started = time.monotonic()
        client.close()
        # Closed at close_timeout, not before; and not after the default
        # close_timeout (10 s) either: the bound is the wait's, loose
        # enough for a loaded machine, where the timer itself may be late.
        assert backend.run_until(rec.closed.is_set, timeout=5)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.3 - 0.02, elapsed
        assert [(code, clean) for code, _, clean in rec.closes] == [(1006, False)]
        assert backend.run_until(lambda: client.closed)
    finally:
        stop.set()
        peer.close()


def test_handler_errors_log_keeps_the_connection_open(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    rec = Recorder(want=2, send=["first"])

    def on_each(r: Recorder, ws: wsloop.WebSocket, data: Any) -> None:
        if data == "first":
            ws.send("second")
            raise ValueError("bug in the application")

    rec.on_each = on_each
    client = wsloop.connect(server.url, rec, loop=backend.loop, handler_errors="log")
    assert backend.run_until(rec.got_all.is_set)
    assert rec.messages == ["first", "second"]
    assert [type(e) for e in rec.errors] == [ValueError]
    assert rec.ws is not None and rec.ws.state == "open" and not rec.closes
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert rec.closes == [(1000, "", True)]
    peer.call(server.close)


def test_ping_reports_round_trip_time(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    rec = Recorder()
    rtts: list[float] = []
    rec.on_open = lambda ws: (Recorder.on_open(rec, ws), ws.ping(callback=rtts.append))  # type: ignore[method-assign]
    started = time.monotonic()
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(lambda: bool(rtts))
    # A round trip: within the time the test has run (a fixed bound could
    # be broken by a slow scheduler alone).
    assert 0 <= rtts[0] <= time.monotonic() - started
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


TOTAL = 256 << 20
CHUNK = 1 << 20


def test_backpressure_bounds_the_send_buffer(backend) -> None:  # type: ignore[no-untyped-def]
    received = [0]

    pause = threading.Event()

    def slow_reader(sock: Any, conn: Any) -> None:
        # A consumer slower than the sender: a small receive buffer, and a
        # short pause after every 8 MiB (simulated work, not synchronisation).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        mark = 0
        while received[0] < TOTAL:
            data = sock.recv(65536)
            if not data:
                return
            received[0] += len(data)
            if received[0] - mark >= 8 * CHUNK:
                mark = received[0]
                pause.wait(0.02)

    peer = RawPeer(slow_reader)
    payload = bytes(CHUNK)
    state = {"sent": 0, "max_buffered": 0, "writable": 0}
    limit = 64 * 1024

    class Sender(wsloop.Handler):
        def pump(self, ws: wsloop.WebSocket) -> None:
            while state["sent"] < TOTAL and ws.buffered_amount <= limit:
                ws.send(payload)
                state["sent"] += CHUNK
                state["max_buffered"] = max(state["max_buffered"], ws.buffered_amount)

        def on_open(self, ws: wsloop.WebSocket) -> None:
            self.pump(ws)

        def on_writable(self, ws: wsloop.WebSocket) -> None:
            state["writable"] += 1
            self.pump(ws)

    client = wsloop.connect(
        peer.url, Sender(), loop=backend.loop, compression=False, write_limit=limit
    )
    assert backend.run_until(peer.done.is_set, timeout=120)
    assert received[0] >= TOTAL
    assert state["sent"] == TOTAL
    assert state["max_buffered"] <= limit + CHUNK + 14, state
    assert state["writable"] > 10, "the writable event drove the sending"
    client.close()
    backend.run_until(lambda: client.closed)
    peer.close()


SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_echo_every_size(backend, peer: LoopThread, secure: bool, compression: bool) -> None:  # type: ignore[no-untyped-def]
    server_ctx, client_ctx = tls_contexts() if secure else (None, None)
    server = peer.call(
        lambda: wsloop.serve(
            Echo(), loop=peer.loop, ssl=server_ctx, max_message_size=None, compression=compression
        )
    )
    url = server.url.replace("127.0.0.1", "localhost") if secure else server.url
    pattern = bytes(range(256))
    expected: list[str | bytes] = []
    for i, size in enumerate(SIZES):
        data = (pattern * (size // 256 + 1))[:size]
        expected.append(data if i % 2 else data.decode("latin-1"))
    rec = Recorder(want=len(expected), send=expected)
    client = wsloop.connect(
        url, rec, loop=backend.loop, ssl=client_ctx, max_message_size=None, compression=compression
    )
    assert backend.run_until(rec.got_all.is_set, timeout=60), rec.errors
    assert rec.messages == expected
    assert rec.ws is not None and bool(rec.ws.extensions) is compression
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert rec.closes == [(1000, "", True)]
    peer.call(server.close)


def test_tls_verification_is_on_by_default(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server_ctx, _ = tls_contexts()
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop, ssl=server_ctx))
    rec = Recorder()
    client = wsloop.connect(server.url.replace("127.0.0.1", "localhost"), rec, loop=backend.loop)
    assert backend.run_until(lambda: client.closed)
    assert not rec.opened.is_set()
    import ssl

    assert isinstance(rec.errors[0], ssl.SSLCertVerificationError)
    peer.call(server.close)


def test_sends_from_many_threads_never_interleave(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop, max_message_size=None))
    threads_n, per_thread = 8, 200
    rec = Recorder(want=threads_n * per_thread)

    def blast(ws: wsloop.WebSocket, t: int) -> None:
        for i in range(per_thread):
            ws.send(f"{t}:{i}:" + "x" * (i * 37 % 5000))

    def on_open(ws: wsloop.WebSocket) -> None:
        Recorder.on_open(rec, ws)
        for t in range(threads_n):
            threading.Thread(target=blast, args=(ws, t)).start()

    rec.on_open = on_open  # type: ignore[method-assign]
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(rec.got_all.is_set, timeout=30)
    by_thread: dict[str, list[int]] = {}
    for m in rec.messages:
        assert isinstance(m, str)
        t, i, pad = m.split(":")
        assert pad == "x" * (int(i) * 37 % 5000)
        by_thread.setdefault(t, []).append(int(i))
    assert all(v == list(range(per_thread)) for v in by_thread.values())
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


def test_handler_exception_closes_1011_and_loop_goes_on(backend, peer: LoopThread) -> None:  # type: ignore[no-untyped-def]
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    rec = Recorder()

    def on_each(r: Recorder, ws: wsloop.WebSocket, data: Any) -> None:
        raise ValueError("bug in the application")

    rec.on_each = on_each
    rec.send_on_open = ["hi"]
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        backend.loop.call_later(0.01, tick)

    backend.loop.call_soon(tick)
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(lambda: client.closed)
    assert isinstance(rec.errors[0], ValueError)
    assert rec.closes[0][0] == 1011
    n = len(ticks)
    assert backend.run_until(lambda: len(ticks) > n + 2), "the loop keeps running"
    peer.call(server.close)


def test_bad_arguments_are_clear() -> None:
    h = wsloop.Handler()
    with pytest.raises(ValueError, match="ws:// or wss://"):
        wsloop.connect("http://example.com/", h, loop="builtin")
    with pytest.raises(TypeError, match="valid options"):
        wsloop.connect("ws://h/", h, loop="builtin", ping_intervall=3)
    with pytest.raises(TypeError, match="ping_interval"):
        wsloop.connect("ws://h/", h, loop="builtin", ping_interval="3")
    with pytest.raises(TypeError, match="subprotocols"):
        wsloop.connect("ws://h/", h, loop="builtin", subprotocols="chat")
    with pytest.raises(TypeError, match="unknown callback"):
        wsloop.connect("ws://h/", loop="builtin", on_mesage=print)
    with pytest.raises(TypeError, match="none of the methods"):
        wsloop.connect("ws://h/", object(), loop="builtin")
    with pytest.raises(ValueError, match="jitter"):
        wsloop.Reconnect(jitter=2)
    with pytest.raises(TypeError, match=r"redirect_headers must be a function .*strip_credentials"):
        wsloop.connect("ws://h/", h, loop="builtin", redirect_headers=[("Cookie", "x")])
