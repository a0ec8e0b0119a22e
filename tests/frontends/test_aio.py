"""The asyncio front-end, on asyncio and uvloop, against wsloop and websockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

import wsloop
from wsloop.aio import AioWebSocket


def run(flavour: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if flavour == "uvloop":
        import uvloop

        return uvloop.run(asyncio.wait_for(main(), 30))
    return asyncio.run(asyncio.wait_for(main(), 30))


flavours = pytest.mark.parametrize("flavour", ["asyncio", "uvloop"])


async def echo(ws: AioWebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@flavours
def test_round_trip_iteration_ping_close(flavour: str) -> None:
    async def main() -> None:
        async with wsloop.aio.serve(echo, max_message_size=None) as server:
            async with wsloop.aio.connect(server.url, max_message_size=None) as ws:
                for m in ["text", b"bytes", "é" * 10_000, bytes(1 << 20)]:
                    await ws.send(m)
                    assert await ws.recv() == m
                rtt = await ws.ping()
                assert 0 <= rtt < 1 and ws.latency == rtt
                assert ws.extensions == ["permessage-deflate"]
            assert ws.close_code == 1000
            with pytest.raises(wsloop.ConnectionClosedOK):
                await ws.recv()
            with pytest.raises(wsloop.ConnectionClosed):
                await ws.send("late")

    run(flavour, main)


@flavours
def test_a_recv_cancelled_after_its_message_arrived_loses_nothing(flavour: str) -> None:
    # A waiting recv() is handed the next message directly; if the task is
    # cancelled before it runs again (asyncio.wait_for timing out at that
    # moment), the message must go back to the queue, in order.
    async def main() -> None:
        async with wsloop.aio.serve(echo) as server, wsloop.aio.connect(server.url) as ws:
            waiting = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)  # now parked in recv()
            assert ws.ws.handler is ws  # the connection's handler is the AioWebSocket

            class DeliverThenCancel(wsloop.Handler):
                def on_message(self, conn: wsloop.WebSocket, data: str | bytes) -> None:
                    ws.on_message(conn, data)
                    waiting.cancel()

            # Through a handler that cancels the waiting task right after
            # the hand-over.
            ws.ws.handler = DeliverThenCancel()
            await ws.send("first")
            with pytest.raises(asyncio.CancelledError):
                await waiting
            ws.ws.handler = ws
            await ws.send("second")
            assert [await ws.recv(), await ws.recv()] == ["first", "second"]

    run(flavour, main)


@flavours
def test_messages_in_the_handshakes_read_reach_recv(flavour: str) -> None:
    # A server that writes its 101 response and two messages in one send:
    # the client parses the opening and the messages in one batch, so the
    # front-end that attaches on open must get the messages of that batch.
    from wsloop.protocol.handshake import accept_key

    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key).encode()
                + b"\r\n\r\n\x81\x05first\x82\x06second"
            )
            await reader.read(2)  # the client's close frame begins
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, wsloop.aio.connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
            assert await ws.recv() == "first"
            assert await ws.recv() == b"second"

    run(flavour, main)


@flavours
def test_messages_of_one_read_arrive_in_order(flavour: str) -> None:
    async def burst(ws: AioWebSocket) -> None:
        await ws.recv()
        for i in range(50):
            await ws.send(str(i))  # corked: several frames per write

    async def main() -> None:
        async with wsloop.aio.serve(burst) as server, wsloop.aio.connect(server.url) as ws:
            await ws.send("go")
            assert [await ws.recv() for _ in range(50)] == [str(i) for i in range(50)]

    run(flavour, main)


@flavours
def test_async_for_stops_on_normal_close(flavour: str) -> None:
    async def handler(ws: AioWebSocket) -> None:
        for i in range(5):
            await ws.send(str(i))
        await ws.close(1000)

    async def main() -> None:
        async with wsloop.aio.serve(handler) as server:
            ws = await wsloop.aio.connect(server.url)
            assert [m async for m in ws] == ["0", "1", "2", "3", "4"]

    run(flavour, main)


@flavours
def test_against_websockets_server(flavour: str) -> None:
    import websockets

    async def main() -> None:
        async def ws_echo(ws: Any) -> None:
            async for m in ws:
                await ws.send(m)

        async with websockets.serve(ws_echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with wsloop.aio.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"

    run(flavour, main)


def test_errors_are_raised() -> None:
    async def main() -> None:
        from netkit import free_port

        with pytest.raises(ConnectionRefusedError):
            await wsloop.aio.connect(f"ws://127.0.0.1:{free_port()}/")

        async def refuse(ws: wsloop.WebSocket, request: Any) -> Any:
            return 403, "nope"

        async with wsloop.aio.serve(echo, process_request=lambda ws, req: (403, "nope")) as server:
            with pytest.raises(wsloop.HandshakeError) as info:
                await wsloop.aio.connect(server.url)
            assert info.value.status == 403

    run("asyncio", main)


def test_reconnecting_iteration() -> None:
    async def main() -> None:
        seen = []

        async def handler(ws: AioWebSocket) -> None:
            await ws.send("hello")
            await ws.close(1001)

        async with wsloop.aio.serve(handler) as server:
            policy = wsloop.Reconnect(initial_delay=0.01, max_delay=0.02)
            async for ws in wsloop.aio.connect(server.url, reconnect=policy):
                seen.append(await ws.recv())
                if len(seen) == 3:
                    break
        assert seen == ["hello"] * 3

    run("asyncio", main)


@flavours
def test_before_reconnect_resumes_iteration(flavour: str) -> None:
    from netkit import LoopThread, Recorder, ResumableFeed, resume_from_last_seq, seqs

    peer = LoopThread()
    feed = ResumableFeed(per_connection=2)
    server = peer.call(lambda: wsloop.serve(feed, loop=peer.loop))
    rec = Recorder()  # only its messages: what the hook resumes from

    async def main() -> None:
        policy = wsloop.Reconnect(initial_delay=0.01, jitter=0)
        async for ws in wsloop.aio.connect(
            server.url + "feed",
            headers=[("X-Client", "aio")],
            reconnect=policy,
            before_reconnect=resume_from_last_seq(rec),
        ):
            with contextlib.suppress(wsloop.ConnectionClosed):  # 1012, restarting
                async for message in ws:
                    rec.messages.append(message)
            if len(rec.messages) >= 6:
                break

    try:
        run(flavour, main)
    finally:
        peer.call(server.close)
        peer.close()
    assert seqs(rec.messages) == [1, 2, 3, 4, 5, 6]
    assert [path for path, _ in feed.requests] == ["/feed", "/feed?since=2", "/feed?since=4"]
    assert [h.get("x-last-seq") for _, h in feed.requests] == [None, "2", "4"]
    assert all(h["x-client"] == "aio" for _, h in feed.requests)


def test_before_reconnect_mistakes_raise_in_the_iterating_task() -> None:
    async def main() -> None:
        async def leave(ws: AioWebSocket) -> None:
            await ws.close(1001)

        async with wsloop.aio.serve(leave) as server:
            policy = wsloop.Reconnect(initial_delay=0.01)
            with pytest.raises(TypeError, match="before_reconnect must return"):
                async for ws in wsloop.aio.connect(
                    server.url, reconnect=policy, before_reconnect=lambda url, headers: url
                ):
                    await asyncio.wait_for(ws.wait_closed(), 10)

    run("asyncio", main)


@pytest.mark.parametrize("form", ["awaited", "handler"])
def test_send_waits_for_a_slow_reader(form: str) -> None:
    # In both forms the awaited send waits on the send buffer; in the
    # handler form the handler's on_writable fires as well.
    async def main() -> None:
        release = asyncio.Event()
        got = []

        async def slow(ws: AioWebSocket) -> None:
            await release.wait()
            async for m in ws:
                got.append(len(m))
                if len(got) == 32:
                    return

        writable: list[int] = []
        handler = {"on_writable": lambda ws: writable.append(ws.buffered_amount)}
        async with wsloop.aio.serve(slow, max_queue=2, compression=False) as server:
            ws = await wsloop.aio.connect(
                server.url,
                compression=False,
                write_limit=65536,
                **(handler if form == "handler" else {}),
            )
            chunk = bytes(1 << 20)
            await ws.send(chunk)
            blocked = asyncio.ensure_future(_send_many(ws, chunk, 31))
            done, _ = await asyncio.wait([blocked], timeout=0.3)
            assert not done, "send should wait while the peer does not read"
            assert ws.buffered_amount <= 65536 + (1 << 20) + 14
            release.set()
            await asyncio.wait_for(blocked, 20)
            await ws.close()
        assert got == [1 << 20] * 32
        if form == "handler":
            assert writable and all(n <= 65536 for n in writable)

    run("asyncio", main)


async def _send_many(ws: AioWebSocket, chunk: bytes, n: int) -> None:
    for _ in range(n):
        await ws.send(chunk)


def test_server_handler_exception_closes_1011() -> None:
    async def bad(ws: AioWebSocket) -> None:
        await ws.recv()
        raise RuntimeError("bug")

    async def main() -> None:
        async with wsloop.aio.serve(bad) as server, wsloop.aio.connect(server.url) as ws:
            await ws.send("x")
            with pytest.raises(wsloop.ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1011

    run("asyncio", main)


def test_callback_api_inside_asyncio_uses_the_running_loop() -> None:
    async def main() -> None:
        async with wsloop.aio.serve(echo) as server:
            loop = asyncio.get_running_loop()
            got: asyncio.Future[Any] = loop.create_future()
            client = wsloop.connect(
                server.url,
                on_open=lambda ws: ws.send("cb"),
                on_message=lambda ws, m: got.set_result(m),
            )
            assert client.loop.native is loop
            assert await got == "cb"
            client.close()

    run("asyncio", main)


# -- the callback form: wsloop.aio.connect(url, handler), wsloop.aio.serve(handler) --


class Recorder(wsloop.Handler):
    """Counts messages; `done` resolves with them once `expected` arrived."""

    def __init__(self, expected: int, send_on_open: Sequence[str | bytes] = ()) -> None:
        self.expected = expected
        self.send_on_open = send_on_open
        self.messages: list[str | bytes] = []
        self.closed: tuple[int, str, bool] | None = None
        self.errors: list[BaseException] = []
        self.done: asyncio.Future[list[str | bytes]] = asyncio.get_running_loop().create_future()

    def on_open(self, ws: wsloop.WebSocket) -> None:
        for m in self.send_on_open:
            ws.send(m)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.messages.append(data)
        if len(self.messages) == self.expected:
            self.done.set_result(self.messages)

    def on_close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        self.closed = (code, reason, clean)

    def on_error(self, ws: wsloop.WebSocket | None, error: BaseException) -> None:
        self.errors.append(error)


@flavours
def test_callback_form_client_and_server(flavour: str) -> None:
    async def main() -> None:
        sent: list[str | bytes] = ["a", b"b", "é" * 1000, bytes(100_000)]
        async with wsloop.aio.serve(on_message=lambda ws, m: ws.send(m)) as server:
            app = Recorder(len(sent), sent)
            async with wsloop.aio.connect(server.url, app) as ws:
                assert await asyncio.wait_for(app.done, 10) == sent
                # One handler per connection: the form's, which passes each
                # event on to the application's.
                assert ws.ws.handler is ws and ws.app is app
                assert [c.state for c in server.connections] == ["open"]
                await ws.send("awaited send")  # the await form's send works too
                assert 0 <= await ws.ping() < 1
                with pytest.raises(wsloop.InvalidStateError, match="handler's on_message"):
                    await ws.recv()
            assert app.closed == (1000, "", True) and ws.close_code == 1000
            assert app.messages[-1] == "awaited send"
            assert app.errors == []

    run(flavour, main)


def test_callback_form_failure_raises_and_reaches_on_error() -> None:
    async def main() -> None:
        from netkit import free_port

        app = Recorder(1)
        with pytest.raises(ConnectionRefusedError):
            await wsloop.aio.connect(f"ws://127.0.0.1:{free_port()}/", app)
        assert [type(e) for e in app.errors] == [ConnectionRefusedError]

        with pytest.raises(TypeError, match=r"async function .* or a wsloop\.Handler"):
            wsloop.aio.serve(42)
        with pytest.raises(TypeError, match="unknown callback 'on_mesage'"):
            wsloop.aio.connect("ws://127.0.0.1:1/", on_mesage=print)
        with pytest.raises(TypeError, match="with a handler messages are not queued"):
            wsloop.aio.connect("ws://127.0.0.1:1/", app, max_queue=4)
        with pytest.raises(TypeError, match="with a handler messages are not queued"):
            wsloop.aio.serve(on_message=print, max_queue=4)

    run("asyncio", main)


def test_callback_form_on_open_exception_closes_1011() -> None:
    class Broken(wsloop.Handler):
        def on_open(self, ws: wsloop.WebSocket) -> None:
            raise RuntimeError("bug")

    async def main() -> None:
        async with wsloop.aio.serve(echo) as server:
            ws = await wsloop.aio.connect(server.url, Broken())
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1011

    run("asyncio", main)


def test_callback_form_reconnects() -> None:
    async def main() -> None:
        async def hello_then_leave(ws: AioWebSocket) -> None:
            await ws.send("hello")
            await ws.close(1001)

        async with wsloop.aio.serve(hello_then_leave) as server:
            policy = wsloop.Reconnect(initial_delay=0.01, max_delay=0.02)
            got = []
            async for ws in wsloop.aio.connect(
                server.url, reconnect=policy, on_message=lambda ws, m: got.append(m)
            ):
                await asyncio.wait_for(ws.wait_closed(), 10)
                if len(got) == 3:
                    break
        assert got == ["hello"] * 3

    run("asyncio", main)


def test_misuses_name_what_to_use_and_leak_nothing() -> None:
    async def main() -> None:
        async with wsloop.aio.serve(echo) as server:
            # The callback API awaited: closed at once, and told what to use.
            client = wsloop.connect(server.url)
            with pytest.raises(TypeError, match=r"await wsloop\.aio\.connect\(url\)"):
                await client  # type: ignore[misc]
            await asyncio.wait_for(asyncio.to_thread(client.wait_closed, 10), 15)
            assert client.state == "closed"
            client = wsloop.connect(server.url)
            with pytest.raises(TypeError, match=r"async with wsloop\.aio\.connect"):
                async with client:  # type: ignore[attr-defined]
                    pass
            await asyncio.wait_for(asyncio.to_thread(client.wait_closed, 10), 15)
            # The asyncio connector used before it is awaited: nothing was opened.
            connector = wsloop.aio.connect(server.url)
            with pytest.raises(AttributeError, match=r"await wsloop\.aio\.connect"):
                connector.send("x")  # type: ignore[attr-defined]
            await asyncio.sleep(0)
            assert server.connections == []
        with pytest.raises(TypeError, match=r"is for wsloop\.aio\.serve"):
            wsloop.serve(echo)

    run("asyncio", main)


@flavours
def test_an_async_process_request_decides_the_handshake(flavour: str) -> None:
    async def check(ws: wsloop.WebSocket, request: Any) -> Any:
        await asyncio.sleep(0)  # a real await: the handshake waits for it
        if request.headers.get("Authorization") != "Bearer good":
            return 403, "bad token"
        return None

    async def main() -> None:
        async with wsloop.aio.serve(echo, process_request=check) as server:
            with pytest.raises(wsloop.HandshakeError) as info:
                await wsloop.aio.connect(server.url)
            assert info.value.status == 403
            async with wsloop.aio.connect(
                server.url, headers={"Authorization": "Bearer good"}
            ) as ws:
                await ws.send("in")
                assert await ws.recv() == "in"

    run(flavour, main)


def test_reconnect_is_for_async_for_only() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="applies to `async for"):
            await wsloop.aio.connect("ws://127.0.0.1:1/", reconnect=True)
        with pytest.raises(TypeError, match="applies to `async for"):
            async with wsloop.aio.connect("ws://127.0.0.1:1/", reconnect=wsloop.Reconnect()):
                pass
        with pytest.raises(TypeError, match="reconnects: pass reconnect=True"):
            async for _ in wsloop.aio.connect("ws://127.0.0.1:1/", reconnect=False):
                pass
        with pytest.raises(TypeError, match="reconnect must be"):
            wsloop.aio.connect("ws://127.0.0.1:1/", reconnect="yes")  # type: ignore[typeddict-item]
        with pytest.raises(TypeError, match="before_reconnect= applies to `async for"):
            await wsloop.aio.connect("ws://127.0.0.1:1/", before_reconnect=lambda u, h: (u, h))

    run("asyncio", main)


@flavours
@pytest.mark.parametrize("side", ["client", "server"])
def test_100_messages_in_flight_over_tls(flavour: str, side: str) -> None:
    # 100 small messages in flight fill the recv() queue, which pauses
    # reading while TLS records already read from the socket wait in the
    # transport; they must still be read once the queue drains (they once
    # were not, and the connection stalled: bench/peers.py --tls).
    # The asyncio API is on one side. On the other, the callback API as
    # server, and websockets as client: it sends each message in its own
    # TLS record, as picows does (wsloop's client would batch them).
    from netkit import tls_contexts

    server_ctx, client_ctx = tls_contexts()
    count, window, payload = 2000, 100, b"m" * 64
    options: dict[str, Any] = {"compression": False, "ping_interval": None}

    async def pump(send: Any, recv: Any) -> None:
        for _ in range(window):
            await send(payload)
        for i in range(count):
            got = await asyncio.wait_for(recv(), 5)
            assert got == payload, i
            if i + window < count:
                await send(payload)

    async def main() -> None:
        if side == "client":
            async with (
                wsloop.aio.serve(
                    on_message=lambda ws, m: ws.send(m), ssl=server_ctx, **options
                ) as server,
                wsloop.aio.connect(server.url, ssl=client_ctx, **options) as ws,
            ):
                assert server.url.startswith("wss://")
                await pump(ws.send, ws.recv)
        else:
            import websockets

            # The server reads nothing until all 100 have been sent, so
            # they arrive in one socket read and its queue fills at once.
            sent = asyncio.Event()

            async def gated_echo(ws: AioWebSocket) -> None:
                await sent.wait()
                await echo(ws)

            async with (
                wsloop.aio.serve(gated_echo, ssl=server_ctx, **options) as server,
                websockets.connect(server.url, ssl=client_ctx, compression=None) as peer,
            ):
                for _ in range(window):
                    await peer.send(payload)
                sent.set()
                for i in range(window):
                    assert await asyncio.wait_for(peer.recv(), 5) == payload, i
                await pump(peer.send, peer.recv)

    run(flavour, main)
