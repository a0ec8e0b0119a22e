"""``wsloop publish --broker URL``: publish to a channel of a broker shared
through Redis, from the command line: one MESSAGE, each line of standard
input, or a numbered ``--ticker`` feed. Each message's position
(``EPOCH:OFFSET``) is printed. No loop: the broker's blocking publisher.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .connect import positive_int
from .console import err, out
from .usage import UsageError

__all__ = ["add_arguments", "cmd_publish"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("message", nargs="?", help="the message (default: one per line of stdin)")
    p.add_argument("--broker", required=True, metavar="URL", help="redis://host:port/db")
    p.add_argument("--channel", default="feed", help="the channel (default: feed)")
    p.add_argument(
        "--history", type=int, default=1000, metavar="N",
        help="messages kept for resuming: the servers' --history (default: 1000)",
    )  # fmt: skip
    p.add_argument(
        "--ticker", action="store_true",
        help='publish a numbered feed, {"seq": N, "time": T}, at --rate',
    )  # fmt: skip
    p.add_argument(
        "--rate", type=float, default=120, help="ticker messages per minute (default: 120)"
    )
    p.add_argument(
        "--count", type=positive_int, default=None, metavar="N",
        help="with --ticker, stop after N messages (default: never)",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS",
        help="longest wait for Redis per message (default: 5)",
    )  # fmt: skip
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from ..broker import BrokerError, Publisher

    if not args.broker.startswith(("redis://", "rediss://")):
        raise UsageError(
            "wsloop publish needs a redis:// or rediss:// broker "
            "(a memory:// one lives inside a single server process)"
        )
    if args.ticker and args.message is not None:
        raise UsageError("give a MESSAGE or --ticker, not both")
    if args.rate <= 0:
        raise UsageError("--rate must be positive (messages per minute)")
    try:
        publisher = Publisher(args.broker, history=args.history, timeout=args.timeout)
    except ValueError as exc:
        raise UsageError(f"--broker: {exc}") from None

    def publish(message: str) -> bool:
        try:
            position = publisher.publish(args.channel, message)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        except BrokerError as exc:
            err(f"wsloop: cannot publish: {exc}")
            return False
        out(str(position))
        return True

    _interrupt_on_sigterm()
    with publisher:
        if args.message is not None:
            return 0 if publish(args.message) else 1
        try:
            if args.ticker:
                _ticker(args, publish)
                return 0
            failed = False
            for line in sys.stdin:
                failed = not publish(line.rstrip("\r\n")) or failed
            return 1 if failed else 0
        except KeyboardInterrupt:
            return 0


def _ticker(args: argparse.Namespace, publish: Callable[[str], bool]) -> None:
    """``{"seq": N, "time": T}`` at a fixed cadence; a tick that cannot be
    published (Redis down) is tried again at the next one with the same
    seq, so the feed has no hole."""
    interval = 60.0 / args.rate
    start = time.monotonic()
    seq = tick = 0
    while not args.count or seq < args.count:
        if publish(json.dumps({"seq": seq + 1, "time": round(time.time(), 6)})):
            seq += 1
        tick += 1
        time.sleep(max(0.0, start + tick * interval - time.monotonic()))


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops a ticker or a stdin feed as Ctrl-C does: status 0."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except (OSError, ValueError):
        pass
