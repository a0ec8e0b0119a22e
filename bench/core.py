"""Per-byte and per-message costs of the sans-I/O core, in memory.

    python bench/core.py [--mib 16]

Masking (every client frame, every frame a server reads) and UTF-8
validation (every text message) are the core's per-byte work. Prints MB/s
for wsloop's implementations, a naive byte loop (timed on 1 MiB, for
scale), and the end-to-end cost of parsing one masked 16 MiB text frame.
Then the per-message cost: microseconds for a client to take in one 64 B
binary frame and queue a 64 B reply. Run from the editable install it
measures pure Python; ``scripts/compiled .venv/bin/python bench/core.py``
measures the compiled wheel with the C accelerator.
"""

from __future__ import annotations

import argparse
import os
import time

import wsloop
from wsloop.protocol import ClientConnection, ServerConnection, apply_mask
from wsloop.protocol.frames import SPEEDUPS, _apply_mask_python, encode_frame


def timed(fn, *args, repeat=5):  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def naive_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def echo_cost(count: int = 200_000) -> float:
    """Microseconds per 64 B echo through an open client connection."""
    client = ClientConnection("ws://bench/", deflate=None, max_message_size=None)
    server = ServerConnection(deflate=None)
    server.receive_data(client.data_to_send())
    server.next_event()
    server.accept()
    client.receive_data(server.data_to_send())
    client.next_event()
    frame = encode_frame(2, bytes(64))
    payload = bytes(64)
    start = time.perf_counter()
    for _ in range(count):
        client.receive_data(frame)
        client.next_event()
        client.next_event()
        client.send_binary(payload)
        client.data_to_send()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=16)
    size = parser.parse_args().mib << 20
    data = os.urandom(size)
    key = os.urandom(4)
    text = ("WebSocket ünïcödé €uro 🙂 " * (size // 30 + 1)).encode()[:size]
    while True:  # cut at a character boundary
        try:
            text.decode()
            break
        except UnicodeDecodeError:
            text = text[:-1]
    rows = []
    mb = size / 1e6
    if SPEEDUPS:
        rows.append(("mask, wsloop C accelerator", mb / timed(apply_mask, data, key)))
    rows.append(("mask, wsloop pure Python (translate)", mb / timed(_apply_mask_python, data, key)))
    small = data[: 1 << 20]
    rows.append(
        ("mask, naive byte loop (1 MiB)", 1.048576 / timed(naive_mask, small, key, repeat=1))
    )
    rows.append(("UTF-8 validate+decode, wsloop", len(text) / 1e6 / timed(text.decode, "utf-8")))

    def naive_utf8(b: bytes) -> None:
        for _byte in b:  # the cheapest possible loop, doing nothing
            pass

    rows.append(
        ("byte loop doing nothing (1 MiB)", 1.048576 / timed(naive_utf8, text[: 1 << 20], repeat=1))
    )

    frame = encode_frame(1, text, mask_key=key)

    def parse() -> None:
        server = ServerConnection(max_message_size=None)
        server._frames = True  # skip the handshake: measure frames only
        server.state = type(server.state).OPEN
        server.receive_data(frame)
        assert server.next_event() is not None

    rows.append(("parse masked text frame (unmask+UTF-8)", len(text) / 1e6 / timed(parse)))
    print(f"{'operation on ' + str(size >> 20) + ' MiB':<42} {'MB/s':>10}")
    for name, rate in rows:
        print(f"{name:<42} {rate:10.1f}")
    print()
    how = "compiled" if wsloop.COMPILED else "interpreted"
    accelerator = "with" if SPEEDUPS else "without"
    print(f"{'per message (64 B echo, client side)':<42} {'us':>10}")
    best = min(echo_cost() for _ in range(3))
    print(f"{f'wsloop {how}, {accelerator} the C accelerator':<42} {best:10.2f}")


if __name__ == "__main__":
    main()
