"""Socketpair ping-pong through each event-loop backend.

    python bench/loops.py [--rounds 100000] [--backends builtin,asyncio,...]

One byte bounces between the two ends of a socketpair; both ends are
watched by the same loop. Prints microseconds per round trip for every
backend next to a raw blocking send/recv loop on the same kind of
socketpair, all in one run so the numbers compare.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from wsloop.loops import BACKENDS, get_loop


def raw(rounds: int) -> float:
    a, b = socket.socketpair()
    start = time.perf_counter()
    for _ in range(rounds):
        a.send(b"x")
        b.recv(1)
        b.send(b"y")
        a.recv(1)
    elapsed = time.perf_counter() - start
    a.close()
    b.close()
    return elapsed


def through(name: str, rounds: int) -> float:
    loop = get_loop(name)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    left = [rounds]

    def on_b() -> None:
        b.recv(1)
        b.send(b"y")

    def on_a() -> None:
        a.recv(1)
        left[0] -= 1
        if left[0]:
            a.send(b"x")
        else:
            loop.stop()

    loop.add_reader(b, on_b)
    loop.add_reader(a, on_a)
    start = time.perf_counter()
    a.send(b"x")
    loop.run()
    elapsed = time.perf_counter() - start
    loop.close()
    a.close()
    b.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    rows = [("raw send/recv (no loop)", raw(args.rounds))]
    for name in args.backends.split(","):
        try:
            rows.append((name, through(name, args.rounds)))
        except ImportError as exc:
            rows.append((f"{name} (unavailable: {exc})", float("nan")))
    best = min(t for n, t in rows[1:] if t == t)
    print(f"{'backend':<28} {'us/round trip':>14} {'x best':>8}")
    for name, elapsed in rows:
        us = elapsed / args.rounds * 1e6
        ratio = "" if name.startswith("raw") or elapsed != elapsed else f"{elapsed / best:8.2f}"
        print(f"{name:<28} {us:14.2f} {ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
