"""Fan-out through Redis: deliveries per second and publish-to-deliver latency.

One Redis channel, 1 KiB text messages, N subscribers (WebSocket
connections held by a few subscriber processes of their own), served by 1
or 2 server processes sharing one port (SO_REUSEPORT), for each server:

- ``wsloop``: wsloop servers, each subscribed to the channel in Redis and
  writing every message to its local connections with ``Server.broadcast``
  (one frame built once per message). Until wsloop's broker (issue 18) is
  there, a minimal Redis subscriber on the server's own loop relays
  messages to ``broadcast``; with ``--wsloop-via broker`` (the default when
  ``wsloop.broker`` can be imported) the broker itself subscribes each
  connection and the publisher publishes through it.
- ``ws+bc/conn``: websockets servers with encode/broadcaster's Redis backend,
  one ``broadcast.subscribe()`` per connection, as broadcaster's README shows.
- ``ws+bc/proc``: the same with one subscription per process and
  ``websockets.broadcast`` to the local connections.
- ``floor``: a bare process per server slot, subscribed to Redis with a raw
  socket, writing one pre-built frame to each socket with one ``send`` each.

Two measurements per setup, in the same run: ``burst``, messages published
back to back as fast as publishing allows (deliveries per second from the
first publish to the last delivery), and ``steady``, messages at a fixed
rate (``--rate``, 1 per second by default) for latency: p50 and p99 of
(delivery time - publish time) over every delivery. Timestamps are the
system-wide monotonic clock, carried in each message. ``lost`` counts
deliveries that did not arrive within the bound; ``disorder`` messages that
arrived twice or out of order.

Every loop is bounded in count and time. The script raises its soft limit
of open files (``RLIMIT_NOFILE``) to the hard limit: 10,000 subscribers
need about 20,000 descriptors in all (say ``ulimit -Hn`` if the hard limit
is lower). It starts its own ``redis-server`` (Debian's; persistence off)
on a free port. On a shared 2-core machine the numbers are indicative:
compare rows of one run only.

    scripts/compiled .venv/bin/python bench/fanout.py  # 1,000 and 10,000 subscribers
    .venv/bin/python bench/fanout.py --quick           # 200 subscribers, a few seconds

Run it with the compiled build (``scripts/compiled``), as users get it: the
header says which build the wsloop rows ran.
"""

from __future__ import annotations

import argparse
import array
import base64
import hashlib
import multiprocessing
import os
import platform
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

HOST = "127.0.0.1"
CHANNEL = "bench"
SIZE = 1024
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SERVERS = ["floor", "wsloop", "ws+bc/conn", "ws+bc/proc"]  # the floor first: rows compare to it


# -- messages ------------------------------------------------------------------
# "SSSSSSSSSS TTTTTTTTTTTTTTTTTTTT " then padding: seq (0 = warm-up), then
# the publish time in monotonic nanoseconds; 1 KiB of ASCII in all.


def message(seq: int) -> str:
    head = f"{seq:010d} {time.monotonic_ns():020d} "
    return head + "x" * (SIZE - len(head))


def raise_open_files(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# -- Redis ---------------------------------------------------------------------


class Redis:
    """A private redis-server on a free port (persistence off)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            sys.exit("bench/fanout.py needs redis-server (Debian: apt-get install redis-server)")
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = int(s.getsockname()[1])
        self.url = f"redis://{HOST}:{self.port}/0"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    sys.exit("redis-server did not start within 10 s")
                time.sleep(0.05)

    def command(self, *args: Any) -> Any:
        import hiredis

        with socket.create_connection((HOST, self.port), timeout=10) as s:
            s.sendall(hiredis.pack_command(args))
            reader = hiredis.Reader(encoding="utf-8")
            while True:
                reply = reader.gets()
                if reply is not False:
                    return reply
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("redis closed the connection")
                reader.feed(data)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RawSubscriber:
    """A Redis SUBSCRIBE on a plain socket, parsed with hiredis: for the
    floor and for wsloop's relay (both read it on their own loop)."""

    def __init__(self, redis_port: int) -> None:
        import hiredis

        self.sock = socket.create_connection((HOST, redis_port), timeout=10)
        self.sock.sendall(hiredis.pack_command(("SUBSCRIBE", CHANNEL)))
        self.reader = hiredis.Reader()
        while True:  # the confirmation, blocking: we are ready after it
            reply = self.reader.gets()
            if reply is not False:
                break
            self.reader.feed(self.sock.recv(65536))
        self.sock.setblocking(False)

    def messages(self) -> list[bytes]:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return []
        if not data:
            raise ConnectionError("redis closed the subscription")
        self.reader.feed(data)
        out = []
        while True:
            reply = self.reader.gets()
            if reply is False:
                return out
            if reply[0] == b"message":
                out.append(reply[2])


class Publisher:
    """Plain PUBLISH on one connection (the peers and the relay read that),
    or wsloop's broker's own publish when the wsloop row uses the broker."""

    def __init__(self, redis: Redis, via_broker: bool) -> None:
        import hiredis

        self.pack = hiredis.pack_command
        self.reader = hiredis.Reader()
        self.sock = socket.create_connection((HOST, redis.port), timeout=30)
        self.broker: Any = None
        if via_broker:
            # -- where wsloop's broker plugs in (publishing side) --
            from wsloop.broker import Publisher as BrokerPublisher

            self.broker = BrokerPublisher(redis.url)

    def publish(self, seqs: range) -> None:
        """Publish these messages back to back (pipelined), then read the replies."""
        if self.broker is not None:
            for seq in seqs:
                self.broker.publish(CHANNEL, message(seq))
            return
        self.sock.sendall(b"".join(self.pack(("PUBLISH", CHANNEL, message(s))) for s in seqs))
        got = 0
        while got < len(seqs):
            reply = self.reader.gets()
            if reply is False:
                self.reader.feed(self.sock.recv(65536))
            else:
                got += 1

    def close(self) -> None:
        self.sock.close()
        if self.broker is not None:
            self.broker.close()


# -- servers, one process each --------------------------------------------------


def serve_wsloop(ctl: Connection, port: int, redis_port: int, via: str, loop_name: str) -> None:
    import wsloop

    loop = wsloop.get_loop(loop_name)
    options: dict[str, Any] = {
        "reuse_port": True,
        "max_connections": None,
        "backlog": 1024,
        "ping_interval": None,
        "compression": None,
    }
    if via == "broker":
        # -- where wsloop's broker plugs in (serving side) --
        from wsloop.broker import open_broker

        broker = open_broker(f"redis://{HOST}:{redis_port}/0", loop=loop)

        def on_open(ws: wsloop.WebSocket) -> None:
            broker.subscribe(ws, CHANNEL)

        server = wsloop.serve(None, HOST, port, loop=loop, on_open=on_open, **options)
    else:
        # The relay: the server's own broadcast fed by a Redis subscription
        # read on the same loop.
        server = wsloop.serve(None, HOST, port, loop=loop, **options)
        relay = RawSubscriber(redis_port)

        def relay_readable() -> None:
            for data in relay.messages():
                server.broadcast(data.decode())

        loop.add_reader(relay.sock, relay_readable)

    def control() -> None:
        ctl.recv()  # "stop"
        loop.remove_reader(ctl.fileno())
        server.close(1)
        server.add_done_callback(loop.stop)

    loop.add_reader(ctl.fileno(), control)
    ctl.send("ready")
    loop.run()


def serve_websockets(ctl: Connection, port: int, redis_port: int, per: str) -> None:
    import asyncio

    async def main() -> None:
        from broadcaster import Broadcast
        from broadcaster._backends.redis import RedisBackend
        from websockets.asyncio.server import ServerConnection, broadcast, serve

        class Backend(RedisBackend):
            """broadcaster 0.3.1's RedisBackend with one fix: it wakes its
            listener before SUBSCRIBE has completed; with redis-py 8 the
            listener then finds no channel subscribed, returns, and waits for
            a wake-up that never comes: no message is ever delivered. Here
            the listener is woken after the subscription."""

            async def subscribe(self, channel: str) -> None:
                await self._pubsub.subscribe(channel)
                self._ready.set()

        bc = Broadcast(backend=Backend(f"redis://{HOST}:{redis_port}"))
        await bc.connect()
        local: set[ServerConnection] = set()

        async def per_connection(ws: ServerConnection) -> None:
            # As broadcaster's README shows: one subscription per connection,
            # forwarding until the connection closes.
            async with bc.subscribe(channel=CHANNEL) as subscriber:

                async def forward() -> None:
                    async for event in subscriber:  # type: ignore[union-attr]
                        await ws.send(event.message)

                task = asyncio.create_task(forward())
                try:
                    await ws.wait_closed()
                finally:
                    task.cancel()

        async def per_process(ws: ServerConnection) -> None:
            local.add(ws)
            try:
                await ws.wait_closed()
            finally:
                local.discard(ws)

        async def pump() -> None:
            async with bc.subscribe(channel=CHANNEL) as subscriber:
                async for event in subscriber:  # type: ignore[union-attr]
                    broadcast(local, event.message)

        async def hold() -> None:
            # broadcaster subscribes in Redis when a channel's first local
            # subscriber arrives, and connections that subscribe while that
            # SUBSCRIBE is in flight replace each other's queues (so they
            # never get a message). A subscription held from the start,
            # drained here, keeps every connection on the path that works.
            async with bc.subscribe(channel=CHANNEL) as subscriber:
                async for _ in subscriber:  # type: ignore[union-attr]
                    pass

        handler = per_connection if per == "conn" else per_process
        tasks = [asyncio.create_task(pump() if per == "proc" else hold())]
        while not bc._subscribers.get(CHANNEL):  # subscribed: bounded by the start-up wait
            await asyncio.sleep(0.01)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(ctl.fileno(), stop.set)
        async with serve(
            handler,
            HOST,
            port,
            reuse_port=True,
            backlog=1024,
            ping_interval=None,
            compression=None,
            max_size=None,
        ):
            ctl.send("ready")
            await stop.wait()
        for task in tasks:
            task.cancel()
        await bc.disconnect()

    asyncio.run(main())


def serve_floor(ctl: Connection, port: int, redis_port: int) -> None:
    """The floor: accept, answer the handshake, then write each message as
    one pre-built frame with one send() per socket, in a plain loop."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((HOST, port))
    listener.listen(1024)
    listener.setblocking(False)
    relay = RawSubscriber(redis_port)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(relay.sock, selectors.EVENT_READ, "redis")
    sel.register(ctl, selectors.EVENT_READ, "ctl")
    pending: dict[socket.socket, bytes] = {}
    open_socks: list[socket.socket] = []
    ctl.send("ready")
    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "accept":
                for _ in range(256):
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    pending[sock] = b""
                    sel.register(sock, selectors.EVENT_READ, "handshake")
            elif what == "handshake":
                sock = key.fileobj  # type: ignore[assignment]
                head = pending[sock] + sock.recv(4096)
                if b"\r\n\r\n" not in head:
                    pending[sock] = head
                    continue
                del pending[sock]
                sel.unregister(sock)
                wskey = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                digest = hashlib.sha1(wskey + GUID.encode()).digest()
                sock.setblocking(True)
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + base64.b64encode(digest)
                    + b"\r\n\r\n"
                )
                open_socks.append(sock)
            elif what == "redis":
                for data in relay.messages():
                    frame = frame_header(len(data)) + data
                    for sock in list(open_socks):  # one send each
                        try:
                            sent = sock.send(frame)
                            if sent < len(frame):  # blocking: only if interrupted
                                sock.sendall(frame[sent:])
                        except OSError:
                            open_socks.remove(sock)
                            sock.close()
            else:
                ctl.recv()
                for sock in open_socks:
                    sock.close()
                return


def frame_header(n: int) -> bytes:
    """An unmasked final text frame's header for ``n`` bytes of payload."""
    if n < 126:
        return bytes([0x81, n])
    if n < 65536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big")
    return bytes([0x81, 127]) + n.to_bytes(8, "big")


# -- subscribers, many connections per process ------------------------------------


class _Conn:
    __slots__ = ("buf", "last", "warm")

    def __init__(self) -> None:
        self.buf = b""
        self.last = 0
        self.warm = False


def subscribe(ctl: Connection, port: int, count: int) -> None:
    """Hold ``count`` connections; count and time every message; answer
    the orchestrator's commands on ``ctl``."""
    sel = selectors.DefaultSelector()
    request = (
        f"GET /{CHANNEL} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    conns: dict[socket.socket, _Conn] = {}
    failed = 0
    deadline = time.monotonic() + 120
    todo = count
    handshaking: dict[socket.socket, bytes] = {}
    while (todo or handshaking) and time.monotonic() < deadline:
        while todo and len(handshaking) < 100:  # a bounded number in flight
            todo -= 1
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((HOST, port))
            handshaking[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
        for key, events in sel.select(1.0):
            s = key.fileobj  # type: ignore[assignment]
            if events & selectors.EVENT_WRITE:
                sel.modify(s, selectors.EVENT_READ)
                try:
                    s.send(request)
                except OSError:
                    failed += 1
                    sel.unregister(s)
                    del handshaking[s]
                    s.close()
                continue
            try:
                data = handshaking[s] + s.recv(4096)
            except OSError:
                data = b""
            if b"\r\n\r\n" not in data:
                if data and len(data) < 8192:
                    handshaking[s] = data
                    continue
                failed += 1
                sel.unregister(s)
                del handshaking[s]
                s.close()
                continue
            del handshaking[s]
            head, _, rest = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                failed += 1
                sel.unregister(s)
                s.close()
                continue
            conns[s] = conn = _Conn()
            conn.buf = rest
            sel.modify(s, selectors.EVENT_READ, conn)
    for s in handshaking:
        sel.unregister(s)
        s.close()
    failed += len(handshaking) + todo
    sel.register(ctl, selectors.EVENT_READ, None)
    ctl.send(("ready", len(conns), failed))

    latencies = array.array("q")
    delivered = 0
    disorder = 0
    warm = 0
    closed = 0
    first_ns = 0
    last_ns = 0
    monotonic_ns = time.monotonic_ns
    while True:
        for key, _ in sel.select():
            conn = key.data
            if conn is None:
                command = ctl.recv()
                if command == "stats":
                    ctl.send((delivered, warm, closed))
                elif command == "reset":
                    latencies = array.array("q")
                    delivered = disorder = 0
                    first_ns = last_ns = 0
                    for c in conns.values():
                        c.last = 0
                    ctl.send("ok")
                elif command == "report":
                    ctl.send((delivered, disorder, closed, first_ns, last_ns, latencies.tobytes()))
                else:  # stop
                    for s in conns:
                        s.close()
                    return
                continue
            s = key.fileobj  # type: ignore[assignment]
            try:
                data = s.recv(1 << 18)
            except OSError:
                data = b""
            now = monotonic_ns()
            if not data:
                closed += 1
                sel.unregister(s)
                continue
            if conn.buf:
                data = conn.buf + data
            pos = 0
            end_all = len(data)
            while end_all - pos >= 2:
                length = data[pos + 1] & 0x7F
                if length == 126:
                    if end_all - pos < 4:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                    start = pos + 4
                elif length == 127:
                    if end_all - pos < 10:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    start = pos + 10
                else:
                    start = pos + 2
                end = start + length
                if end > end_all:
                    break
                if data[pos] & 0x0F == 1:
                    seq = int(data[start : start + 10])
                    if seq == 0:
                        if not conn.warm:
                            conn.warm = True
                            warm += 1
                    else:
                        latencies.append(now - int(data[start + 11 : start + 31]))
                        delivered += 1
                        if seq != conn.last + 1:
                            disorder += 1
                        conn.last = seq
                        if not first_ns:
                            first_ns = now
                        last_ns = now
                elif data[pos] & 0x0F == 8:
                    closed += 1
                pos = end
            conn.buf = data[pos:] if pos < end_all else b""


# -- the orchestrator -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))
    return sorted_values[index] / 1e6  # ms


class Setup:
    """One server kind, ``procs`` server processes, ``subs`` subscribers."""

    def __init__(self, args: argparse.Namespace, redis: Redis, kind: str, procs: int, subs: int):
        self.args = args
        self.redis = redis
        self.kind = kind
        self.procs = procs
        self.subs = subs
        self.ctx = multiprocessing.get_context("spawn")
        self.servers: list[tuple[Any, Connection]] = []
        self.subscribers: list[tuple[Any, Connection]] = []
        self.connected = 0
        self.via_broker = kind == "wsloop" and args.wsloop_via == "broker"

    def _start(self, target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(theirs, *args), daemon=True)
        proc.start()
        theirs.close()
        return proc, mine

    def start(self) -> None:
        port = free_port()
        for _ in range(self.procs):
            if self.kind == "wsloop":
                via = "broker" if self.via_broker else "relay"
                pair = self._start(serve_wsloop, port, self.redis.port, via, self.args.loop)
            elif self.kind == "floor":
                pair = self._start(serve_floor, port, self.redis.port)
            else:
                pair = self._start(serve_websockets, port, self.redis.port, self.kind[-4:])
            self.servers.append(pair)
        for _, ctl in self.servers:
            if not ctl.poll(60) or ctl.recv() != "ready":
                raise RuntimeError(f"{self.kind} server did not start")
        nproc = self.args.subscriber_procs or (1 if self.subs < 1000 else 2)
        shares = [self.subs // nproc + (i < self.subs % nproc) for i in range(nproc)]
        for share in shares:
            self.subscribers.append(self._start(subscribe, port, share))
        for _, ctl in self.subscribers:
            if not ctl.poll(180):
                raise RuntimeError("subscribers did not connect within 180 s")
            _, connected, failed = ctl.recv()
            self.connected += connected
            if failed:
                print(f"  ({self.kind}: {failed} subscribers failed to connect)", flush=True)

    def ask(self, command: str) -> list[Any]:
        for _, ctl in self.subscribers:
            ctl.send(command)
        replies = []
        for _, ctl in self.subscribers:
            if not ctl.poll(60):
                raise RuntimeError(f"a subscriber did not answer {command!r}")
            replies.append(ctl.recv())
        return replies

    def warm_up(self, publisher: Publisher) -> int:
        """Publish warm-up messages until every connection got one (so that
        every subscription, per connection or per process, is live); how
        many connections got one."""
        deadline = time.monotonic() + 30
        warm = 0
        while time.monotonic() < deadline and warm < self.connected:
            publisher.publish(range(0, 1))
            time.sleep(0.2)
            warm = sum(w for _, w, _ in self.ask("stats"))
        return warm

    def wait_for(self, expected: int, bound: float) -> None:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if sum(d for d, _, _ in self.ask("stats")) >= expected:
                return
            time.sleep(0.05)

    def measure(self, publisher: Publisher, count: int, rate: float | None) -> dict[str, Any]:
        self.ask("reset")
        expected = count * self.connected
        started = time.monotonic_ns()
        if rate is None:
            publisher.publish(range(1, count + 1))
        else:
            due = time.monotonic()
            for seq in range(1, count + 1):
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(range(seq, seq + 1))
                due += 1 / rate
        # Bounded: at 2,000 deliveries per second at the least, plus 10 s.
        self.wait_for(expected, 10 + expected / 2000)
        delivered = disorder = 0
        last = 0
        latencies: list[int] = []
        for d, dis, _closed, _first, last_ns, raw in self.ask("report"):
            delivered += d
            disorder += dis
            last = max(last, last_ns)
            values = array.array("q")
            values.frombytes(raw)
            latencies.extend(values)
        latencies.sort()
        seconds = (last - started) / 1e9 if last else float("nan")
        return {
            "rate": delivered / seconds if seconds > 0 else float("nan"),
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "lost": expected - delivered,
            "disorder": disorder,
        }

    def stop(self) -> None:
        """The subscribers first (so the servers have nothing left to
        close), then the servers; each bounded, then killed."""
        for group in (self.subscribers, self.servers):
            for _, ctl in group:
                try:
                    ctl.send("stop")
                except OSError:
                    pass
            for proc, ctl in group:
                proc.join(10)
                if proc.is_alive():
                    print(f"  ({self.kind}: a process did not stop within 10 s: killed)")
                    proc.kill()
                    proc.join(5)
                ctl.close()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 subscribers, a few seconds")
    parser.add_argument("--subscribers", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--procs", default="1,2", help="server processes, comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS), help="which servers to run")
    parser.add_argument(
        "--deliveries",
        type=int,
        default=500_000,
        help="deliveries per burst (messages = this / subscribers, at least 20)",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="steady messages per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady phase length")
    parser.add_argument(
        "--subscriber-procs", type=int, default=0, help="processes holding the subscribers"
    )
    parser.add_argument("--loop", default="builtin", help="wsloop servers' loop")
    parser.add_argument(
        "--wsloop-via",
        choices=["broker", "relay"],
        default=None,
        help="wsloop's subscription to Redis: its broker (default when wsloop.broker exists) "
        "or the bench's relay to Server.broadcast",
    )
    args = parser.parse_args()
    if args.wsloop_via is None:
        try:
            import wsloop.broker
        except ImportError:
            args.wsloop_via = "relay"
        else:
            args.wsloop_via = "broker"
    if args.quick:
        args.subscribers, args.procs = "200", "2"
        args.deliveries, args.rate, args.seconds = 4000, 20.0, 1.0
    counts = [int(x) for x in args.subscribers.split(",")]
    procs_list = [int(x) for x in args.procs.split(",")]
    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {SERVERS}")
    limit = raise_open_files(2 * max(counts) + 100)
    if limit < max(counts) + 100:
        sys.exit(
            f"{max(counts)} subscribers need more open files than the hard limit ({limit}): "
            "raise it (ulimit -Hn) or pass fewer --subscribers"
        )
    print(
        f"fan-out through Redis, {SIZE} B messages; {machine()}; Python {platform.python_version()}"
    )
    import wsloop

    build = "compiled" if wsloop.COMPILED else "pure Python"
    print(
        f"open files limit raised to {limit}; wsloop {wsloop.__version__} ({build}) via "
        f"{args.wsloop_via}, {args.loop} loop; indicative only\n"
    )
    redis = Redis()
    try:
        for subs in counts:
            burst = max(20, args.deliveries // subs)
            steady = max(2, int(args.rate * args.seconds))
            for procs in procs_list:
                print(
                    f"{subs} subscribers, {procs} server process(es): burst of {burst}, "
                    f"then {steady} at {args.rate:g}/s"
                )
                header = (
                    f"  {'server':<12} {'burst deliv/s':>14} {'x floor':>8} {'steady p50 ms':>14} "
                    f"{'p99 ms':>8} {'x floor':>8} {'lost':>6} {'disorder':>9}"
                )
                print(header, flush=True)
                rows = {}
                for kind in kinds:
                    setup = Setup(args, redis, kind, procs, subs)
                    try:
                        setup.start()
                        publisher = Publisher(redis, setup.via_broker)
                        try:
                            warm = setup.warm_up(publisher)
                            if warm < setup.connected:
                                print(
                                    f"  {kind:<12} warm-up reached {warm} of {setup.connected} "
                                    "subscribers within 30 s: not measured"
                                )
                                continue
                            fast = setup.measure(publisher, burst, None)
                            slow = setup.measure(publisher, steady, args.rate)
                        finally:
                            publisher.close()
                    finally:
                        setup.stop()
                    rows[kind] = (fast, slow)
                    print(format_row(kind, fast, slow, rows.get("floor")), flush=True)
                print()
    finally:
        redis.close()


def format_row(
    kind: str,
    fast: dict[str, Any],
    slow: dict[str, Any],
    floor: tuple[dict[str, Any], dict[str, Any]] | None,
) -> str:
    rate_x = f"{fast['rate'] / floor[0]['rate']:.2f}" if floor else "-"
    p99_x = f"{slow['p99'] / floor[1]['p99']:.2f}" if floor else "-"
    lost = fast["lost"] + slow["lost"]
    disorder = fast["disorder"] + slow["disorder"]
    return (
        f"  {kind:<12} {fast['rate']:>14,.0f} {rate_x:>8} {slow['p50']:>14.1f} "
        f"{slow['p99']:>8.1f} {p99_x:>8} {lost:>6} {disorder:>9}"
    )


if __name__ == "__main__":
    main()
