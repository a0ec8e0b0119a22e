"""Options of clients, servers and their connections, with their defaults.

Every option is checked when the client or server is created, so a wrong
value raises ``TypeError``/``ValueError`` at the call that passed it.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict

from .errors import ConnectionClosed
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, DeflateOptions, HandshakeError, parse_url
from .protocol.connection import check_max_message_size
from .protocol.handshake import OriginRule

if TYPE_CHECKING:
    from .client import Client
    from .websocket import WebSocket

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "AioClientArgs",
    "AioServerArgs",
    "BeforeReconnect",
    "CallbackArgs",
    "ClientArgs",
    "ClientOptionArgs",
    "ClientOptions",
    "ConnectionOptions",
    "Reconnect",
    "RedirectHeaders",
    "ServerArgs",
    "ServerOptionArgs",
    "ServerOptions",
    "check_max_queue",
    "retry_after",
    "retryable",
    "strip_credentials",
]

#: Messages the asyncio and blocking front-ends queue for ``recv()`` before
#: reading pauses.
DEFAULT_MAX_QUEUE = 32


def check_max_queue(value: Any) -> int:
    """``max_queue`` of the asyncio and blocking front-ends, checked."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_queue must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_queue must be at least 1, not {value}")
    return value


def _number(name: str, value: Any, *, allow_none: bool = False, minimum: float = 0.0) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number of seconds or None" if allow_none else "a number"
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    if value < minimum or value != value:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")


# TLS errors that mean the connection broke during the TLS handshake (worth
# another try), unlike a certificate or protocol mismatch (not).
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def retryable(error: BaseException) -> bool:
    """The default :attr:`Reconnect.retry_on`: True for a failure that can
    succeed later.

    Retried: network errors and timeouts (``OSError``: refused, reset,
    unreachable, DNS), a connection cut during the TLS or HTTP handshake, an
    HTTP 429 or 5xx answer (the server's or the proxy's), and a connection
    that opened and then closed (:class:`~wsloop.ConnectionClosed`, whatever
    its code: it worked once). Not retried: any other HTTP status (4xx, a
    plain 200 from something that is not a WebSocket endpoint, a redirect
    beyond ``max_redirects``), a TLS failure such as a certificate that does
    not verify, and mistakes in the application's own hooks.
    """
    if isinstance(error, ConnectionClosed):
        return True
    if isinstance(error, HandshakeError):
        status = error.status
        # 0: the connection closed (or spoke no HTTP) before a status line.
        return status == 0 or status == 429 or 500 <= status <= 599
    if isinstance(error, ssl.SSLError):  # an OSError too: decided first
        return isinstance(error, _TLS_CUT)
    return isinstance(error, OSError)  # TimeoutError and ConnectionError included


def retry_after(error: BaseException | None) -> float | None:
    """Seconds a refused handshake's ``Retry-After`` header asks the client
    to wait (delta-seconds or an HTTP date), or None."""
    response = error.response if isinstance(error, HandshakeError) else None
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils
    import time

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Reconnect:
    """Reconnect with exponential backoff and jitter.

    The n-th wait is ``min(max_delay, initial_delay * factor**(n-1))``, moved
    by up to ``jitter`` of itself either way, so that a server restart is not
    met by every client at the same instant; longer if a refused handshake's
    ``Retry-After`` asks for longer. ``max_attempts`` bounds the
    attempts in a row that fail (None: forever); an attempt that opens
    resets the count. ``retry_on(error)`` decides which failures are worth
    another attempt: the default, :func:`retryable`, retries network
    errors, timeouts, 429 and 5xx, and gives up at once on other HTTP
    statuses and TLS certificate failures. Pass ``retry_on=lambda e: True``
    to retry everything, or a function that calls :func:`retryable` to
    extend the rule.
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None
    retry_on: Callable[[BaseException], bool] = retryable

    def __post_init__(self) -> None:
        _number("initial_delay", self.initial_delay)
        _number("max_delay", self.max_delay)
        _number("factor", self.factor, minimum=1.0)
        _number("jitter", self.jitter)
        if self.jitter > 1:
            raise ValueError(f"jitter is a fraction from 0 to 1, not {self.jitter}")
        if self.max_attempts is not None and (
            not isinstance(self.max_attempts, int) or self.max_attempts < 1
        ):
            raise ValueError(
                f"max_attempts must be a positive int or None, not {self.max_attempts!r}"
            )
        if not callable(self.retry_on):
            raise TypeError(
                "retry_on must be a function (error) -> bool, such as "
                f"wsloop.options.retryable (the default), not {type(self.retry_on).__name__}"
            )

    def delay(self, attempt: int, rand: float) -> float:
        """Wait before retry number ``attempt`` (1-based); ``rand`` in [0, 1)."""
        base = min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))

    def delay_after(self, error: BaseException | None, attempt: int, rand: float) -> float:
        """:meth:`delay`, or longer if ``error`` carries a ``Retry-After``."""
        return max(self.delay(attempt, rand), retry_after(error) or 0.0)


@dataclass(frozen=True)
class ConnectionOptions:
    """What clients and servers share.

    ``compression``: True for permessage-deflate with wsloop's defaults, a
    :class:`~wsloop.protocol.DeflateOptions` to tune it, False/None for off.
    ``ping_interval``/``ping_timeout``: keepalive; a ping every interval, and
    the connection fails with 1011 if its pong is not back within the
    timeout (None disables). ``write_limit``: the send buffer's high
    watermark; ``on_writable`` fires once it drains below a quarter of it.
    ``handler_errors``: ``"close"`` closes a connection whose callback
    raised with 1011; ``"log"`` only logs. ``subprotocols``: offered, in
    preference order (client), or spoken, in preference order (server).
    ``headers``: extra handshake headers, in the request (client) or the
    101 response (server), as ``(name, value)`` pairs or a dict. ``ssl``: an
    ``SSLContext``; a client's default verifies the certificate and
    hostname, a server needs one for wss://.
    """

    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    compression: bool | DeflateOptions | None = True
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    write_limit: int = 64 * 1024
    handler_errors: str = "close"
    subprotocols: Sequence[str] = ()
    headers: Iterable[tuple[str, str]] | dict[str, str] = ()
    ssl: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if isinstance(self.subprotocols, str):
            raise TypeError("subprotocols must be a list of str, e.g. ['chat'], not one str")
        if self.ssl is not None and not isinstance(self.ssl, ssl.SSLContext):
            raise TypeError("ssl must be an ssl.SSLContext or None")
        check_max_message_size(self.max_message_size)  # the core's own check
        if (
            not isinstance(self.compression, (bool, DeflateOptions))
            and self.compression is not None
        ):
            raise TypeError("compression must be True, False, None or a DeflateOptions")
        _number("ping_interval", self.ping_interval, allow_none=True)
        _number("ping_timeout", self.ping_timeout, allow_none=True)
        _number("close_timeout", self.close_timeout)
        if isinstance(self.write_limit, bool) or not isinstance(self.write_limit, int):
            raise TypeError("write_limit must be an int (bytes)")
        if self.write_limit < 1:
            raise ValueError("write_limit must be at least 1 byte")
        if self.handler_errors not in ("close", "log"):
            raise ValueError(
                f"handler_errors must be 'close' or 'log', not {self.handler_errors!r}"
            )

    @property
    def deflate(self) -> DeflateOptions | None:
        """The permessage-deflate settings ``compression`` asks for; None: off."""
        if self.compression is True:
            return DeflateOptions()
        if isinstance(self.compression, DeflateOptions):
            return self.compression
        return None

    @property
    def header_items(self) -> list[tuple[str, str]]:
        """``headers`` as a list of ``(name, value)`` pairs."""
        items = self.headers.items() if isinstance(self.headers, dict) else self.headers
        return [(str(k), str(v)) for k, v in items]

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> Any:
        """The options from keyword arguments, checked; ``TypeError`` names an
        unknown one and lists the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            valid = ", ".join(sorted(names))
            name = unknown[0]
            raise TypeError(f"unknown option {name!r} for {cls.__name__}; valid options: {valid}")
        return cls(**options)


#: ``redirect_headers(old_url, new_url, headers)``: the headers to send after
#: a redirect from ``old_url`` to ``new_url``.
#: ``redirect_headers(old_url, new_url, headers) -> headers``: what a client
#: sends after a redirect.
RedirectHeaders = Callable[[str, str, list[tuple[str, str]]], list[tuple[str, str]]]

#: ``before_reconnect(url, headers)``: the ``(url, headers)`` of the next
#: reconnect attempt, given those the client was made with.
BeforeReconnect = Callable[[str, list[tuple[str, str]]], tuple[str, list[tuple[str, str]]]]

_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


def strip_credentials(
    old_url: str, new_url: str, headers: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The default ``redirect_headers``: what curl and requests do.

    A redirect to the same scheme, host and port keeps ``headers``; one to
    anywhere else drops ``Authorization``, ``Cookie`` and
    ``Proxy-Authorization`` (the credentials of the URL's user-info are
    among ``headers`` as an ``Authorization``), so that a server cannot
    send a client's credentials to another host. Call it from your own
    hook to extend the rule rather than replace it.
    """
    old, new = parse_url(old_url), parse_url(new_url)
    if (old.secure, old.host, old.port) == (new.secure, new.host, new.port):
        return list(headers)
    return [(name, value) for name, value in headers if name.lower() not in _CREDENTIALS]


@dataclass(frozen=True)
class ClientOptions(ConnectionOptions):
    """Options of :func:`wsloop.connect`.

    ``ssl``: an ``SSLContext`` for wss:// (default: verification on, the
    system's CAs). ``proxy``: ``"http://host:port"``; None reads
    ``https_proxy``/``http_proxy``/``no_proxy``; False never uses one.
    ``open_timeout`` covers DNS, TCP, TLS and the handshake of one attempt,
    counted from when the loop starts the attempt. ``loop_warning``: seconds
    after which a loop that has not run yet is reported, by a
    :class:`RuntimeWarning` and on the ``wsloop`` logger (None: never).
    ``redirect_headers(old_url, new_url, headers)``: returns the headers to
    send after a redirect; the default, :func:`strip_credentials`, drops
    credentials when the redirect leaves the scheme, host and port.
    ``before_reconnect(url, headers)``: called on the loop before each
    reconnect attempt with the URL and headers the client was made with
    (the same each time, whatever it returned before); returns the
    ``(url, headers)`` to use for that attempt, for example the URL with the
    position of the last message seen, to resume from there. Needs
    ``reconnect``.
    """

    origin: str | None = None
    open_timeout: float | None = 10.0
    reconnect: bool | Reconnect = False
    max_redirects: int = 3
    proxy: str | bool | None = None
    server_hostname: str | None = None
    loop_warning: float | None = 5.0
    redirect_headers: RedirectHeaders = strip_credentials
    before_reconnect: BeforeReconnect | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.before_reconnect is not None and not callable(self.before_reconnect):
            raise TypeError(
                "before_reconnect must be a function (url, headers) -> (url, headers) or None, "
                f"not {type(self.before_reconnect).__name__}"
            )
        if not callable(self.redirect_headers):
            raise TypeError(
                "redirect_headers must be a function (old_url, new_url, headers) -> headers, "
                "such as wsloop.options.strip_credentials (the default), "
                f"not {type(self.redirect_headers).__name__}"
            )
        _number("open_timeout", self.open_timeout, allow_none=True)
        _number("loop_warning", self.loop_warning, allow_none=True)
        if not isinstance(self.reconnect, (bool, Reconnect)):
            raise TypeError("reconnect must be True, False or a wsloop.Reconnect")
        if self.proxy is True:
            raise ValueError("proxy must be a URL such as 'http://proxy:3128', None or False")

    @property
    def reconnect_policy(self) -> Reconnect | None:
        """The :class:`Reconnect` policy ``reconnect`` asks for; None: do not reconnect."""
        if self.reconnect is True:
            return Reconnect()
        return self.reconnect or None


#: ``process_request(ws, request)``, plain or ``async``: None accepts the
#: handshake, ``(status, body)`` refuses it (see :class:`ServerOptions`).
ProcessRequest = Callable[..., Any]

_ORIGINS_HELP = (
    "origins must be None (any Origin) or a list of allowed origins, each a str such as "
    "'https://example.com', a compiled re.Pattern, or None to allow requests without Origin"
)


def _check_origins(origins: Any) -> None:
    if origins is None:
        return
    if isinstance(origins, (str, bytes, re.Pattern)) or not isinstance(origins, Collection):
        raise TypeError(f"{_ORIGINS_HELP}; got {type(origins).__name__}")
    if not origins:
        raise ValueError("origins is empty, so every handshake would be refused; " + _ORIGINS_HELP)
    for rule in origins:
        if isinstance(rule, re.Pattern):
            if not isinstance(rule.pattern, str):
                raise TypeError(f"origins: compile {rule.pattern!r} from a str, not bytes")
        elif isinstance(rule, str):
            if "/" in rule.partition("://")[2]:
                raise ValueError(
                    f"origins: {rule!r} can never match: an Origin is scheme://host[:port], "
                    "with no path or trailing slash"
                )
        elif rule is not None:
            raise TypeError(f"{_ORIGINS_HELP}; got {type(rule).__name__} {rule!r}")


@dataclass(frozen=True)
class ServerOptions(ConnectionOptions):
    """Options of :func:`wsloop.serve`.

    ``process_request(ws, request)``: called with each valid handshake, a
    plain function or (on asyncio and uvloop) an ``async`` one; return None
    to accept, ``(status, body)`` with a 4xx/5xx status and a str body to
    refuse, or call ``ws.accept(...)`` / ``ws.reject(...)`` yourself.
    Anything else gets the client a 500 and a log line. ``max_connections``: beyond it, clients
    get 503. ``handshake_timeout``: a client that has not finished its
    handshake by then is dropped (slow-loris). ``broadcast_policy``: what
    :meth:`Server.broadcast` does with a client whose buffer is over its
    write_limit: ``"skip"`` it or ``"close"`` it (1008).
    ``origins``: None accepts any ``Origin``; else a list of those allowed,
    each an exact str (``"https://example.com"``) or a ``re.Pattern`` that
    must fullmatch, and None in it to allow requests with no ``Origin``
    (non-browser clients). Others get 403 before ``process_request`` runs:
    the defence against cross-site WebSocket hijacking.
    ``reuse_port``: bind with ``SO_REUSEPORT`` so that several processes
    (each with its own loop) listen on the same port and the kernel spreads
    new connections over them (Linux; FreeBSD's ``SO_REUSEPORT_LB``);
    ``ValueError`` where the platform has neither.
    """

    process_request: ProcessRequest | None = None
    max_connections: int | None = 10_000
    handshake_timeout: float = 10.0
    backlog: int = 128
    reuse_port: bool = False
    broadcast_policy: str = "skip"
    origins: Sequence[OriginRule] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _number("handshake_timeout", self.handshake_timeout)
        if self.process_request is not None and not callable(self.process_request):
            raise TypeError("process_request must be callable")
        if self.max_connections is not None and (
            not isinstance(self.max_connections, int) or self.max_connections < 1
        ):
            raise ValueError("max_connections must be a positive int or None")
        if self.broadcast_policy not in ("skip", "close"):
            raise ValueError("broadcast_policy must be 'skip' or 'close'")
        _check_origins(self.origins)
        if not isinstance(self.reuse_port, bool):
            raise TypeError(f"reuse_port must be True or False, not {self.reuse_port!r}")
        if self.reuse_port and reuse_port_option() is None:
            raise ValueError(
                "reuse_port=True needs SO_REUSEPORT, which this platform does not have: "
                "run one server per port (or one process) instead"
            )


def reuse_port_option() -> int | None:
    """The socket option that lets processes share a listening port with
    the kernel balancing connections over them, or None where there is none.

    FreeBSD's plain ``SO_REUSEPORT`` gives every connection to one socket;
    its ``SO_REUSEPORT_LB`` balances, as Linux's ``SO_REUSEPORT`` does."""
    return getattr(socket, "SO_REUSEPORT_LB", None) or getattr(socket, "SO_REUSEPORT", None)


# -- the same options as keyword arguments, for type checkers ------------------
#
# connect() and serve() take options as keywords. These TypedDicts type them
# (with typing.Unpack), so that a misspelt option or a wrong type fails type
# checking as well as at run time. tests/test_options_typing.py checks that
# they name exactly the dataclasses' fields above.


class _ConnectionOptionArgs(TypedDict, total=False):
    max_message_size: int | None
    compression: bool | DeflateOptions | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    write_limit: int
    handler_errors: str
    subprotocols: Sequence[str]
    headers: Iterable[tuple[str, str]] | dict[str, str]
    ssl: ssl.SSLContext | None


class ClientOptionArgs(_ConnectionOptionArgs, total=False):
    """The keywords of :class:`ClientOptions`."""

    origin: str | None
    open_timeout: float | None
    reconnect: bool | Reconnect
    max_redirects: int
    proxy: str | bool | None
    server_hostname: str | None
    loop_warning: float | None
    redirect_headers: RedirectHeaders
    before_reconnect: BeforeReconnect | None


class ServerOptionArgs(_ConnectionOptionArgs, total=False):
    """The keywords of :class:`ServerOptions`."""

    process_request: ProcessRequest | None
    max_connections: int | None
    handshake_timeout: float
    backlog: int
    reuse_port: bool
    broadcast_policy: str
    origins: Sequence[OriginRule] | None


class CallbackArgs(TypedDict, total=False):
    """Callbacks given as keywords (``on_message=...``), each as the
    :class:`~wsloop.Handler` method of that name but for its ``self``."""

    on_open: Callable[[WebSocket], object] | None
    on_message: Callable[[WebSocket, str | bytes], object] | None
    on_ping: Callable[[WebSocket, bytes], object] | None
    on_pong: Callable[[WebSocket, bytes], object] | None
    on_close: Callable[[WebSocket, int, str, bool], object] | None
    on_error: Callable[[WebSocket | None, BaseException], object] | None
    on_writable: Callable[[WebSocket], object] | None
    on_state: Callable[[Client, str, dict[str, Any]], object] | None


class ClientArgs(ClientOptionArgs, CallbackArgs, total=False):
    """:func:`wsloop.connect`'s keywords: options and callbacks."""


class ServerArgs(ServerOptionArgs, CallbackArgs, total=False):
    """:func:`wsloop.serve`'s keywords: options and callbacks."""


class AioClientArgs(ClientArgs, total=False):
    """:func:`wsloop.aio.connect`'s keywords: also ``max_queue``."""

    max_queue: int


class AioServerArgs(ServerArgs, total=False):
    """:func:`wsloop.aio.serve`'s keywords: also ``sock`` and ``max_queue``."""

    sock: socket.socket | None
    max_queue: int
