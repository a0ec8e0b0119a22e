"""``wsloop bench``: round trips and throughput against an echo server.

Without a URL it starts ``wsloop serve --mode echo`` in a separate process
(so client and server do not share a GIL) and measures against it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import wsloop

from ..loops import Loop, get_loop

__all__ = ["measure", "run_cli"]


class _Runner(wsloop.Handler):
    def __init__(self, loop: Loop, payload: bytes, count: int, in_flight: int) -> None:
        self.loop = loop
        self.payload = payload
        self.count = count
        self.in_flight = in_flight
        self.sent = 0
        self.received = 0
        self.started = 0.0
        self.elapsed = 0.0
        self.error: BaseException | None = None

    def on_open(self, ws: wsloop.WebSocket) -> None:
        self.started = time.perf_counter()
        for _ in range(min(self.in_flight, self.count)):
            ws.send(self.payload)
            self.sent += 1

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.received += 1
        if self.received % 2000 == 0:
            sys.stderr.write(
                f"\r  {len(self.payload)} B x{self.in_flight}: {self.received}/{self.count}"
            )
            sys.stderr.flush()
        if self.sent < self.count:
            ws.send(self.payload)
            self.sent += 1
        elif self.received == self.count:
            self.elapsed = time.perf_counter() - self.started
            ws.close()

    def on_error(self, ws: wsloop.WebSocket | None, error: BaseException) -> None:
        self.error = error

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        if state in ("closed", "gave_up"):
            self.loop.stop()


def measure(url: str, loop_name: str, size: int, count: int, in_flight: int) -> float:
    """Messages per second (round trips when ``in_flight`` is 1)."""
    loop = get_loop(loop_name)
    runner = _Runner(loop, bytes(size), count, in_flight)
    wsloop.connect(
        url, runner, loop=loop, compression=False, max_message_size=None, ping_interval=None
    )
    loop.run()
    loop.close()
    if runner.error is not None:
        raise runner.error
    return count / runner.elapsed if runner.elapsed else float("nan")


def run_cli(args: argparse.Namespace) -> int:
    server = None
    url = args.url
    if url is None:
        server = subprocess.Popen(
            [sys.executable, "-m", "wsloop", "serve", "--port", "0", "--max-size", str(1 << 30)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url:
            raise RuntimeError("the local echo server did not start")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        rows = []
        for size in sizes:
            count = max(200, min(args.count, args.count * 4096 // max(size, 4096)))
            rtt = measure(url, args.loop, size, count, 1)
            pipelined = measure(url, args.loop, size, count, 100)
            rows.append((size, rtt, pipelined))
        sys.stderr.write("\r" + " " * 60 + "\r")
        print(f"wsloop {wsloop.__version__} on the {args.loop} loop against {url}")
        print(f"{'size':>10} {'round trips/s':>15} {'pipelined msg/s':>17} {'MB/s':>9}")
        for size, rtt, pipelined in rows:
            print(f"{size:>10} {rtt:>15.0f} {pipelined:>17.0f} {pipelined * size / 1e6:>9.1f}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
