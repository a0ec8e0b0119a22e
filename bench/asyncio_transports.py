"""Should wsloop use asyncio's own transports on asyncio/uvloop?

    python bench/asyncio_transports.py [--rounds 50000]

First, a bare 64-byte ping-pong on a socketpair, driven two ways on each
loop: fd callbacks (``add_reader`` + ``recv``/``send``, wsloop's
SocketTransport) and ``asyncio.Protocol`` transports
(``create_connection(sock=...)``). Then wsloop itself: a 64 B WebSocket
echo, client and server in one process, with each of its two transports
(``WSLOOP_NATIVE_TRANSPORTS=0`` forces fd watches). Prints microseconds per
round trip. On this project's machine: the standard loop's transports take
~39 us against ~11 us for fd callbacks (they allocate a new bytes object of
their full read size per read), so wsloop keeps fd watches there; on uvloop
the bare ping-pong is level (~7.1 against ~7.3 us), and so is wsloop's echo,
so uvloop's transports stay opt-in (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def fd_callbacks(loop: asyncio.AbstractEventLoop, rounds: int) -> float:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    left = [rounds]
    done: asyncio.Future[None] = loop.create_future()

    def on_b() -> None:
        b.send(b.recv(65536))

    def on_a() -> None:
        a.recv(65536)
        left[0] -= 1
        if left[0]:
            a.send(b"x" * 64)
        else:
            done.set_result(None)

    loop.add_reader(b, on_b)
    loop.add_reader(a, on_a)
    start = time.perf_counter()
    a.send(b"x" * 64)
    loop.run_until_complete(done)
    elapsed = time.perf_counter() - start
    loop.remove_reader(a)
    loop.remove_reader(b)
    a.close()
    b.close()
    return elapsed / rounds * 1e6


def protocols(loop: asyncio.AbstractEventLoop, rounds: int) -> float:
    a, b = socket.socketpair()
    left = [rounds]
    done: asyncio.Future[None] = loop.create_future()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    class Pinger(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            left[0] -= 1
            if left[0]:
                self.transport.write(b"x" * 64)
            else:
                done.set_result(None)

    ta, _ = loop.run_until_complete(loop.create_connection(Pinger, sock=a))
    tb, _ = loop.run_until_complete(loop.create_connection(Echo, sock=b))
    start = time.perf_counter()
    ta.write(b"x" * 64)
    loop.run_until_complete(done)
    elapsed = time.perf_counter() - start
    ta.close()
    tb.close()
    loop.run_until_complete(asyncio.sleep(0))
    return elapsed / rounds * 1e6


WSLOOP_ECHO = """
import sys, time, uvloop, wsloop
from wsloop.bench import _Runner
loop = wsloop.get_loop(uvloop.new_event_loop())
options = dict(compression=False, max_message_size=None, ping_interval=None)
server = wsloop.serve(on_message=lambda ws, m: ws.send(m), loop=loop, **options)
rounds = int(sys.argv[1])
runner = _Runner(loop, bytes(64), rounds, 1)
runner.on_close = lambda *args: loop.stop()
wsloop.connect(server.url, runner, loop=loop, **options)
loop.run()
print(runner.elapsed / rounds * 1e6)
"""


def wsloop_echo(native_transports: bool, rounds: int) -> float:
    env = dict(os.environ, WSLOOP_NATIVE_TRANSPORTS="1" if native_transports else "0")
    out = subprocess.run(
        [sys.executable, "-c", WSLOOP_ECHO, str(rounds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=50_000)
    rounds = parser.parse_args().rounds
    makers: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    try:
        import uvloop

        makers.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    print(f"{'loop':<10} {'fd callbacks':>14} {'Protocol':>10}   (us per round trip)")
    for name, make in makers:
        results = []
        for fn in (fd_callbacks, protocols):
            loop = make()
            results.append(fn(loop, rounds))
            loop.close()
        print(f"{name:<10} {results[0]:>14.2f} {results[1]:>10.2f}")
    if len(makers) > 1:
        fd, native = (wsloop_echo(flag, rounds) for flag in (False, True))
        print(f"{'wsloop':<10} {fd:>14.2f} {native:>10.2f}   (WebSocket echo on uvloop)")


if __name__ == "__main__":
    main()
