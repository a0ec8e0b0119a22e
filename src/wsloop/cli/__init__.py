"""The ``wsloop`` command: connect, serve, publish, bench and demo.

Conventions follow wscat and websocat: ``connect`` prints each message on
its own line and sends each line of standard input; ``serve`` prints the URL
it listens on as its first line. Mistakes (bad URL, refused connection, TLS
failure, handshake refused) print one line on standard error, and the exit
status says which (exits.py, docs/cli.md); ``--debug`` shows tracebacks and
logs.

Each subcommand is a module with ``add_arguments(parser)`` and a ``cmd_*``
function: ``SUBCOMMANDS`` below lists them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .. import __version__
from . import connect, exits, publish, serve
from .console import describe, err
from .usage import UsageError

__all__ = ["build_parser", "main"]


def _bench_arguments(b: argparse.ArgumentParser) -> None:
    from ..loops import BACKENDS

    b.add_argument("url", nargs="?", help="an echo server (default: start one)")
    b.add_argument("--count", type=int, default=20000, help="messages per measurement")
    b.add_argument("--sizes", default="64,4096,262144", help="message sizes in bytes")
    b.add_argument("--loop", choices=BACKENDS, default="builtin")
    b.set_defaults(func=_bench)


def _demo_arguments(d: argparse.ArgumentParser) -> None:
    from ..loops import BACKENDS

    d.add_argument("--duration", type=float, default=20.0, help="seconds to listen (default 20)")
    d.add_argument("--rate", type=float, default=120, help="messages per minute (default 120)")
    d.add_argument("--loop", choices=BACKENDS, default="libev")
    d.add_argument(
        "--all-backends", action="store_true", help="then the same client on every other backend"
    )
    d.set_defaults(func=_demo)


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_cli

    return run_cli(args)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


#: name -> (one-line help, adds its arguments).
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "connect": (
        "connect to a server; print messages, send standard input",
        connect.add_arguments,
    ),
    "serve": ("run a local server (echo, broadcast, ticker, stdio, exec)", serve.add_arguments),
    "publish": (
        "publish to a broker's channel: MESSAGE, standard input's lines, or a ticker",
        publish.add_arguments,
    ),
    "bench": (
        "round trips and throughput against a URL or a local echo server",
        _bench_arguments,
    ),
    "demo": ("the scenario that started wsloop: a feed on a libev loop", _demo_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsloop", description="WebSockets on the event loop you already have."
    )
    parser.add_argument("--version", action="version", version=f"wsloop {__version__}")
    parser.add_argument("--debug", action="store_true", help="show logs and tracebacks")
    # --debug after the subcommand too; SUPPRESS keeps one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show logs and tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in SUBCOMMANDS.items():
        add_arguments(
            sub.add_parser(
                name,
                help=summary,
                description=summary,
                parents=[common],
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    args = parser.parse_args(argv)
    args.argv = list(argv)  # serve --workers runs each worker with them
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.CRITICAL,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return int(args.func(args))
    except (UsageError, ImportError) as exc:
        err(f"wsloop: error: {exc}")
        return exits.USAGE.status
    except KeyboardInterrupt:
        return exits.INTERRUPTED.status
    except Exception as exc:
        if args.debug:
            raise
        err(f"wsloop: error: {describe(exc)}")
        return exits.FAILED.status
