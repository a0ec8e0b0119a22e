"""The server on every backend: handshake errors, hooks, limits, broadcast, shutdown."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from typing import Any

import pytest

import wsloop
from netkit import Echo, FloodClient, LoopThread, Recorder
from wsloop.options import reuse_port_option


def raw_request(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes, read until the server closes; from a helper thread."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def in_thread(fn: Any, *args: Any) -> tuple[threading.Event, list[Any]]:
    done = threading.Event()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn(*args))
        except BaseException as exc:
            out.append(exc)
        done.set()

    threading.Thread(target=run).start()
    return done, out


GOOD = (
    "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"426"),
        ((GOOD.replace("Version: 13", "Version: 7") + "\r\n").encode(), b"426"),
        ((GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short") + "\r\n").encode(), b"400"),
        ((GOOD + "X: " + "a" * 9000 + "\r\n\r\n").encode(), b"431"),
        (b"POST / HTTP/1.1\r\n\r\n", b"405"),
        ((GOOD + "Host: y\r\n\r\n").encode(), b"400"),
        ((GOOD.replace("/chat", "/a\x00b") + "\r\n").encode(), b"400"),
        ((GOOD.replace("/chat", "/" + "a" * 10240) + "\r\n").encode(), b"414"),
    ],
)
def test_bad_handshakes_get_clear_http_errors(backend, request_bytes: bytes, status: bytes) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop)
    done, out = in_thread(raw_request, server.port, request_bytes)
    assert backend.run_until(done.is_set)
    response = out[0]
    assert isinstance(response, bytes), response
    assert response.split(b" ")[1] == status
    assert response.split(b"\r\n\r\n", 1)[1].strip()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_process_request_rejects_and_picks_subprotocol(backend) -> None:  # type: ignore[no-untyped-def]
    def check(ws: wsloop.WebSocket, request: Any) -> Any:
        if request.headers.get("Authorization") != "Bearer good":
            return 403, "bad token"
        return None

    opened: list[str | None] = []
    server = wsloop.serve(
        loop=backend.loop,
        process_request=check,
        subprotocols=["v2.feed", "v1.feed"],
        on_open=lambda ws: opened.append(ws.subprotocol),
    )
    bad = Recorder()
    c1 = wsloop.connect(server.url, bad, loop=backend.loop)
    good = Recorder()
    c2 = wsloop.connect(
        server.url,
        good,
        loop=backend.loop,
        headers={"Authorization": "Bearer good"},
        subprotocols=["v1.feed", "v2.feed"],
    )
    assert backend.run_until(lambda: c1.closed and good.opened.is_set())
    err = bad.errors[0]
    assert isinstance(err, wsloop.HandshakeError) and err.status == 403 and "bad token" in str(err)
    assert opened == ["v2.feed"] and good.ws is not None and good.ws.subprotocol == "v2.feed"
    c2.close()
    server.close()
    assert backend.run_until(lambda: c2.closed and server.closed)


@pytest.mark.parametrize("result", [403, ("403", "x"), (200, "ok"), (403, b"bytes"), [403, "x"]])
def test_process_request_returning_something_else_gets_a_500_at_once(  # type: ignore[no-untyped-def]
    backend, result: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = wsloop.serve(Echo(), loop=backend.loop, process_request=lambda ws, req: result)
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=backend.loop, open_timeout=30)
    assert backend.run_until(lambda: client.closed, timeout=5)  # not the open timeout
    err = rec.errors[0]
    assert isinstance(err, wsloop.HandshakeError) and err.status == 500, err
    assert "process_request" in caplog.text and repr(result) in caplog.text
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_the_server_headers_option_adds_to_the_101(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop, headers={"X-Server": "wsloop"})
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(rec.opened.is_set)
    assert rec.ws is not None and rec.ws.response is not None
    assert rec.ws.response.headers.get("X-Server") == "wsloop"
    client.close()
    server.close()
    assert backend.run_until(lambda: client.closed and server.closed)


def test_an_awaitable_from_process_request_on_another_loop_gets_a_500(  # type: ignore[no-untyped-def]
    backend,
) -> None:
    if backend.loop.name in ("asyncio", "uvloop"):
        pytest.skip("awaitables are awaited there")

    class Hook:  # an async __call__: not an async function, so serve() lets it through
        async def __call__(self, ws: wsloop.WebSocket, request: Any) -> None:
            return None

    server = wsloop.serve(Echo(), loop=backend.loop, process_request=Hook())
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=backend.loop, open_timeout=30)
    assert backend.run_until(lambda: client.closed, timeout=5)
    err = rec.errors[0]
    assert isinstance(err, wsloop.HandshakeError) and err.status == 500, err
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_a_process_request_that_answers_then_raises_keeps_its_answer(  # type: ignore[no-untyped-def]
    backend,
) -> None:
    def hook(ws: wsloop.WebSocket, request: Any) -> None:
        ws.reject(403, "no")
        raise RuntimeError("then a bug")

    server = wsloop.serve(Echo(), loop=backend.loop, process_request=hook)
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(lambda: client.closed, timeout=5)
    err = rec.errors[0]
    assert isinstance(err, wsloop.HandshakeError) and err.status == 403, err
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_an_async_process_request_needs_an_asyncio_loop() -> None:
    async def hook(ws: wsloop.WebSocket, request: Any) -> None:
        return None

    loop = wsloop.get_loop("builtin")
    try:
        with pytest.raises(TypeError, match="async process_request needs an asyncio"):
            wsloop.serve(Echo(), loop=loop, process_request=hook)
    finally:
        loop.close()


def test_origins_refuse_cross_site_handshakes_with_403(backend) -> None:  # type: ignore[no-untyped-def]
    seen: list[str | None] = []

    def hook(ws: wsloop.WebSocket, request: Any) -> None:
        seen.append(request.headers.get("Origin"))

    server = wsloop.serve(
        Echo(),
        loop=backend.loop,
        process_request=hook,
        origins=["https://app.example", re.compile(r"https://[a-z]+\.app\.example")],
    )
    origins = ["https://app.example", "https://eu.app.example", "https://evil.example", None]
    recs = {o: Recorder() for o in origins}
    clients = [wsloop.connect(server.url, r, loop=backend.loop, origin=o) for o, r in recs.items()]
    ok, sub, evil, none = recs.values()
    assert backend.run_until(
        lambda: (
            ok.opened.is_set() and sub.opened.is_set() and clients[2].closed and clients[3].closed
        )
    )
    for refused in (evil, none):
        err = refused.errors[0]
        assert isinstance(err, wsloop.HandshakeError) and err.status == 403, err
        assert not refused.opened.is_set()
    # Refused before the application's hook ever saw them.
    assert sorted(seen) == ["https://app.example", "https://eu.app.example"]
    for c in clients:
        c.close()
    server.close()
    assert backend.run_until(lambda: server.closed and all(c.closed for c in clients))


def test_origins_option_says_what_to_pass() -> None:
    loop = wsloop.get_loop("builtin")
    try:
        with pytest.raises(TypeError, match="list of allowed origins"):
            wsloop.serve(Echo(), loop=loop, origins="https://app.example")
        with pytest.raises(TypeError, match=r"re\.Pattern"):
            wsloop.serve(Echo(), loop=loop, origins=["https://app.example", 42])
        with pytest.raises(ValueError, match="every handshake would be refused"):
            wsloop.serve(Echo(), loop=loop, origins=[])
        with pytest.raises(ValueError, match="no path or trailing slash"):
            wsloop.serve(Echo(), loop=loop, origins=["https://app.example/"])
    finally:
        loop.close()


def test_max_connections_answers_503(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop, max_connections=2)
    recs = [Recorder() for _ in range(3)]
    clients = [wsloop.connect(server.url, r, loop=backend.loop) for r in recs[:2]]
    assert backend.run_until(lambda: all(r.opened.is_set() for r in recs[:2]))
    third = wsloop.connect(server.url, recs[2], loop=backend.loop)
    assert backend.run_until(lambda: third.closed)
    assert isinstance(recs[2].errors[0], wsloop.HandshakeError) and recs[2].errors[0].status == 503
    for c in clients:
        c.close()
    server.close()
    assert backend.run_until(lambda: server.closed and all(c.closed for c in clients))


def test_slow_loris_is_dropped(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop, handshake_timeout=0.2)

    def loris() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ...and never finishes
            return s.recv(100)

    done, out = in_thread(loris)
    assert backend.run_until(done.is_set, timeout=5)
    assert out == [b""], "dropped without an answer"
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_broadcast_skips_a_slow_client(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(loop=backend.loop, write_limit=16384, compression=False)
    fast = Recorder()
    c_fast = wsloop.connect(server.url, fast, loop=backend.loop, max_message_size=None)
    # A slow client: completes its handshake, then reads nothing.
    from wsloop.protocol import ClientConnection

    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    proto = ClientConnection(server.url, deflate=None)
    slow.sendall(proto.data_to_send())
    assert backend.run_until(lambda: len(server.connections) == 2 and fast.opened.is_set())
    big = b"x" * 65536
    slow_ws = next(ws for ws in server.connections if ws.remote_address == slow.getsockname())
    fast_ws = next(ws for ws in server.connections if ws is not slow_ws)
    counts: list[int] = []
    fast_expected = [0]

    def tick() -> None:
        fast_expected[0] += fast_ws.buffered_amount <= 16384
        counts.append(server.broadcast(big))
        if len(counts) < 200:
            backend.loop.call_later(0.001, tick)

    backend.loop.call_soon(tick)
    assert backend.run_until(lambda: len(counts) == 200, timeout=20)
    # The slow client was skipped once its buffer was full; it never held more.
    assert counts[0] == 2 and counts[-50:] == [1] * 50
    assert slow_ws.buffered_amount < 16384 + 65536 + 20
    assert fast_expected[0] >= 150
    assert backend.run_until(lambda: len(fast.messages) == fast_expected[0], timeout=20)
    slow.close()
    c_fast.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_broadcast_policy_close_closes_a_slow_client_with_1008(backend) -> None:  # type: ignore[no-untyped-def]
    from wsloop.protocol import ClientConnection, Closed, Message, Opened

    closes: list[tuple[int, str, bool]] = []
    server = wsloop.serve(
        loop=backend.loop,
        write_limit=16384,
        compression=False,
        broadcast_policy="close",
        on_close=lambda ws, code, reason, clean: closes.append((code, reason, clean)),
    )
    # A slow client: completes its handshake, then reads nothing until told.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    proto = ClientConnection(server.url, deflate=None, max_message_size=None)
    slow.sendall(proto.data_to_send())
    assert backend.run_until(lambda: len(server.connections) == 1)
    big = b"x" * 65536
    counts: list[int] = []

    def flood() -> None:
        # Broadcast until the client's buffer is over write_limit: then the
        # broadcast closes it instead of sending (bounded, in case it never does).
        while len(counts) < 1000 and (not counts or counts[-1] == 1):
            counts.append(server.broadcast(big))

    backend.loop.call_soon(flood)
    assert backend.run_until(lambda: bool(counts) and counts[-1] != 1)
    assert counts[-1] == 0 and len(counts) > 1, counts
    # Now the client reads: every message it was sent, then a close with 1008.
    events: list[Any] = []

    def read() -> None:
        with slow:
            while True:
                data = slow.recv(1 << 20)
                if not data:
                    return
                proto.receive_data(data)
                events.extend(proto.events())
                slow.sendall(proto.data_to_send())

    done, _ = in_thread(read)
    assert backend.run_until(done.is_set)
    assert isinstance(events[0], Opened)
    assert events[1:-1] == [Message(big)] * (len(counts) - 1)
    last = events[-1]
    assert isinstance(last, Closed) and (last.code, last.reason) == (1008, "too slow to keep up")
    # on_close comes from the loop's next turn after the transport closed:
    # the client may see the end first.
    assert backend.run_until(lambda: bool(closes))
    assert [(code, clean) for code, _, clean in closes] == [(1008, True)]
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_graceful_shutdown_closes_with_1001(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop)
    recs = [Recorder() for _ in range(3)]
    clients = [wsloop.connect(server.url, r, loop=backend.loop) for r in recs]
    assert backend.run_until(lambda: len(server.connections) == 3)
    server.close()
    assert backend.run_until(lambda: server.closed and all(c.closed for c in clients))
    assert all(r.closes == [(1001, "server shutting down", True)] for r in recs)
    stats = backend.loop.stats()
    assert stats["readers"] == stats["writers"] == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_shutdown_timeout_aborts_a_client_that_never_closes(backend) -> None:  # type: ignore[no-untyped-def]
    from wsloop.protocol import ClientConnection

    server = wsloop.serve(Echo(), loop=backend.loop, close_timeout=10)
    # A client that completes its handshake and never reads or answers again.
    mute = socket.create_connection(("127.0.0.1", server.port))
    mute.sendall(ClientConnection(server.url, deflate=None).data_to_send())
    try:
        assert backend.run_until(lambda: len(server.connections) == 1)
        started = time.monotonic()
        server.close(timeout=0.3)
        # After the shutdown timeout, and well before the connection's own
        # close_timeout (10 s): the wait's bound, half of it, is the upper
        # one (a tighter one could fail on a loaded machine alone).
        assert backend.run_until(lambda: server.closed, timeout=5)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.3 - 0.02, elapsed
        assert not server.connections
    finally:
        mute.close()


def test_process_request_that_raises_answers_500(backend) -> None:  # type: ignore[no-untyped-def]
    server_errors: list[BaseException] = []

    def hook(ws: wsloop.WebSocket, request: Any) -> None:
        raise KeyError("bug in the hook")

    server = wsloop.serve(
        Echo(),
        loop=backend.loop,
        process_request=hook,
        on_error=lambda ws, exc: server_errors.append(exc),
    )
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=backend.loop)
    assert backend.run_until(lambda: client.closed)
    assert not rec.opened.is_set()
    (err,) = rec.errors
    assert isinstance(err, wsloop.HandshakeError) and err.status == 500, err
    assert [type(e) for e in server_errors] == [KeyError]
    assert not server.connections
    server.close()
    assert backend.run_until(lambda: server.closed)


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_max_message_size_is_inclusive(backend, compression: bool) -> None:  # type: ignore[no-untyped-def]
    limit = 1000
    server = wsloop.serve(
        Echo(), loop=backend.loop, max_message_size=limit, compression=compression
    )
    at_limit = os.urandom(limit)
    rec = Recorder(want=1, send=[at_limit])
    rec.on_each = lambda r, ws, data: ws.send(os.urandom(limit + 1))
    client = wsloop.connect(server.url, rec, loop=backend.loop, compression=compression)
    assert backend.run_until(lambda: client.closed)
    assert rec.messages == [at_limit], "a message of exactly max_message_size is accepted"
    assert rec.ws is not None and bool(rec.ws.extensions) is compression
    assert [code for code, _, _ in rec.closes] == [1009], "one byte over is refused"
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_server_handler_exception_closes_that_connection_only(backend) -> None:  # type: ignore[no-untyped-def]
    def on_message(ws: wsloop.WebSocket, data: Any) -> None:
        if data == "boom":
            raise RuntimeError("server bug")
        ws.send(data)

    server = wsloop.serve(loop=backend.loop, on_message=on_message)
    a, b = Recorder(), Recorder(want=1)
    ca = wsloop.connect(server.url, a, loop=backend.loop, on_open=lambda ws: ws.send("boom"))
    cb = wsloop.connect(server.url, b, loop=backend.loop)
    assert backend.run_until(lambda: ca.closed and b.opened.is_set())
    assert a.closes[0][0] == 1011
    assert b.ws is not None
    b.ws.send("still fine")
    assert backend.run_until(b.got_all.is_set)
    cb.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_serve_on_a_bound_socket_and_bad_port() -> None:
    loop = wsloop.get_loop("builtin")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    server = wsloop.serve(Echo(), sock=s, loop=loop)
    assert server.port == s.getsockname()[1]
    server.close()
    with pytest.raises(ValueError, match="port"):
        wsloop.serve(Echo(), port=70000, loop=loop)
    peer = LoopThread()
    try:
        busy = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
        with pytest.raises(OSError):
            wsloop.serve(Echo(), port=busy.port, loop=loop)
        peer.call(busy.close)
    finally:
        peer.close()
        loop.close()


@pytest.mark.skipif(reuse_port_option() is None, reason="this platform has no SO_REUSEPORT")
def test_reuse_port_lets_servers_share_a_port(backend) -> None:  # type: ignore[no-untyped-def]
    # Two servers (in a real deployment, two processes) on one port: the
    # kernel spreads the connections over both.
    first = wsloop.serve(Echo(), loop=backend.loop, reuse_port=True)
    second = wsloop.serve(Echo(), port=first.port, loop=backend.loop, reuse_port=True)
    recs = [Recorder(want=1, send=["hi"]) for _ in range(24)]
    clients = [wsloop.connect(first.url, r, loop=backend.loop) for r in recs]
    assert backend.run_until(lambda: all(r.got_all.is_set() for r in recs))
    assert len(first.connections) + len(second.connections) == 24
    assert first.connections and second.connections  # all 24 on one: 1 in 2**23
    for client in clients:
        client.close()
    first.close()
    second.close()
    assert backend.run_until(lambda: first.closed and second.closed)


def test_reuse_port_errors() -> None:
    loop = wsloop.get_loop("builtin")
    try:
        server = wsloop.serve(Echo(), loop=loop)
        with pytest.raises(OSError):  # not shared unless every socket asks
            wsloop.serve(
                Echo(), port=server.port, loop=loop, reuse_port=reuse_port_option() is not None
            )
        with pytest.raises(TypeError, match="reuse_port must be True or False"):
            wsloop.serve(Echo(), loop=loop, reuse_port="yes")  # type: ignore[arg-type]
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        with pytest.raises(ValueError, match="with sock=, set SO_REUSEPORT"):
            wsloop.serve(Echo(), sock=s, loop=loop, reuse_port=True)
        s.close()
        server.close()
    finally:
        loop.close()


def test_pacing_from_inside_a_message_callback(backend) -> None:  # type: ignore[no-untyped-def]
    """Sends made while answering a batch are written at its end; a sender
    pacing on buffered_amount there must still get on_writable."""
    total = 100
    chunk = b"y" * 100_000

    class Pump(wsloop.Handler):
        def pump(self, ws: wsloop.WebSocket) -> None:
            while ws.data.get("sent", 0) < total and ws.buffered_amount <= ws.options.write_limit:
                ws.send(chunk)
                ws.data["sent"] = ws.data.get("sent", 0) + 1

        def on_message(self, ws: wsloop.WebSocket, data: Any) -> None:
            self.pump(ws)

        on_writable = pump

    server = wsloop.serve(Pump(), loop=backend.loop, compression=False, write_limit=65536)
    rec = Recorder(want=total, send=["go"])
    client = wsloop.connect(
        server.url, rec, loop=backend.loop, compression=False, max_message_size=None
    )
    assert backend.run_until(rec.got_all.is_set, timeout=20), len(rec.messages)
    client.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


FLOOD_COUNT = 512
FLOOD_SIZE = 64 * 1024  # 32 MiB in all


def test_cli_echo_server_stops_reading_a_client_that_does_not_read(backend) -> None:  # type: ignore[no-untyped-def]
    """Defect 5: ``wsloop serve --mode echo`` against a client that sends
    32 MiB and reads nothing holds at most write_limit plus what one read
    of the socket delivered, then echoes every byte in order once the
    client reads."""
    from wsloop.cli.feeds import ServeHandler
    from wsloop.transport import READ_SIZE

    class Watched(ServeHandler):
        peak = 0

        def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
            super().on_message(ws, data)
            self.peak = max(self.peak, ws.buffered_amount)  # it grows only here

    handler = Watched("echo", 120, backend.loop)
    server = wsloop.serve(handler, loop=backend.loop, compression=False, max_message_size=None)
    handler.server = server
    flood = FloodClient(server.port, FLOOD_COUNT, FLOOD_SIZE)
    try:
        assert backend.run_until(flood.opened.is_set)
        # The echoes back up (the kernel's buffers are full)...
        assert backend.run_until(lambda: handler.peak > 0 or flood.sent_all.is_set(), timeout=10)
        # ...and, bounded negative wait, a server that stopped reading never
        # lets the client push 32 MiB into it (kernel buffers hold a few MiB).
        assert not backend.run_until(flood.sent_all.is_set, timeout=1.0)
        limit = server.options.write_limit
        bound = limit + READ_SIZE + FLOOD_SIZE + 64 * 14  # + frame headers
        assert 0 < handler.peak <= bound, (handler.peak, bound)
        (ws,) = server.connections
        assert ws.buffered_amount <= bound
        flood.start_reading()
        assert backend.run_until(flood.done.is_set, timeout=30), (flood.sent, flood.received)
        assert flood.sent_all.is_set() and flood.received == FLOOD_COUNT and not flood.wrong
        assert flood.closes == [(1000, "")]
        assert handler.peak <= bound, (handler.peak, bound)
    finally:
        flood.close()
        server.close()
        assert backend.run_until(lambda: server.closed)


def test_cli_ticker_skips_ticks_for_a_client_that_does_not_read(backend) -> None:  # type: ignore[no-untyped-def]
    """``wsloop serve --mode ticker``: a client that reads nothing misses
    ticks; the server never holds more than write_limit plus one tick."""
    from wsloop.cli.feeds import ServeHandler
    from wsloop.protocol import ClientConnection

    class Watched(ServeHandler):
        peak = 0

        def on_open(self, ws: wsloop.WebSocket) -> None:
            assert ws.transport is not None
            ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            super().on_open(ws)

        def tick(self, ws: wsloop.WebSocket) -> None:
            super().tick(ws)
            self.peak = max(self.peak, ws.buffered_amount)  # it grows only here

    handler = Watched("ticker", 60 / 1e-5, backend.loop)  # a tick every 10 us
    server = wsloop.serve(handler, loop=backend.loop, compression=False)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(ClientConnection(server.url, deflate=None).data_to_send())
    try:
        assert backend.run_until(lambda: len(server.connections) == 1)
        (ws,) = server.connections
        # 20000 ticks of ~50 bytes: far more than the limit and the kernel's buffers.
        assert backend.run_until(lambda: ws.data["seq"] >= 20_000, timeout=10)
        limit = server.options.write_limit
        assert limit < handler.peak <= limit + 100, handler.peak
    finally:
        sock.close()
        server.close()
        assert backend.run_until(lambda: server.closed)


def test_a_ping_flood_from_a_client_that_reads_nothing_leaves_the_server_small(  # type: ignore[no-untyped-def]
    backend,
) -> None:
    """Issue 17, defect 4: 200,000 pings from a client that never reads.
    The server answers only the latest ping past a few pongs not yet sent,
    so what it holds for that client stays small, not one pong per ping,
    and it keeps serving: the client's message after the flood is echoed."""
    from wsloop.protocol import ClientConnection, Message, Opened, encode_frame

    class Counting(Echo):
        def __init__(self) -> None:
            self.pings = 0
            self.after = threading.Event()

        def on_ping(self, ws: wsloop.WebSocket, data: bytes) -> None:
            self.pings += 1

        def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
            super().on_message(ws, data)
            self.after.set()

    handler = Counting()
    server = wsloop.serve(handler, loop=backend.loop, ping_interval=None)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    proto = ClientConnection(server.url, deflate=None)
    may_read = threading.Event()
    done = threading.Event()
    got: dict[str, Any] = {"pongs": 0, "echoed": []}

    def client() -> None:  # in a thread: the test's thread runs the loop
        sock.sendall(proto.data_to_send())
        while not any(isinstance(e, Opened) for e in proto.events()):
            proto.receive_data(sock.recv(65536))
        ping = encode_frame(9, b"flood!", mask_key=b"\x01\x02\x03\x04")
        for _ in range(200):
            sock.sendall(ping * 1000)
        sock.sendall(encode_frame(1, b"after", mask_key=b"\x05\x06\x07\x08"))
        may_read.wait(30)
        while not got["echoed"]:
            data = sock.recv(1 << 20)
            if not data:
                break
            proto.receive_data(data)
            for event in proto.events():
                if isinstance(event, Message):
                    got["echoed"].append(event.data)
                else:
                    got["pongs"] += 1
        done.set()

    threading.Thread(target=client, daemon=True).start()
    assert backend.run_until(handler.after.is_set, timeout=30)
    assert handler.pings == 200_000
    ws = server.connections[0]
    # All of it read and answered, and nothing read by the client: the
    # server holds a few pongs and the echo, not 200,000 pongs.
    assert ws.buffered_amount < 64 * 1024, ws.buffered_amount
    may_read.set()
    assert backend.run_until(done.is_set, timeout=30)
    assert got["echoed"] == ["after"] and got["pongs"] < 10_000, got
    sock.close()
    server.close()
    assert backend.run_until(lambda: server.closed)
