"""CPU instructions per message, counted exactly: wsloop beside its peers.

    python bench/instructions.py [--size 64] [--count 2000] [--clients wsloop-aio,aiohttp,...]
                                 [--server picows]

Round trips per second on a shared machine vary by several percent from run
to run, and most of a small round trip is spent in the kernel, the same for
every library. What a library adds is its own CPU work in user space, and
that can be counted instead of timed: each client runs under valgrind's
callgrind (which counts every instruction the process executes outside the
kernel) against one echo server (picows on uvloop unless ``--server`` says
otherwise; it does not run under valgrind), once
for ``BASE`` round trips and once for ``BASE + count``; the difference
divided by ``count`` is the instructions per round trip, with interpreter
start-up, imports and the handshake cancelled out. Repeated runs agree
within a few percent. Needs valgrind (``apt-get install valgrind``).

Rows: wsloop's asyncio API (both forms: messages awaited, and messages to
a handler) and callback API, the peers' clients
(websockets, aiohttp, picows; all on uvloop), and ``bare``: no WebSocket
library at all (a plain asyncio Protocol writing one prebuilt frame and
awaiting one future per echo), the floor under any await API on uvloop.
Instructions are not time (a cache miss costs more than an add), so read
this beside ``bench/peers.py``; but a client that executes fewer
instructions per message is doing less work per message.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _callgrind import instructions as count_instructions
from peers import WORKER, Server, progress, tls_env, wsloop_compiled

BASE = 300
CLIENTS = [
    ("wsloop asyncio API", "wsloop-aio"),
    ("wsloop asyncio API, handler", "wsloop-aio-cb"),
    ("wsloop callbacks", "wsloop"),
    ("websockets", "websockets"),
    ("aiohttp", "aiohttp"),
    ("picows", "picows"),
    ("no library (await floor)", "bare"),
]


def instructions(
    lib: str,
    url: str,
    size: int,
    count: int,
    scratch: Path,
    in_flight: int = 1,
    env: dict[str, str] | None = None,
) -> int:
    """User-space instructions a ``lib`` client executes for ``count`` round trips."""
    out = scratch / f"{lib}.{count}.callgrind"
    argv = [*WORKER, "client", lib, "uvloop", url, str(size), str(count), str(in_flight)]
    return count_instructions(argv, out, f"{lib} client", timeout=900, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--count", type=int, default=2000, help="round trips counted")
    parser.add_argument(
        "--clients",
        default=",".join(lib for _, lib in CLIENTS),
        help="comma-separated: " + ", ".join(lib for _, lib in CLIENTS),
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1,
        help="messages in flight (1: round trips; 100: the pipelined rows of peers.py)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="wss:// (certificates from trustme) instead of ws://"
    )
    parser.add_argument(
        "--server", default="picows", help="echo server (a _workers.py server LIB, on uvloop)"
    )
    args = parser.parse_args()
    if args.size < 1 or args.count < 1 or args.in_flight < 1:
        parser.error("--size, --count and --in-flight must be positive")
    names = {lib: label for label, lib in CLIENTS}
    libs = args.clients.split(",")
    unknown = [lib for lib in libs if lib not in names]
    if unknown:
        parser.error(f"unknown client(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if shutil.which("valgrind") is None:
        sys.stderr.write("bench/instructions.py needs valgrind (apt-get install valgrind)\n")
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="wsloop-instructions-") as tmp:
        env = tls_env(Path(tmp)) if args.tls else None
        server = Server(args.server, "uvloop", env=env)
        try:
            for lib in libs:
                progress(f"{names[lib]}: {BASE} and {BASE + args.count} round trips, callgrind")
                low = instructions(lib, server.url, args.size, BASE, Path(tmp), args.in_flight, env)
                high = instructions(
                    lib, server.url, args.size, BASE + args.count, Path(tmp), args.in_flight, env
                )
                rows.append((names[lib], (high - low) / args.count))
        finally:
            server.stop()
    progress("")
    compiled = wsloop_compiled()
    print(
        f"User-space instructions per {args.size} B message, {args.in_flight} in flight "
        f"(callgrind, client on uvloop, {'wss' if args.tls else 'ws'}, "
        f"{args.server}/uvloop echo server; wsloop {'compiled' if compiled else 'pure Python'})"
    )
    print(f"{'client':30s} {'instructions':>14s}")
    for label, per in rows:
        print(f"{label:30s} {per:14,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
