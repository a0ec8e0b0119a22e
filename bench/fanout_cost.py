"""What one delivery of a fan-out costs, counted rather than timed.

    scripts/compiled .venv/bin/python bench/fanout_cost.py [--subscribers 1000] [--count 40]
                                                           [--modes floor,broadcast,broker]
                                                           [--timer]

One process holds N WebSocket connections (a drain process of its own
opened them over loopback TCP and reads everything) and writes M 1 KiB
text messages to all of them, one message per loop iteration:

- ``floor``: no WebSocket library: one pre-built frame, one ``send`` per
  socket (what bench/fanout.py's floor does per message).
- ``broadcast``: a wsloop server, ``Server.broadcast(message)``.
- ``broker``: a wsloop server whose connections are subscribed to one
  channel of an in-process broker, and the broker's local fan-out
  (``Fanout.live``: what a message from Redis goes through).
- ``envelope``: the same with ``envelope=True`` (one JSON text per message).

By default each mode runs under valgrind's callgrind (user-space
instructions; the kernel's share, the same for every mode, is not counted)
twice, for ``BASE`` and ``BASE + count`` messages: the difference divided by
``count * N`` is the instructions per delivery, with start-up, imports and
handshakes cancelled out; repeated runs agree within a few per cent.
``--timer`` instead times the fan-out with ``time.process_time`` (user +
system CPU of this process, kernel included), on a shared machine only
indicative. Run it with the compiled build (``scripts/compiled``), as users
get it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _callgrind import instructions

HOST = "127.0.0.1"
SIZE = 1024
BASE = 10
MODES = ["floor", "broadcast", "broker", "envelope"]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def message(seq: int) -> str:
    head = f"{seq:010d} "
    return head + "x" * (SIZE - len(head))


# -- the drain: another process, not counted -------------------------------------


def drain(port: int, count: int) -> None:
    """Open ``count`` connections, ask each for a WebSocket, read until
    every one is closed (bounded: 300 s)."""
    sel = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=30)
        sock.sendall(REQUEST)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    open_count = count
    deadline = time.monotonic() + 300
    while open_count and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                open_count -= 1


def start_drain(port: int, count: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, "--drain", str(port), str(count)])
    return proc


# -- the fan-out being measured ----------------------------------------------------


def run_floor(count: int, messages: int, timer: bool) -> float:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1024)
    proc = start_drain(listener.getsockname()[1], count)
    socks: list[socket.socket] = []
    for _ in range(count):
        sock, _addr = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        key = head.split(b"Sec-WebSocket-Key: ", 1)[1].split(b"\r\n", 1)[0]
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        socks.append(sock)
    sel = selectors.DefaultSelector()  # one select per message, as a loop would
    sel.register(listener, selectors.EVENT_READ)
    started = time.process_time()
    for seq in range(messages):
        sel.select(0)
        data = message(seq + 1).encode()
        frame = bytes([0x81, 126]) + len(data).to_bytes(2, "big") + data
        for sock in socks:  # as bench/fanout.py's floor: one send each
            sent = sock.send(frame)
            if sent < len(frame):
                sock.sendall(frame[sent:])
    spent = time.process_time() - started
    for sock in socks:
        sock.close()
    proc.wait(120)
    return spent


def run_wsloop(mode: str, count: int, messages: int, timer: bool) -> float:
    import wsloop

    loop = wsloop.get_loop("builtin")
    opened: list[Any] = []
    broker: Any = None
    if mode in ("broker", "envelope"):
        from wsloop.broker import open_broker

        broker = open_broker(None, loop=loop, history=0, envelope=mode == "envelope")
    result: dict[str, Any] = {}

    def on_open(ws: Any) -> None:
        if broker is not None:
            broker.subscribe(ws, "feed")
        opened.append(ws)
        if len(opened) == count:
            loop.call_soon(begin)

    server = wsloop.serve(
        None,
        HOST,
        0,
        loop=loop,
        on_open=on_open,
        ping_interval=None,
        compression=None,
        max_connections=None,
        backlog=1024,
    )
    proc = start_drain(server.port, count)

    if broker is not None:
        from wsloop.broker.fanout import Channel
        from wsloop.broker.feed import Position

        fanout = broker._fanout

        def fan_out(seq: int, data: str) -> int:
            channel: Channel = broker._channels["feed"]  # there once subscribed
            return int(fanout.live(channel, Position("e", seq), data))
    else:

        def fan_out(seq: int, data: str) -> int:
            return int(server.broadcast(data))

    def begin() -> None:
        result["started"] = time.process_time()
        result["sent"] = 0
        loop.call_soon(step, 1)

    def step(seq: int) -> None:
        result["sent"] += fan_out(seq, message(seq))
        if seq < messages:
            loop.call_soon(step, seq + 1)
        else:
            result["spent"] = time.process_time() - result["started"]
            server.close(5)
            server.add_done_callback(loop.stop)

    loop.run()
    proc.wait(120)
    if result.get("sent") != count * messages:
        raise RuntimeError(f"{mode}: {result.get('sent')} deliveries, not {count * messages}")
    return float(result["spent"])


def run(mode: str, count: int, messages: int, timer: bool) -> float:
    if mode == "floor":
        return run_floor(count, messages, timer)
    return run_wsloop(mode, count, messages, timer)


# -- the driver ------------------------------------------------------------------


def callgrind(mode: str, count: int, messages: int, scratch: Path) -> int:
    out = scratch / f"{mode}.{messages}.callgrind"
    argv = [sys.executable, __file__, "--run", mode, str(count), str(messages)]
    return instructions(argv, out, mode, timeout=1800)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--count", type=int, default=40, help="messages measured")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timer", action="store_true", help="process_time, not callgrind")
    parser.add_argument("--drain", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain:
        drain(*args.drain)
        return 0
    if args.run:
        mode, count, messages = args.run[0], int(args.run[1]), int(args.run[2])
        print(run(mode, count, messages, False))
        return 0
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    import wsloop

    n, m = args.subscribers, args.count
    build = "compiled" if wsloop.COMPILED else "pure Python"
    if args.timer:
        print(
            f"CPU time per delivery (process_time), {n} subscribers, {m} messages, wsloop {build}"
        )
        floor = None
        for mode in modes:
            per = run(mode, n, m, True) / (n * m) * 1e6
            floor = per if mode == "floor" else floor
            ratio = f"  {per / floor:.2f}x the floor" if floor else ""
            print(f"{mode:<10} {per:8.2f} us{ratio}")
        return 0
    if shutil.which("valgrind") is None:
        print("needs valgrind (apt-get install valgrind), or pass --timer", file=sys.stderr)
        return 1
    print(
        f"User-space instructions per delivery (callgrind), {n} subscribers, "
        f"{BASE}+{m} messages, wsloop {build}"
    )
    floor_count = None
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            low = callgrind(mode, n, BASE, Path(tmp))
            high = callgrind(mode, n, BASE + m, Path(tmp))
            per = (high - low) / (n * m)
            floor_count = per if mode == "floor" else floor_count
            ratio = f"  {per / floor_count:.2f}x the floor" if floor_count else ""
            print(f"{mode:<10} {per:10,.0f}{ratio}", flush=True)
    return 0


def raise_open_files() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise_open_files()
    sys.exit(main())
