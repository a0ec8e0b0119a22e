"""The ``wsloop`` command: connect, serve, publish, bench and demo.

Conventions follow wscat and websocat: ``connect`` prints each message on
its own line and sends each line of standard input; ``serve`` prints the URL
it listens on as its first line. Mistakes (bad URL, refused connection, TLS
failure, handshake refused) print one line on standard error and exit 1;
``--debug`` shows tracebacks and logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import __version__
from ..client import Client
from ..errors import HandshakeError
from ..handler import Handler
from ..loops import BACKENDS, Loop, get_loop
from ..websocket import WebSocket
from .feeds import ServeHandler
from .usage import UsageError
from .workers import WORKER_HEADER

__all__ = ["main"]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return str(exc) or type(exc).__name__


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _on_signals(loop: Loop, action: Any) -> None:
    """Run ``action`` on the loop for Ctrl-C/SIGTERM; a second Ctrl-C quits."""
    hits = [0]

    def handler(signum: int, frame: Any) -> None:
        hits[0] += 1
        if hits[0] > 1:
            raise KeyboardInterrupt
        loop.call_soon_threadsafe(action)

    signal.signal(signal.SIGINT, handler)
    try:
        signal.signal(signal.SIGTERM, handler)
    except (OSError, ValueError):
        pass


# -- connect -------------------------------------------------------------------


class ConsoleClient(Handler):
    """Prints what happens on a connection, as text or JSON lines."""

    def __init__(self, args: argparse.Namespace, loop: Loop) -> None:
        self.args = args
        self.loop = loop
        self.count = 0
        self.failed = False
        self.client: Client | None = None
        self.opened = threading.Event()
        self.position: Any = None  # with --resume: of the last envelope seen

    def emit(self, kind: str, **fields: Any) -> None:
        if self.args.json:
            _out(json.dumps({"type": kind, "time": round(time.time(), 6), **fields}))

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        if state == "waiting":
            _err(f"reconnecting in {detail['delay']:.1f}s")
            self.emit("reconnecting", delay=detail["delay"])
        elif state in ("closed", "gave_up"):
            self.loop.stop()

    def on_open(self, ws: WebSocket) -> None:
        self.opened.set()
        headers = dict(ws.response.headers) if ws.response is not None else {}
        self.emit(
            "open",
            url=self.args.url,
            subprotocol=ws.subprotocol,
            extensions=ws.extensions,
            headers=headers,
        )
        if not self.args.json:
            _err(
                f"connected to {self.args.url}" + (f" ({ws.subprotocol})" if ws.subprotocol else "")
            )

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        if self.args.count and self.count >= self.args.count:
            return  # arrived while closing after --count: not printed
        where: dict[str, Any] = {}
        if self.args.resume:
            feed = self._envelope(data)
            if feed is not None:
                self.position = feed.position
                if feed.gap is not None:
                    self.emit(
                        "gap", channel=feed.channel, position=str(feed.position), reason=feed.gap
                    )
                    if not self.args.json:
                        _err(f"wsloop: gap in {feed.channel!r} after {feed.position}: {feed.gap}")
                    return
                assert feed.data is not None
                data = feed.data
                where = {"channel": feed.channel, "epoch": feed.epoch, "offset": feed.offset}
        self.count += 1
        binary = isinstance(data, bytes)
        if self.args.json:
            self.emit(
                "message",
                data=data.hex() if isinstance(data, bytes) else data,
                binary=binary,
                **where,
            )
        elif isinstance(data, bytes):
            _out(data.hex())
        else:
            _out(data)
        if self.args.count and self.count >= self.args.count:
            assert self.client is not None
            self.client.close()

    @staticmethod
    def _envelope(data: str | bytes) -> Any:
        from ..broker.feed import decode_envelope

        if not isinstance(data, str) or not data.startswith("{"):
            return None
        try:
            return decode_envelope(data)
        except ValueError:
            return None  # not an envelope: shown as it is, the position kept

    def resume_target(
        self, url: str, headers: list[tuple[str, str]]
    ) -> tuple[str, list[tuple[str, str]]]:
        """``before_reconnect`` for --resume: ``url`` with ``since`` set to
        the position of the last envelope seen."""
        if self.position is None:
            return url, headers
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "since"]
        query.append(("since", str(self.position)))
        return urlunsplit(parts._replace(query=urlencode(query, safe=":"))), headers

    def on_ping(self, ws: WebSocket, data: bytes) -> None:
        if self.args.show_ping_pong:
            self.emit("ping", data=data.hex())
            if not self.args.json:
                _err(f"< ping {data.hex()}")

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        if self.args.show_ping_pong:
            rtt = ws.latency
            ms = None if rtt is None else round(rtt * 1000, 3)
            self.emit("pong", data=data.hex(), rtt_ms=ms)
            if not self.args.json:
                _err(f"< pong {data.hex()}" + (f" rtt={ms}ms" if ms is not None else ""))

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.emit("close", code=code, reason=reason, clean=clean)
        if not self.args.json:
            _err(
                f"closed: {code}"
                + (f" {reason}" if reason else "")
                + ("" if clean else " (abnormal)")
            )

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        self.failed = ws is None or self.failed
        self.emit("error", message=_describe(error))
        if not self.args.json or ws is None:
            _err(f"wsloop: error: {_describe(error)}")
        if self.args.debug:
            logging.getLogger("wsloop").exception("error", exc_info=error)


def _client_ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.url.startswith("wss:"):
        return None
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _headers(values: list[str]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"header {value!r} must look like 'Name: value'")
        headers.append((name.strip(), content.strip()))
    return headers


def cmd_connect(args: argparse.Namespace) -> int:
    import wsloop

    loop = get_loop(args.loop)
    console = ConsoleClient(args, loop)
    options: dict[str, Any] = {
        "headers": _headers(args.header),
        "subprotocols": args.subprotocol,
        "origin": args.origin,
        "compression": not args.no_compression,
        "max_message_size": args.max_size,
        "ping_interval": args.ping_interval,
        "reconnect": args.reconnect or args.resume,
        "ssl": _client_ssl(args),
    }
    if args.resume:
        options["before_reconnect"] = console.resume_target
    if args.proxy:
        options["proxy"] = args.proxy
    try:
        client = wsloop.connect(args.url, console, loop=loop, **options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    console.client = client

    def stdin_reader() -> None:
        # Lines wait for the connection; EOF closes it once it has opened
        # (never before, so a failing connect still reports its error).
        for line in sys.stdin:
            console.opened.wait()
            text = line.rstrip("\r\n")
            try:
                client.send(text)
            except Exception as exc:
                _err(f"wsloop: cannot send: {_describe(exc)}")
        if not args.count:
            console.opened.wait()
            client.close()

    if not args.no_input:
        threading.Thread(target=stdin_reader, name="wsloop-cli-stdin", daemon=True).start()
    _on_signals(loop, client.close)
    loop.run()
    loop.close()
    return 1 if console.failed else 0


# -- serve ---------------------------------------------------------------------


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        return context
    if args.tls_key:
        raise UsageError("--tls-key needs --tls-cert")
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    import wsloop

    context = _server_tls(args)
    if args.rate <= 0:
        raise UsageError("--rate must be positive (messages per minute)")
    if args.shutdown_timeout < 0:
        raise UsageError("--shutdown-timeout must be 0 or more seconds")
    _check_broker_args(args)
    worker = _worker_arg(args.worker)
    if worker is None and args.workers is not None:
        return _supervise(args)
    loop = get_loop(args.loop)
    broker = _open_broker(args, loop, worker)
    handler = ServeHandler(
        args.mode, args.rate, loop, broker=broker, channel=args.channel, err=_err
    )
    options: dict[str, Any] = {}
    if worker is not None:
        options["reuse_port"] = True
        options["headers"] = [(WORKER_HEADER, str(worker[0]))]
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
    handler.server = server

    def stop() -> None:
        server.close(args.shutdown_timeout)

    if broker is not None:
        server.add_done_callback(broker.close)
    _out(server.url)
    if worker is None:
        feed = f" of {args.broker} channel {args.channel!r}" if broker is not None else ""
        _err(f"serving {args.mode}{feed} on {server.url} ({loop.name} loop); Ctrl-C to stop")
    else:
        _watch_lifeline(loop, worker[1], stop)
    server.add_done_callback(loop.stop)
    _on_signals(loop, stop)
    loop.run()
    loop.close()
    return 0


def _check_broker_args(args: argparse.Namespace) -> None:
    """Resolve ``--mode`` (broadcast with a broker, else echo) and check the
    broker's options here, before any worker starts."""
    if args.broker is None:
        args.mode = args.mode or "echo"
        return
    args.mode = args.mode or "broadcast"
    if args.mode != "broadcast":
        raise UsageError(f"--broker serves --mode broadcast, not --mode {args.mode}")
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
        _err(f"wsloop: {who}broker {state}" + (f" ({why})" if why else ""))

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


def _watch_lifeline(loop: Loop, fd: int, stop: Any) -> None:
    """Shut down when the supervisor is gone: nothing is ever written to
    ``fd``, so it turns readable at end-of-file only, once the supervisor's
    end of the pipe is closed (by its exit, however it exits)."""

    def readable() -> None:
        if os.read(fd, 64):
            return
        loop.remove_reader(fd)
        os.close(fd)
        _err(f"wsloop: worker {os.getpid()}: the supervisor is gone; shutting down")
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
    supervisor = Supervisor(
        args.argv,
        args.workers,
        args.host,
        args.port,
        args.shutdown_timeout,
        out=_out,
        err=_err,
        describe=args.mode,
    )
    try:
        return supervisor.run()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None


# -- publish -------------------------------------------------------------------


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
            _err(f"wsloop: cannot publish: {exc}")
            return False
        _out(str(position))
        return True

    _exit_on_sigterm()
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


def _ticker(args: argparse.Namespace, publish: Any) -> None:
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


def _exit_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except (OSError, ValueError):
        pass


# -- main ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsloop", description="WebSockets on the event loop you already have."
    )
    parser.add_argument("--version", action="version", version=f"wsloop {__version__}")
    parser.add_argument("--debug", action="store_true", help="show logs and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("connect", help="connect to a server; print messages, send stdin lines")
    c.add_argument("url")
    c.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        help="extra header 'Name: value' (repeatable)",
    )
    c.add_argument(
        "-s", "--subprotocol", action="append", default=[], help="offer a subprotocol (repeatable)"
    )
    c.add_argument("--origin")
    c.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    c.add_argument("--cafile", help="trust the CA certificates in this PEM file")
    c.add_argument("--proxy", help="HTTP proxy URL (default: https_proxy/http_proxy)")
    c.add_argument(
        "--ping-interval", type=float, default=None, metavar="SECONDS", help="send keepalive pings"
    )
    c.add_argument(
        "--show-ping-pong", action="store_true", help="print pings and pongs with round-trip times"
    )
    c.add_argument(
        "--reconnect", action="store_true", help="reconnect with backoff when the connection drops"
    )
    c.add_argument(
        "--resume",
        action="store_true",
        help="reconnect, and resume from the last message seen: the broker's envelope gives its "
        "position, sent back as ?since=EPOCH:OFFSET (implies --reconnect)",
    )
    c.add_argument("--count", type=int, default=0, metavar="N", help="exit after N messages")
    c.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    c.add_argument("--no-compression", action="store_true")
    c.add_argument(
        "--max-size",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="largest message (default 1 MiB)",
    )
    c.add_argument("--no-input", action="store_true", help="do not read standard input")
    c.add_argument("--loop", choices=BACKENDS, default="builtin", help="event loop to run on")
    c.set_defaults(func=cmd_connect)

    s = sub.add_parser("serve", help="run a local server (echo, broadcast or ticker)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    s.add_argument(
        "--mode",
        choices=["echo", "broadcast", "ticker"],
        default=None,
        help="default: echo, or broadcast with --broker",
    )
    s.add_argument(
        "--rate", type=float, default=120, help="ticker messages per minute (default 120)"
    )
    s.add_argument("--loop", choices=BACKENDS, default="builtin")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--max-size", type=int, default=1 << 20, metavar="BYTES")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N server processes on the port, each with its own loop (SO_REUSEPORT); "
        "a worker that dies is restarted",
    )
    s.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, wait this long for clients to close before dropping them "
        "(default 10)",
    )
    s.add_argument("--worker", help=argparse.SUPPRESS)  # INDEX:FD, from the supervisor
    s.add_argument(
        "--broker",
        metavar="URL",
        help="share --mode broadcast through a broker: redis://host:port/db (every server on it "
        "delivers every message), or memory:// (this process)",
    )
    s.add_argument(
        "--channel",
        default="feed",
        help="the channel of clients that connect to / (default feed); /NAME is channel NAME",
    )
    s.add_argument(
        "--history",
        type=int,
        default=1000,
        metavar="N",
        help="messages of each channel kept for clients that resume (default 1000)",
    )
    s.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept only browsers from this origin, e.g. https://example.com (repeatable); "
        "others, and clients sending no Origin, get 403",
    )
    s.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "publish", help="publish to a broker's channel: MESSAGE, stdin lines, or a ticker"
    )
    p.add_argument("message", nargs="?", help="the message (default: one per line of stdin)")
    p.add_argument("--broker", required=True, metavar="URL", help="redis://host:port/db")
    p.add_argument("--channel", default="feed", help="default feed")
    p.add_argument(
        "--history",
        type=int,
        default=1000,
        metavar="N",
        help="messages kept for resuming: the servers' --history (default 1000)",
    )
    p.add_argument(
        "--ticker",
        action="store_true",
        help='publish a numbered feed, {"seq": N, "time": T}, at --rate',
    )
    p.add_argument(
        "--rate", type=float, default=120, help="ticker messages per minute (default 120)"
    )
    p.add_argument(
        "--count", type=int, default=0, metavar="N", help="ticker: stop after N messages"
    )
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per publish (default 5)"
    )
    p.set_defaults(func=cmd_publish)

    b = sub.add_parser(
        "bench", help="round trips and throughput against a URL or a local echo server"
    )
    b.add_argument("url", nargs="?", help="an echo server (default: start one)")
    b.add_argument("--count", type=int, default=20000, help="messages per measurement")
    b.add_argument("--sizes", default="64,4096,262144", help="message sizes in bytes")
    b.add_argument("--loop", choices=BACKENDS, default="builtin")
    b.set_defaults(func=_bench)

    d = sub.add_parser("demo", help="the scenario that started wsloop: a feed on a libev loop")
    d.add_argument("--duration", type=float, default=20.0, help="seconds to listen (default 20)")
    d.add_argument("--rate", type=float, default=120, help="messages per minute (default 120)")
    d.add_argument("--loop", choices=BACKENDS, default="libev")
    d.add_argument(
        "--all-backends", action="store_true", help="then the same client on every other backend"
    )
    d.set_defaults(func=_demo)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_cli

    return run_cli(args)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    args = parser.parse_args(argv)
    args.argv = list(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.CRITICAL,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return int(args.func(args))
    except UsageError as exc:
        _err(f"wsloop: error: {exc}")
        return 2
    except ImportError as exc:
        _err(f"wsloop: error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        _err(f"wsloop: error: {_describe(exc)}")
        return 1
