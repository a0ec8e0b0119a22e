"""Benchmark workers, one process each: ``server LIB LOOP`` prints its URL
and echoes until killed; ``client LIB LOOP URL SIZE COUNT IN_FLIGHT``
prints one JSON line with messages per second. Used by bench/peers.py."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from typing import Any

HOST = "127.0.0.1"


def server_tls() -> Any:
    """The servers' TLS context when WSLOOP_BENCH_TLS names a PEM file with
    a certificate chain and key (bench/peers.py --tls makes one with
    trustme); None for clear text. Clients need nothing of their own:
    peers.py points SSL_CERT_FILE at the CA, which every client's default
    context trusts."""
    import os
    import ssl

    path = os.environ.get("WSLOOP_BENCH_TLS")
    if not path:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(path)
    return context


def scheme() -> str:
    return "wss" if server_tls() is not None else "ws"


def memory(field: str) -> int:
    """A /proc/self/status field (VmRSS, VmHWM: peak resident set), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds() -> float:
    """CPU this process has used so far, user and system, all threads."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: Modules a client may use, imported before the start-up RSS is read, so
#: that a row's "RSS above start" is what its connection and messages cost
#: and not which libraries it imported.
PRELOAD = [
    "wsloop",
    "wsloop.aio",
    "wsloop.cli.bench",
    "wsloop.loops.libev",
    "wsloop.loops.libuv",
    "wsloop.loops.glib",
    "uvloop",
    "websockets.asyncio.client",
    "aiohttp",
    "picows",
]


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # that library's rows fail on their own, saying why


def aio_run(loop_name: str, coro: Any) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


# -- clients ---------------------------------------------------------------------


async def pump(send: Any, recv: Any, payload: bytes, count: int, in_flight: int) -> float:
    start = time.perf_counter()
    sent = 0
    for _ in range(min(in_flight, count)):
        await send(payload)
        sent += 1
    for _ in range(count):
        await recv()
        if sent < count:
            await send(payload)
            sent += 1
    return count / (time.perf_counter() - start)


async def client_wsloop_aio(url: str, payload: bytes, count: int, in_flight: int) -> float:
    import wsloop.aio

    async with wsloop.aio.connect(
        url, compression=False, max_message_size=None, ping_interval=None
    ) as ws:
        return await pump(ws.send, ws.recv, payload, count, in_flight)


async def client_wsloop_aio_callbacks(
    url: str, payload: bytes, count: int, in_flight: int
) -> float:
    """The asyncio API's callback form: the open awaited, messages to a handler."""
    import wsloop.aio

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class Pump(wsloop.Handler):
        def on_open(self, ws: wsloop.WebSocket) -> None:
            self.sent = 0
            self.received = 0
            self.start = time.perf_counter()
            for _ in range(min(in_flight, count)):
                ws.send(payload)
                self.sent += 1

        def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
            self.received += 1
            if self.sent < count:
                ws.send(payload)
                self.sent += 1
            elif self.received == count and not done.done():
                done.set_result(count / (time.perf_counter() - self.start))

    ws = await wsloop.aio.connect(
        url, Pump(), compression=False, max_message_size=None, ping_interval=None
    )
    rate = await done
    await ws.close()
    return rate


async def client_websockets(url: str, payload: bytes, count: int, in_flight: int) -> float:
    import websockets

    async with websockets.connect(url, compression=None, max_size=None, ping_interval=None) as ws:
        return await pump(ws.send, ws.recv, payload, count, in_flight)


async def client_aiohttp(url: str, payload: bytes, count: int, in_flight: int) -> float:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0, autoping=True) as ws,
    ):
        return await pump(ws.send_bytes, ws.receive_bytes, payload, count, in_flight)


async def client_picows(
    url: str, payload: bytes, count: int, in_flight: int, keep: bool = False
) -> float:
    """picows's client; ``keep``: each message's payload taken as ``bytes``,
    as an application that keeps it must (wsloop hands every message as
    ``bytes``; picows lends a view of its read buffer)."""
    from picows import WSListener, WSMsgType, ws_connect

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            self.sent = 0
            self.received = 0
            self.start = time.perf_counter()
            for _ in range(min(in_flight, count)):
                transport.send(WSMsgType.BINARY, payload)
                self.sent += 1

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            if keep:
                frame.get_payload_as_bytes()
            self.received += 1
            if self.sent < count:
                transport.send(WSMsgType.BINARY, payload)
                self.sent += 1
            elif self.received == count and not done.done():
                done.set_result(count / (time.perf_counter() - self.start))

    transport, _ = await ws_connect(Listener, url, max_frame_size=1 << 30)
    rate = await done
    transport.disconnect()
    await transport.wait_disconnected()
    return rate


async def client_bare(url: str, payload: bytes, count: int, in_flight: int) -> float:
    """No WebSocket library: the floor under any await API on this loop. A
    hand-made handshake, then one prebuilt masked frame written per message
    through a plain asyncio Protocol and one future awaited per echo
    (fixed-size binary echoes from the server are counted by bytes)."""
    import base64
    import os
    import struct
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        head = bytes([0x82, 0x80 | size])
    elif size < 65536:
        head = bytes([0x82, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", size)
    frame = head + mask + masked
    echo = len(head) + size  # the server's unmasked frame
    key = base64.b64encode(os.urandom(16)).decode()

    class Bare(asyncio.Protocol):
        def __init__(self) -> None:
            self.waiter: asyncio.Future[None] | None = None
            self.upgraded = False
            self.pending = b""
            self.got = 0  # bytes of echoes received
            self.want = 0

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if not self.upgraded:
                self.pending += data
                end = self.pending.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.upgraded = True
                data = self.pending[end + 4 :]
            self.got += len(data)
            waiter = self.waiter
            if waiter is not None and self.got >= self.want and not waiter.done():
                waiter.set_result(None)

        async def wait_for(self, total: int) -> None:
            self.want = total
            if self.got < total:
                self.waiter = loop.create_future()
                await self.waiter

    transport, bare = await loop.create_connection(Bare, parts.hostname, parts.port)
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    bare.want = -1
    transport.write(request.encode())
    while not bare.upgraded:
        bare.waiter = loop.create_future()
        await bare.waiter
    start = time.perf_counter()
    sent = 0
    for _ in range(min(in_flight, count)):
        transport.write(frame)
        sent += 1
    for i in range(count):
        await bare.wait_for((i + 1) * echo)
        if sent < count:
            transport.write(frame)
            sent += 1
    rate = count / (time.perf_counter() - start)
    transport.close()
    return rate


#: CPU seconds the copy floor's echo thread used (set when it ends).
FLOOR_ECHO_CPU = [0.0]


def client_floor(size: int, count: int, in_flight: int) -> float:
    """The copy floor: what any echo of ``size`` bytes costs at least, with
    no WebSocket library and no event loop. Each message is copied once in
    user space (memcpy, as a send buffer must be filled), sent over a
    loopback TCP connection, echoed back by a thread with recv_into and
    send, and received with recv_into into a reused buffer."""
    import socket
    import threading

    listener = socket.create_server((HOST, 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    total = size * count

    def echo() -> None:
        view = memoryview(bytearray(min(size, 1 << 20)))
        left = total
        started = time.thread_time()
        while left:
            n = server.recv_into(view[: min(len(view), left)])
            if not n:
                break
            server.sendall(view[:n])
            left -= n
        # The echo is the server's work: not counted as the client's CPU.
        FLOOR_ECHO_CPU[0] = time.thread_time() - started

    payload = bytes(size)
    out = bytearray(size)
    back = memoryview(bytearray(min(size, 1 << 20)))
    window = max(1, min(in_flight, (4 << 20) // size))
    slots = threading.Semaphore(window)  # messages sent and not yet echoed

    def send_all() -> None:
        for _ in range(count):
            slots.acquire()
            out[:] = payload  # the one user-space copy a sender makes
            client.sendall(out)

    echoer = threading.Thread(target=echo, daemon=True)
    sender = threading.Thread(target=send_all, daemon=True)
    start = time.perf_counter()
    echoer.start()
    sender.start()
    for _ in range(count):
        got = 0
        while got < size:
            n = client.recv_into(back[: min(len(back), size - got)])
            if not n:
                raise ConnectionError("the echo thread closed")
            got += n
        slots.release()
    rate = count / (time.perf_counter() - start)
    sender.join(10)
    echoer.join(10)
    client.close()
    server.close()
    return rate


def run_client(lib: str, loop_name: str, url: str, size: int, count: int, in_flight: int) -> float:
    payload = bytes(size)
    if lib == "floor":
        return client_floor(size, count, in_flight)
    if lib == "wsloop":
        from wsloop.cli.bench import measure

        return measure(url, loop_name, size, count, in_flight)
    fn = {
        "wsloop-aio": client_wsloop_aio,
        "wsloop-aio-cb": client_wsloop_aio_callbacks,
        "websockets": client_websockets,
        "aiohttp": client_aiohttp,
        "picows": client_picows,
        "picows-bytes": functools.partial(client_picows, keep=True),
        "bare": client_bare,
    }[lib]
    return float(aio_run(loop_name, fn(url, payload, count, in_flight)))


# -- servers ---------------------------------------------------------------------


def serve_wsloop(loop_name: str) -> None:
    import wsloop

    loop = wsloop.get_loop(loop_name)
    server = wsloop.serve(
        host=HOST,
        port=0,
        loop=loop,
        on_message=lambda ws, m: ws.send(m),
        compression=False,
        max_message_size=None,
        ping_interval=None,
        ssl=server_tls(),
    )
    print(server.url, flush=True)
    loop.run()


async def serve_wsloop_aio() -> None:
    import wsloop.aio

    async def echo(ws: Any) -> None:
        async for m in ws:
            await ws.send(m)

    async with wsloop.aio.serve(
        echo,
        HOST,
        0,
        compression=False,
        max_message_size=None,
        ping_interval=None,
        ssl=server_tls(),
    ) as s:
        print(s.url, flush=True)
        await asyncio.Future()


async def serve_wsloop_aio_callbacks() -> None:
    import wsloop.aio

    async with wsloop.aio.serve(
        host=HOST,
        port=0,
        on_message=lambda ws, m: ws.send(m),
        compression=False,
        max_message_size=None,
        ping_interval=None,
        ssl=server_tls(),
    ) as s:
        print(s.url, flush=True)
        await asyncio.Future()


async def serve_websockets() -> None:
    import websockets

    async def echo(ws: Any) -> None:
        async for m in ws:
            await ws.send(m)

    async with websockets.serve(
        echo, HOST, 0, compression=None, max_size=None, ping_interval=None, ssl=server_tls()
    ) as s:
        print(f"{scheme()}://{HOST}:{next(iter(s.sockets)).getsockname()[1]}/", flush=True)
        await asyncio.Future()


async def serve_aiohttp() -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=server_tls())
    await site.start()
    port = runner.addresses[0][1]
    print(f"{scheme()}://{HOST}:{port}/", flush=True)
    await asyncio.Future()


async def serve_picows() -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
                transport.send(frame.msg_type, frame.get_payload_as_bytes())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    server = await ws_create_server(
        lambda request: Echo(), HOST, 0, max_frame_size=1 << 30, ssl=server_tls()
    )
    port = server.sockets[0].getsockname()[1]
    print(f"{scheme()}://{HOST}:{port}/", flush=True)
    await server.serve_forever()


def run_server(lib: str, loop_name: str) -> None:
    if lib == "wsloop":
        serve_wsloop(loop_name)
        return
    fn = {
        "wsloop-aio": serve_wsloop_aio,
        "wsloop-aio-cb": serve_wsloop_aio_callbacks,
        "websockets": serve_websockets,
        "aiohttp": serve_aiohttp,
        "picows": serve_picows,
    }[lib]
    aio_run(loop_name, fn())


# -- memory and broadcast with many idle connections ---------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def mem_server(lib: str) -> None:
    """Prints its URL; then on stdin 'rss' prints RSS, 'broadcast' broadcasts
    1 KiB to every connection and prints the monotonic start time."""
    import threading

    message = b"x" * 1024

    if lib == "wsloop":
        import wsloop

        loop = wsloop.get_loop("builtin")
        server = wsloop.serve(
            host=HOST,
            port=0,
            loop=loop,
            compression=False,
            ping_interval=None,
            max_connections=None,
            backlog=4096,
        )

        def on_command(cmd: str) -> None:
            if cmd == "rss":
                print(
                    json.dumps({"rss": rss_bytes(), "connections": len(server.connections)}),
                    flush=True,
                )
            elif cmd == "broadcast":
                t0 = time.monotonic()
                server.broadcast(message)
                print(json.dumps({"t0": t0}), flush=True)

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(on_command, line.strip())
            loop.call_soon_threadsafe(loop.stop)

        print(server.url, flush=True)
        threading.Thread(target=read_stdin, daemon=True).start()
        loop.run()
        return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line.strip())
            loop.call_soon_threadsafe(queue.put_nowait, "quit")

        if lib == "websockets":
            import websockets

            conns: set[Any] = set()

            async def hold(ws: Any) -> None:
                conns.add(ws)
                try:
                    await ws.wait_closed()
                finally:
                    conns.discard(ws)

            server = await websockets.serve(
                hold, HOST, 0, compression=None, ping_interval=None, backlog=4096
            )
            port = next(iter(server.sockets)).getsockname()[1]

            def broadcast() -> None:
                websockets.broadcast(conns, message)

            def count() -> int:
                return len(conns)
        else:  # wsloop-aio
            import wsloop.aio

            async def hold_aio(ws: Any) -> None:
                await ws.wait_closed()

            srv = await wsloop.aio.serve(
                hold_aio,
                HOST,
                0,
                compression=False,
                ping_interval=None,
                max_connections=None,
                backlog=4096,
            )
            port = srv.port

            def broadcast() -> None:
                srv.broadcast(message)

            def count() -> int:
                return len(srv.server.connections)

        print(f"ws://{HOST}:{port}/", flush=True)
        import threading as th

        th.Thread(target=read_stdin, daemon=True).start()
        while True:
            cmd = await queue.get()
            if cmd == "rss":
                print(json.dumps({"rss": rss_bytes(), "connections": count()}), flush=True)
            elif cmd == "broadcast":
                t0 = time.monotonic()
                broadcast()
                print(json.dumps({"t0": t0}), flush=True)
            else:
                return

    aio_run("uvloop", main())


def mem_client(url: str, n: int) -> None:
    """Opens n idle connections; prints 'ready'; then prints the monotonic
    time at which all n received one message."""
    import wsloop

    loop = wsloop.get_loop("builtin")
    state = {"open": 0, "got": 0}

    def on_open(ws: Any) -> None:
        state["open"] += 1
        if state["open"] == n:
            print("ready", flush=True)

    def on_message(ws: Any, data: Any) -> None:
        state["got"] += 1
        if state["got"] == n:
            print(json.dumps({"t1": time.monotonic()}), flush=True)
            loop.stop()

    def open_some(start: int) -> None:
        for _ in range(start, min(n, start + 200)):
            wsloop.connect(
                url,
                loop=loop,
                on_open=on_open,
                on_message=on_message,
                compression=False,
                ping_interval=None,
                open_timeout=60,
                loop_warning=None,
            )
        if start + 200 < n:
            loop.call_later(0.01, open_some, start + 200)

    loop.call_soon(open_some, 0)
    loop.run()


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "server":
        run_server(sys.argv[2], sys.argv[3])
    elif role == "memserver":
        mem_server(sys.argv[2])
    elif role == "memclient":
        mem_client(sys.argv[2], int(sys.argv[3]))
    else:
        lib, loop_name, url, size, count, in_flight = sys.argv[2:8]
        preload()
        start_rss, start_cpu = memory("VmRSS"), cpu_seconds()
        rate = run_client(lib, loop_name, url, int(size), int(count), int(in_flight))
        cpu = cpu_seconds() - start_cpu - FLOOR_ECHO_CPU[0]
        result = {"rate": rate, "peak_rss": memory("VmHWM"), "start_rss": start_rss, "cpu": cpu}
        print(json.dumps(result))
