"""``wsloop serve``: a local server for trying things out. It prints the URL
it listens on as its first line.

What it serves is a mode (``MODES`` below: one row each). By default every
path serves ``--mode``; ``--path`` serves it at one path only, and
``--route PATH=MODE`` (repeatable) serves a different mode at each path.
With either, any other path is refused with 404, whose body lists the
paths served. Paths are compared without the query string.

``--workers N`` runs N such servers as processes sharing the port
(workers.py). ``--broker URL`` makes ``broadcast`` a feed shared through a
``wsloop.broker`` by every server on it (feeds.py).
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..handler import Handler
from ..loops import BACKENDS, Loop, get_loop
from ..protocol.handshake import Request
from ..websocket import WebSocket
from .command import CommandHandler, parse_command
from .console import BINARY_FORMATS, err, on_signals, out
from .feeds import ServeHandler
from .stdio import StdioHandler
from .tlsfiles import load_chain
from .usage import UsageError
from .workers import WORKER_HEADER

__all__ = ["MODES", "SHUTDOWN_TIMEOUT", "add_arguments", "cmd_serve"]

#: Seconds clients get to complete the close handshake after Ctrl-C/SIGTERM.
SHUTDOWN_TIMEOUT = 2.0


class Modes:
    """Makes each path's handler; the stdio mode's is one for all paths
    (there is one standard input)."""

    def __init__(self, args: argparse.Namespace, loop: Loop, broker: Any = None) -> None:
        self.args = args
        self.loop = loop
        self.broker = broker
        self.shared: dict[str, Handler] = {}
        self.made: list[Handler] = []

    def make(self, mode: str) -> Handler:
        if mode in self.shared:
            return self.shared[mode]
        if mode == "broadcast" and self.broker is not None:
            # Each client's channel is its path: one handler serves them all.
            handler: Handler = ServeHandler(
                mode,
                self.args.rate,
                self.loop,
                broker=self.broker,
                channel=self.args.channel,
                err=err,
            )
        else:
            handler = MODES[mode][0](self.args, self.loop)
        if mode == "stdio":
            self.shared[mode] = handler
        self.made.append(handler)
        return handler


def _feed(mode: str) -> Callable[[argparse.Namespace, Loop], Handler]:
    def make(args: argparse.Namespace, loop: Loop) -> Handler:
        return ServeHandler(mode, args.rate, loop)

    return make


def _stdio(args: argparse.Namespace, loop: Loop) -> Handler:
    return StdioHandler(loop, args.binary_output)


def _exec(args: argparse.Namespace, loop: Loop) -> Handler:
    if not args.exec:
        raise UsageError("--mode exec needs --exec 'COMMAND ARGS'")
    return CommandHandler(parse_command(args.exec), loop)


#: mode -> (makes its handler, what it does, for --help).
MODES: dict[str, tuple[Callable[[argparse.Namespace, Loop], Handler], str]] = {
    "echo": (_feed("echo"), "sends each message back"),
    "broadcast": (_feed("broadcast"), "sends each message to every client of the same path"),
    "ticker": (_feed("ticker"), 'sends {"seq": n, "time": t} at --rate'),
    "stdio": (_stdio, "sends each line of standard input to every client; prints what they send"),
    "exec": (_exec, "runs --exec's command per connection, messages on its stdin/stdout"),
}


class Router(Handler):
    """Hands each connection to its path's handler, once accepted."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes

    def process_request(self, ws: WebSocket, request: Request) -> tuple[int, str] | None:
        if urlsplit(request.path).path in self.routes:
            return None
        return 404, f"no WebSocket at this path; served: {' '.join(sorted(self.routes))}"

    def on_open(self, ws: WebSocket) -> None:
        assert ws.request is not None
        handler = self.routes[urlsplit(ws.request.path).path]
        ws.handler = handler
        handler.on_open(ws)


def _routes(args: argparse.Namespace) -> dict[str, str]:
    routes: dict[str, str] = {}
    for path in args.path:
        routes[path] = args.mode
    for value in args.route:
        path, sep, mode = value.partition("=")
        if not sep or mode not in MODES:
            raise UsageError(f"--route {value!r}: write PATH=MODE, MODE one of {', '.join(MODES)}")
        routes[path] = mode
    for path in routes:
        if not path.startswith("/") or "?" in path:
            raise UsageError(f"a path starts with '/' and has no query: not {path!r}")
    return routes


def _server_ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        load_chain(context, "--tls-cert", args.tls_cert, "--tls-key", args.tls_key)
        return context
    if args.tls_key:
        raise UsageError("--tls-key needs --tls-cert")
    return None


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or not action.option_strings:
            return text
        if default is None:
            return text + " (default: none)"
        if default in (False, [], argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.formatter_class = Formatter
    s.description = (
        "Serve a mode on every path, or with --path/--route only at the paths named "
        "(others get 404, whose body lists the paths served; the query string is ignored). "
        "The first line on standard output is the URL."
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    s.add_argument(
        "--mode", choices=list(MODES), default=None,
        help="what to serve: " + "; ".join(f"{m}: {what}" for m, (_, what) in MODES.items())
        + " (default: echo, or exec with --exec)",
    )  # fmt: skip
    s.add_argument(
        "--exec", metavar="'COMMAND ARGS'",
        help="the exec mode's command, run per connection (quoted as in a shell, run "
        "without one); WSLOOP_PATH and WSLOOP_REMOTE_ADDR are in its environment",
    )  # fmt: skip
    s.add_argument(
        "--path", action="append", default=[], metavar="PATH",
        help="serve --mode at this path only, 404 elsewhere; repeatable (default: every path)",
    )  # fmt: skip
    s.add_argument(
        "--route", action="append", default=[], metavar="PATH=MODE",
        help="serve MODE at PATH, e.g. --route /=ticker --route /echo=echo; repeatable "
        "(default: none)",
    )  # fmt: skip
    s.add_argument("--rate", type=float, default=120, help="ticker messages per minute")
    s.add_argument(
        "--binary-output", choices=sorted(BINARY_FORMATS), default="hex",
        help="how the stdio mode prints binary messages (as wsloop connect)",
    )  # fmt: skip
    s.add_argument("--loop", choices=BACKENDS, default="builtin", help="event loop to run on")
    s.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve wss:// with this certificate chain (default: ws://)",
    )
    s.add_argument(
        "--tls-key", metavar="PEM", help="private key of --tls-cert, if not in that file"
    )
    s.add_argument(
        "--max-size", type=int, default=1 << 20, metavar="BYTES", help="largest message accepted"
    )
    s.add_argument(
        "--origin", action="append", default=[], metavar="ORIGIN",
        help="accept only browsers from this origin, e.g. https://example.com (repeatable); "
        "others, and clients sending no Origin, get 403 (default: any)",
    )  # fmt: skip
    s.add_argument(
        "--shutdown-timeout", type=float, default=SHUTDOWN_TIMEOUT, metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long clients get to complete the closing handshake "
        "before they are cut off",
    )  # fmt: skip
    g = s.add_argument_group("several processes, shared feeds")
    g.add_argument(
        "--workers", type=int, metavar="N",
        help="run N server processes on the port, each with its own loop (SO_REUSEPORT); "
        "a worker that dies is restarted (default: one process, no supervisor)",
    )  # fmt: skip
    g.add_argument(
        "--broker", metavar="URL",
        help="serve --mode broadcast through a broker: redis://host:port/db (every server on "
        "it delivers every message; clients get the JSON envelope and may resume with "
        "?since=EPOCH:OFFSET), or memory:// (this process)",
    )  # fmt: skip
    g.add_argument(
        "--channel", default="feed",
        help="with --broker, the channel of clients that connect to /; /NAME is channel NAME",
    )  # fmt: skip
    g.add_argument(
        "--history", type=int, default=1000, metavar="N",
        help="with --broker, messages of each channel kept for clients that resume",
    )  # fmt: skip
    s.add_argument("--worker", help=argparse.SUPPRESS)  # INDEX:FD, from the supervisor
    s.set_defaults(func=cmd_serve)


def _mode(args: argparse.Namespace) -> str:
    if args.exec and args.mode not in (None, "exec"):
        raise UsageError(f"--exec runs with --mode exec, not --mode {args.mode}")
    if args.broker is not None:
        if args.mode not in (None, "broadcast"):
            raise UsageError(f"--broker serves --mode broadcast, not --mode {args.mode}")
        return "broadcast"
    return args.mode or ("exec" if args.exec else "echo")


def _check_broker(args: argparse.Namespace) -> None:
    """The broker's options, checked here, before any worker starts."""
    if args.broker is None:
        return
    if args.history < 0:
        raise UsageError("--history must be 0 or more messages")
    if args.broker == "memory://":
        if args.workers is not None:
            raise UsageError(
                "a memory:// broker lives inside one process: with --workers, use redis://"
            )
        return
    from ..broker.resp import parse_redis_url, require_hiredis

    try:
        parse_redis_url(args.broker)
    except ValueError as exc:
        raise UsageError(f"--broker: {exc}") from None
    require_hiredis()  # the ImportError that names wsloop[redis]


def _open_broker(args: argparse.Namespace, loop: Loop, worker: tuple[int, int] | None) -> Any:
    if args.broker is None:
        return None
    from ..broker import open_broker

    who = f"worker {worker[0]}: " if worker is not None else ""

    def on_state(broker: Any, state: str, detail: dict[str, Any]) -> None:
        if state == "connecting" or detail.get("reason") == "closed":
            return
        why = detail.get("error") or detail.get("reason")
        err(f"wsloop: {who}broker {state}" + (f" ({why})" if why else ""))

    try:
        return open_broker(
            args.broker, loop=loop, history=args.history, envelope=True, on_state=on_state
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--broker: {exc}") from None


def _worker_arg(value: str | None) -> tuple[int, int] | None:
    """``--worker INDEX:FD`` (given by the supervisor only)."""
    if value is None:
        return None
    index, _, fd = value.partition(":")
    try:
        return int(index), int(fd)
    except ValueError:
        raise UsageError(f"--worker takes INDEX:FD, not {value!r}") from None


def _watch_lifeline(loop: Loop, fd: int, stop: Callable[[], object]) -> None:
    """Shut down when the supervisor is gone: nothing is ever written to
    ``fd``, so it turns readable at end-of-file only, once the supervisor's
    end of the pipe is closed (by its exit, however it exits)."""

    def readable() -> None:
        if os.read(fd, 64):
            return
        loop.remove_reader(fd)
        os.close(fd)
        err(f"wsloop: worker {os.getpid()}: the supervisor is gone; shutting down")
        stop()

    loop.add_reader(fd, readable)


def _supervise(args: argparse.Namespace) -> int:
    from ..options import reuse_port_option
    from .workers import Supervisor

    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if reuse_port_option() is None:
        raise UsageError(
            "--workers needs SO_REUSEPORT, which this platform does not have; "
            "run one server per port instead"
        )
    if args.mode == "stdio":
        raise UsageError("--mode stdio reads this process's standard input: not with --workers")
    supervisor = Supervisor(
        args.argv,
        args.workers,
        args.host,
        args.port,
        args.shutdown_timeout,
        out=out,
        err=err,
        describe=args.mode,
    )
    try:
        return supervisor.run()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import wsloop

    args.mode = _mode(args)
    if args.rate <= 0:
        raise UsageError("--rate must be positive (messages per minute)")
    if args.shutdown_timeout < 0:
        raise UsageError("--shutdown-timeout must be 0 or more seconds")
    context = _server_ssl(args)
    routes = _routes(args)
    _check_broker(args)
    worker = _worker_arg(args.worker)
    if worker is None and args.workers is not None:
        return _supervise(args)
    loop = get_loop(args.loop)
    broker = _open_broker(args, loop, worker)
    modes = Modes(args, loop, broker)
    options: dict[str, Any] = {}
    if worker is not None:
        options["reuse_port"] = True
        options["headers"] = [(WORKER_HEADER, str(worker[0]))]
    if routes:
        router = Router({path: modes.make(mode) for path, mode in routes.items()})
        handler: Handler = router
        options["process_request"] = router.process_request
    else:
        handler = modes.make(args.mode)
    try:
        server = wsloop.serve(
            handler,
            args.host,
            args.port,
            loop=loop,
            ssl=context,
            max_message_size=args.max_size,
            origins=args.origin or None,
            **options,
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    for made in modes.made:
        if isinstance(made, ServeHandler):
            made.server = server
        elif isinstance(made, StdioHandler):
            made.start(server)
    if broker is not None:
        server.add_done_callback(broker.close)
    server.add_done_callback(loop.stop)

    def stop() -> None:
        server.close(args.shutdown_timeout)

    # Before the URL is printed: whoever read it may signal at once. A
    # client that does not complete the close handshake within
    # --shutdown-timeout (one whose reading was paused, say) is then cut off.
    restore_signals = on_signals(loop, stop)
    out(server.url)
    if worker is None:
        served = ", ".join(f"{p} {m}" for p, m in routes.items()) if routes else args.mode
        if broker is not None:
            served += f" of {args.broker} (channel {args.channel!r} at /)"
        err(f"serving {served} on {server.url} ({loop.name} loop); Ctrl-C to stop")
    else:
        _watch_lifeline(loop, worker[1], stop)
    try:
        loop.run()
    finally:
        for made in modes.made:
            if isinstance(made, CommandHandler):
                made.shutdown()
        loop.close()
        restore_signals()
    return 0
