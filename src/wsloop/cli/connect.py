"""``wsloop connect URL``: print each message, send each line of standard
input; exit with a status that says how the connection ended (exits.py).

Options come in groups, each a function that adds its arguments to the
parser and (if it has any) one that turns them into :func:`wsloop.connect`
options: ``OPTION_GROUPS`` below. A new group is one more row.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..client import Client
from ..handler import Handler
from ..loops import BACKENDS, Loop, get_loop
from ..options import Reconnect
from ..protocol import HandshakeError
from ..websocket import WebSocket
from . import exits
from .console import (
    BINARY_FORMATS,
    describe,
    err,
    on_signals,
    out,
    print_head,
    print_message,
    stdin_lines,
    stdin_whole,
)
from .tlsfiles import load_chain, load_verify
from .usage import UsageError

__all__ = ["OPTION_GROUPS", "add_arguments", "cmd_connect"]

Options = dict[str, Any]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


# -- option groups ---------------------------------------------------------------


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("url", help="ws:// or wss:// URL")
    g.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="extra handshake header (repeatable)",
    )  # fmt: skip
    g.add_argument(
        "-s", "--subprotocol", action="append", default=[], metavar="NAME",
        help="offer a subprotocol (repeatable, in order of preference)",
    )  # fmt: skip
    g.add_argument("--origin", help="send this Origin header")
    g.add_argument("--proxy", metavar="URL", help="HTTP proxy (default: https_proxy/http_proxy)")
    g.add_argument(
        "--open-timeout", type=seconds, default=10.0, metavar="SECONDS",
        help="give up opening after this long (default: 10)",
    )  # fmt: skip


def _headers(values: list[str]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"header {value!r} must look like 'Name: value'")
        headers.append((name.strip(), content.strip()))
    return headers


def _target_options(args: argparse.Namespace) -> Options:
    options: Options = {
        "headers": _headers(args.header),
        "subprotocols": args.subprotocol,
        "origin": args.origin,
        "open_timeout": args.open_timeout or None,
    }
    if args.proxy:
        options["proxy"] = args.proxy
    return options


def _add_tls(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("TLS (wss://)")
    g.add_argument(
        "-k", "--insecure", action="store_true",
        help="do not verify the server's certificate (testing only)",
    )  # fmt: skip
    g.add_argument("--cafile", metavar="PEM", help="trust the CA certificates in this file")
    g.add_argument("--cert", metavar="PEM", help="client certificate (and key, if no --key)")
    g.add_argument("--key", metavar="PEM", help="private key of --cert")
    g.add_argument(
        "--server-name", metavar="NAME",
        help="the name to send (SNI) and verify, instead of the URL's host",
    )  # fmt: skip


def _tls_options(args: argparse.Namespace) -> Options:
    if not args.url.startswith("wss:"):
        for flag in ("cert", "key", "cafile", "server_name"):
            if getattr(args, flag):
                raise UsageError(f"--{flag.replace('_', '-')} applies to wss:// URLs only")
        return {}
    context = ssl.create_default_context()
    if args.cafile:
        load_verify(context, "--cafile", args.cafile)
    if args.cert:
        load_chain(context, "--cert", args.cert, "--key", args.key)
    elif args.key:
        raise UsageError("--key needs --cert")
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return {"ssl": context, "server_hostname": args.server_name}


def _add_input(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input (standard input)")
    g.add_argument(
        "-b", "--binary", action="store_true", help="send each line as a binary message, not text"
    )
    g.add_argument(
        "--slurp", action="store_true",
        help="send all of standard input as one message (binary with -b)",
    )  # fmt: skip
    g.add_argument(
        "-n", "--no-close", action="store_true",
        help="keep listening after standard input ends (default: close then)",
    )  # fmt: skip
    g.add_argument("--no-input", action="store_true", help="do not read standard input")


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output (standard output; standard error for the rest)")
    g.add_argument(
        "--count", type=positive_int, default=None, metavar="N",
        help="close after N messages (N >= 1)",
    )  # fmt: skip
    g.add_argument("-1", dest="one", action="store_true", help="one message, then close")
    g.add_argument(
        "--binary-output", choices=sorted(BINARY_FORMATS), default="hex",
        help="binary messages as '[binary] ' and hex or base64 on a line, or raw bytes "
        "(default: hex; text messages print as they are)",
    )  # fmt: skip
    g.add_argument("--json", action="store_true", help="one JSON object per event")
    g.add_argument(
        "-v", "--verbose", action="store_true",
        help="print the handshake's request and response on standard error",
    )  # fmt: skip
    g.add_argument(
        "--show-ping-pong", action="store_true", help="print pings and pongs with round-trip times"
    )


def _add_messages(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("messages and keepalive")
    g.add_argument(
        "--max-size", type=int, default=1 << 20, metavar="BYTES",
        help="largest message accepted (default: 1048576)",
    )  # fmt: skip
    g.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    g.add_argument(
        "--ping-interval", type=seconds, default=None, metavar="SECONDS",
        help="send a keepalive ping this often (default: none)",
    )  # fmt: skip


def _message_options(args: argparse.Namespace) -> Options:
    return {
        "max_message_size": args.max_size,
        "compression": not args.no_compression,
        "ping_interval": args.ping_interval,
    }


def _add_reconnect(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reconnecting")
    g.add_argument(
        "--reconnect", action="store_true",
        help="reconnect with backoff after what can succeed later (network errors, "
        "timeouts, HTTP 429 and 5xx, a dropped connection); stop on what cannot",
    )  # fmt: skip
    g.add_argument(
        "--max-attempts", type=positive_int, default=None, metavar="N",
        help="with --reconnect, give up after N failures in a row (default: never)",
    )  # fmt: skip
    g.add_argument(
        "--reconnect-delay", type=seconds, default=1.0, metavar="SECONDS",
        help="with --reconnect, the first wait; it doubles up to 30 s (default: 1)",
    )  # fmt: skip
    g.add_argument(
        "--resume", action="store_true",
        help="reconnect (as --reconnect) and resume after the last message seen: the broker's "
        "envelope gives its position, asked for again as ?since=EPOCH:OFFSET",
    )  # fmt: skip


def _reconnect_options(args: argparse.Namespace) -> Options:
    if args.resume:
        args.reconnect = True
    if not args.reconnect:
        return {"reconnect": False}
    return {
        "reconnect": Reconnect(
            initial_delay=args.reconnect_delay,
            max_delay=max(30.0, args.reconnect_delay),
            max_attempts=args.max_attempts,
        )
    }


def _add_loop(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--loop",
        choices=BACKENDS,
        default="builtin",
        help="event loop to run on (default: builtin)",
    )


#: (adds the group's arguments, turns them into connect() options or None).
OPTION_GROUPS: list[
    tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Options] | None]
] = [
    (_add_target, _target_options),
    (_add_tls, _tls_options),
    (_add_input, None),
    (_add_output, None),
    (_add_messages, _message_options),
    (_add_reconnect, _reconnect_options),
    (_add_loop, None),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    for add, _ in OPTION_GROUPS:
        add(p)
    p.epilog = exits.help_text()
    p.set_defaults(func=cmd_connect)


def client_options(args: argparse.Namespace) -> Options:
    options: Options = {}
    for _, build in OPTION_GROUPS:
        if build is not None:
            options.update(build(args))
    return options


# -- the connection --------------------------------------------------------------


class ConsoleClient(Handler):
    """Prints what happens on a connection, as text or JSON lines, and
    remembers how it ended for the exit status."""

    def __init__(self, args: argparse.Namespace, loop: Loop) -> None:
        self.args = args
        self.loop = loop
        self.limit: int | None = 1 if args.one else args.count
        self.count = 0
        self.client: Client | None = None
        self.opened = threading.Event()
        self.status = exits.OK.status
        self.position: Any = None  # with --resume: of the last envelope seen

    def emit(self, kind: str, **fields: Any) -> None:
        if self.args.json:
            out(json.dumps({"type": kind, "time": round(time.time(), 6), **fields}))

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        if state == "waiting":
            err(f"reconnecting in {detail['delay']:.1f}s")
            self.emit("reconnecting", delay=detail["delay"])
        elif state == "gave_up":
            why = (
                f"gave up after {detail['attempts']} failed attempts in a row"
                if detail.get("retryable", True)
                else "this failure will not change by retrying"
            )
            err(f"wsloop: not reconnecting: {why}")
            self.emit("gave_up", attempts=detail["attempts"], reason=why)
            self.loop.stop()
        elif state == "closed":
            self.loop.stop()

    def on_open(self, ws: WebSocket) -> None:
        if self.args.verbose:
            self._print_handshake(ws.request, ws.response)
        self.status = exits.OK.status
        self.opened.set()
        self.emit(
            "open",
            url=self.args.url,
            subprotocol=ws.subprotocol,
            extensions=ws.extensions,
            headers=dict(ws.response.headers) if ws.response is not None else {},
        )
        if not self.args.json:
            err(
                f"connected to {self.args.url}" + (f" ({ws.subprotocol})" if ws.subprotocol else "")
            )

    def _print_handshake(self, request: Any, response: Any) -> None:
        if request is not None:
            print_head(">", request)
        if response is not None:
            print_head("<", response)

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        # Messages already read when the count was reached are still
        # delivered while the close handshake runs: they are not printed.
        if self.limit is not None and self.count >= self.limit:
            return
        where: dict[str, Any] = {}
        if self.args.resume:
            feed = _envelope(data)
            if feed is not None:
                self.position = feed.position
                if feed.gap is not None:
                    self.emit(
                        "gap", channel=feed.channel, position=str(feed.position), reason=feed.gap
                    )
                    if not self.args.json:
                        err(f"wsloop: gap in {feed.channel!r} after {feed.position}: {feed.gap}")
                    return
                assert feed.data is not None
                data = feed.data
                where = {"channel": feed.channel, "epoch": feed.epoch, "offset": feed.offset}
        self.count += 1
        if self.args.json:
            binary = isinstance(data, bytes)
            shown = data.hex() if isinstance(data, bytes) else data
            self.emit("message", data=shown, binary=binary, **where)
        else:
            print_message(data, self.args.binary_output)
        if self.limit is not None and self.count >= self.limit:
            assert self.client is not None
            self.client.close()

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
                err(f"< ping {data.hex()}")

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        if self.args.show_ping_pong:
            rtt = ws.latency
            ms = None if rtt is None else round(rtt * 1000, 3)
            self.emit("pong", data=data.hex(), rtt_ms=ms)
            if not self.args.json:
                err(f"< pong {data.hex()}" + (f" rtt={ms}ms" if ms is not None else ""))

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.opened.clear()
        self.status = exits.for_close(code, clean)
        self.emit("close", code=code, reason=reason, clean=clean, exit_status=self.status)
        if not self.args.json:
            err(
                f"closed: {code}"
                + (f" {reason}" if reason else "")
                + ("" if clean else " (abnormal)")
            )

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        if ws is None:  # the connection could not be opened
            self.status = exits.for_error(error)
            if self.args.verbose and isinstance(error, HandshakeError):
                self._print_handshake(error.request, error.response)
        fields: dict[str, Any] = {"message": describe(error)}
        if isinstance(error, HandshakeError) and error.status:
            fields["status"] = error.status
        self.emit("error", **fields)
        if not self.args.json or ws is None:
            err(f"wsloop: error: {describe(error)}")
        if self.args.debug:
            logging.getLogger("wsloop").error("traceback:", exc_info=error)


def _envelope(data: str | bytes) -> Any:
    """The broker's envelope in ``data`` (wsloop.broker.feed), or None."""
    from ..broker.feed import decode_envelope

    if not isinstance(data, str) or not data.startswith("{"):
        return None
    try:
        return decode_envelope(data)
    except ValueError:
        return None  # not an envelope: shown as it is, the position kept


# -- standard input --------------------------------------------------------------


def _as_text(chunk: bytes) -> str | bytes:
    return chunk.decode("utf-8")


def _as_binary(chunk: bytes) -> str | bytes:
    return chunk


#: How standard input is cut into messages (--slurp) and what they are (-b).
READERS: dict[bool, Callable[[], Iterator[bytes]]] = {False: stdin_lines, True: stdin_whole}
KINDS: dict[bool, Callable[[bytes], str | bytes]] = {False: _as_text, True: _as_binary}


def _send_stdin(args: argparse.Namespace, console: ConsoleClient, client: Client) -> None:
    """Thread: send standard input; at its end, close unless told not to.
    Messages wait for the connection (and, with --reconnect, for the next)."""
    make = KINDS[args.binary]
    for n, chunk in enumerate(READERS[args.slurp](), 1):
        try:
            message = make(chunk)
        except UnicodeDecodeError:
            err(f"wsloop: line {n} of standard input is not UTF-8: not sent (-b sends binary)")
            continue
        console.opened.wait()
        try:
            client.send(message)
        except Exception as exc:
            err(f"wsloop: cannot send: {describe(exc)}")
    if not (args.no_close or console.limit):
        console.opened.wait()
        client.close()


def cmd_connect(args: argparse.Namespace) -> int:
    import wsloop

    options = client_options(args)  # mistakes are usage errors before any connecting
    loop = get_loop(args.loop)
    console = ConsoleClient(args, loop)
    if args.resume:
        options["before_reconnect"] = console.resume_target
    try:
        client = wsloop.connect(args.url, console, loop=loop, **options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    console.client = client
    if not args.no_input:
        threading.Thread(
            target=_send_stdin, args=(args, console, client), name="wsloop-cli-stdin", daemon=True
        ).start()
    restore_signals = on_signals(loop, client.close)
    try:
        loop.run()
    finally:
        loop.close()
        restore_signals()
    return console.status
