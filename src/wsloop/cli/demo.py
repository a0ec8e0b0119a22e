"""The scenario that started wsloop, run for real.

A client reads a steady feed (120 messages a minute) on a **libev** loop.
Its ``connect()`` is requested *before* the loop starts: with
libwebsockets' foreign-loop support that connection never delivered a
callback, and the known workaround was "start the loop first, connect
from a zero-delay timer". With wsloop the plain order just works.

    wsloop demo [--duration 20] [--rate 120] [--loop libev] [--all-backends]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

import wsloop

from ..loops import BACKENDS, Loop, get_loop
from .feeds import ServeHandler
from .usage import UsageError

__all__ = ["FeedPrinter", "listen", "run_demo", "start_ticker", "summary"]


class FeedPrinter(wsloop.Handler):
    def __init__(self, loop: Loop, quiet: bool = False) -> None:
        self.loop = loop
        self.quiet = quiet
        self.seqs: list[int] = []
        self.first: float | None = None
        self.last: float | None = None
        self.threads: set[int] = set()
        self.errors: list[str] = []

    def on_open(self, ws: wsloop.WebSocket) -> None:
        if not self.quiet:
            host, port = ws.remote_address[:2]
            print(f"  open: {host}:{port} on the {self.loop.name} loop")

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.threads.add(threading.get_ident())
        seq = json.loads(data)["seq"]
        self.seqs.append(seq)
        elapsed = now - self.first
        rate = (len(self.seqs) - 1) / elapsed * 60 if elapsed > 0 else 0.0
        if not self.quiet:
            print(
                f"  #{len(self.seqs):<4} seq={seq:<4} t=+{elapsed:6.2f}s  rate={rate:6.1f}/min",
                flush=True,
            )

    def on_error(self, ws: wsloop.WebSocket | None, error: BaseException) -> None:
        self.errors.append(str(error))
        print(f"  error: {error}")

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        if state in ("closed", "gave_up"):
            self.loop.stop()


def start_ticker(rate: float) -> tuple[Loop, wsloop.Server, threading.Thread]:
    loop = get_loop("builtin")
    handler = ServeHandler("ticker", rate, loop)
    server = wsloop.serve(handler, "127.0.0.1", 0, loop=loop)
    thread = threading.Thread(target=loop.run, name="demo-ticker", daemon=True)
    thread.start()
    return loop, server, thread


def listen(name: str, url: str, duration: float, quiet: bool = False) -> FeedPrinter:
    loop = get_loop(name)
    printer = FeedPrinter(loop, quiet)
    # The order that used to fail: connect first...
    client = wsloop.connect(url, printer, loop=loop)
    # ...then, later, start the loop. A timer ends the run.
    loop.call_later(duration, client.close)
    loop.call_later(duration + 15, loop.stop)  # safety net
    loop.run()
    loop.close()
    return printer


def summary(printer: FeedPrinter) -> tuple[bool, str]:
    seqs = printer.seqs
    in_order = seqs == list(range(1, len(seqs) + 1))
    ok = bool(seqs) and in_order and not printer.errors and len(printer.threads) == 1
    rate = ""
    if len(seqs) > 1 and printer.first is not None and printer.last is not None:
        rate = f", {(len(seqs) - 1) / (printer.last - printer.first) * 60:.1f}/min"
    order = "in order, none missing" if in_order else "OUT OF ORDER OR MISSING"
    text = (
        f"{len(seqs)} messages{rate}, {order}, "
        f"callbacks on {len(printer.threads)} thread (the loop's), "
        f"{'no errors' if not printer.errors else str(len(printer.errors)) + ' errors'}"
    )
    return ok, text


def run_demo(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.rate <= 0:
        raise UsageError("--duration and --rate must be positive")
    server_loop, server, thread = start_ticker(args.rate)
    try:
        print(f"ticker server: {server.url} ({args.rate:g} messages/minute)")
        print(
            f"client: {args.loop} loop; wsloop.connect() is called BEFORE the loop runs "
            f"(no zero-delay-timer workaround); listening for {args.duration:g}s"
        )
        printer = listen(args.loop, server.url, args.duration)
        ok, text = summary(printer)
        print(f"summary ({args.loop}): {text}")
        results = [(args.loop, ok, text)]
        if args.all_backends:
            short = min(args.duration, 3.0)
            fast = max(args.rate, 600.0)
            server_loop.call_soon_threadsafe(server.close)
            server.wait_closed(5)
            server_loop.call_soon_threadsafe(server_loop.stop)
            thread.join(5)
            server_loop, server, thread = start_ticker(fast)
            print(f"\nthe same client on every other backend ({short:g}s each at {fast:g}/min):")
            for name in BACKENDS:
                if name == args.loop:
                    continue
                try:
                    p = listen(name, server.url, short, quiet=True)
                except ImportError as exc:
                    print(f"  {name:<8} unavailable: {exc}")
                    continue
                ok_b, text_b = summary(p)
                results.append((name, ok_b, text_b))
                print(f"  {name:<8} {'OK  ' if ok_b else 'FAIL'} {text_b}")
        return 0 if all(ok for _, ok, _ in results) else 1
    finally:
        server_loop.call_soon_threadsafe(server.close)
        server.wait_closed(5)
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)
        server_loop.close()
