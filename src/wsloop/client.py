"""Clients: connect on any loop, at any time, from any thread; reconnect.

:func:`connect` returns at once. The attempt itself (DNS, TCP, TLS, proxy,
handshake, and the open timeout's clock) starts only when the loop runs the
work handed to it, so a connect made before the loop starts costs nothing
and cannot time out early; a watchdog thread reports a loop that has not
run within ``loop_warning`` seconds (a :class:`RuntimeWarning` at the
application's ``connect`` call, and a record on the ``wsloop`` logger).

One attempt goes: resolve (in a short-lived thread; IP literals skip it) ->
TCP connect to each address in turn -> HTTP CONNECT through a proxy ->
TLS -> WebSocket handshake -> open. Redirects start a fresh attempt at the
new URL; failures and unexpected closes lead to the reconnect policy.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import socket
import ssl
import sys
import threading
import time
import urllib.request
import warnings
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from ._threads import Completion, Deadline, resolver_pool, watchdog
from .errors import ConnectionClosed, ProxyError
from .handler import HandlerLike
from .loops import Handle, Loop
from .options import ClientOptions
from .protocol import (
    ClientConnection,
    HandshakeError,
    InvalidStateError,
    RequestReceived,
    WebSocketURL,
    parse_url,
)
from .protocol.handshake import Headers, HeadParser, parse_status_line
from .transport import Transport
from .websocket import WebSocket

__all__ = ["Client"]

logger = logging.getLogger("wsloop")

_warned: weakref.WeakSet[Loop] = weakref.WeakSet()
_warned_lock = threading.Lock()

#: The report of a loop that never ran: url, seconds, loop name, how to run it.
_LOOP_DID_NOT_RUN = (
    "wsloop: connect(%r) was requested %.1fs ago, but the %s loop it was handed to has "
    "not run since. wsloop does its work inside that loop: run it (%s)."
)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: WebSocketURL, proxy: str | bool | None) -> tuple[str, int, str | None] | None:
    """(host, port, basic credentials) of the HTTP proxy to use, if any."""
    if proxy is False:
        return None
    if proxy is None or proxy is True:
        env = urllib.request.getproxies_environment()
        proxy = env.get("https" if url.secure else "http") or env.get("all")
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not proxy or bypass(url.host) or _is_loopback(url.host):
            return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme not in ("http", "") or not parts.hostname:
        raise ValueError(f"proxy {proxy!r} is not an http:// proxy URL")
    cred = None
    if parts.username is not None:
        import base64

        raw = f"{parts.username}:{parts.password or ''}".encode()
        cred = base64.b64encode(raw).decode("ascii")
    return parts.hostname, parts.port or 8080, cred


class _Attempt:
    """One try at one URL; reports to its client exactly once."""

    def __init__(
        self, client: Client, url: WebSocketURL, redirects: int, headers: list[tuple[str, str]]
    ) -> None:
        self.client = client
        self.loop = client.loop
        self.url = url
        self.redirects = redirects
        self.headers = headers  # the application's, as redirects left them
        self.done = False
        self.sock: socket.socket | None = None
        self.transport: Transport | None = None
        self.ws: WebSocket | None = None
        self.addresses: list[tuple[Any, ...]] = []
        self.error: BaseException | None = None
        self.timer: Handle | None = None
        self.proxy = proxy_for(url, client.options.proxy)
        self._tunnel: HeadParser | None = None

    def start(self) -> None:
        timeout = self.client.options.open_timeout
        if timeout:
            self.timer = self.loop.call_later(timeout, self._timed_out, timeout)
        host, port = (
            (self.proxy[0], self.proxy[1]) if self.proxy else (self.url.host, self.url.port)
        )
        if _is_ip(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._resolved([(family, socket.SOCK_STREAM, 0, "", (host, port))])
            return
        resolver_pool.submit(self._resolve, host, port)

    def _resolve(self, host: str, port: int) -> None:
        try:
            result: Any = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            what = "proxy " if self.proxy else ""
            result = OSError(f"cannot resolve {what}{host!r}: {exc}")
        try:
            self.loop.call_soon_threadsafe(self._resolved, result)
        except RuntimeError:
            pass  # the loop adapter was closed meanwhile

    def _resolved(self, result: Any) -> None:
        if self.done:
            return
        if isinstance(result, BaseException):
            self.fail(result)
            return
        self.addresses = list(result)
        self._try_next()

    def _try_next(self) -> None:
        if self.done:
            return
        if not self.addresses:
            where = (
                f"{self.url.host}:{self.url.port}" if not self.proxy else f"proxy {self.proxy[0]}"
            )
            self.fail(self.error or OSError(f"cannot connect to {where}"))
            return
        family, type_, proto, _, addr = self.addresses.pop(0)
        try:
            sock = socket.socket(family, type_, proto)
        except OSError as exc:
            self.error = exc
            self._try_next()
            return
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.sock = sock
        err = sock.connect_ex(addr)
        if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self.loop.add_writer(sock, self._connected, addr)
        else:
            self._address_failed(addr, err)

    def _address_failed(self, addr: Any, err: int) -> None:
        """This address did not work: remember why, try the next one."""
        assert self.sock is not None
        self.sock.close()
        self.sock = None
        name = errno.errorcode.get(err, str(err))
        # OSError(errno, ...) is the matching subclass (ConnectionRefusedError...).
        what = "proxy " if self.proxy else ""
        self.error = OSError(err, f"connect to {what}{addr[0]}:{addr[1]} failed: {name}")
        self._try_next()

    def _connected(self, addr: Any) -> None:
        sock = self.sock
        assert sock is not None
        self.loop.remove_writer(sock)
        if self.done:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._address_failed(addr, err)
            return
        self.sock = None
        self.transport = Transport(
            self.loop, sock, self, high_water=self.client.options.write_limit
        )
        if self.proxy:
            host = f"[{self.url.host}]" if ":" in self.url.host else self.url.host
            target = f"{host}:{self.url.port}"
            lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
            if self.proxy[2]:
                lines.append(f"Proxy-Authorization: Basic {self.proxy[2]}")
            self._tunnel = HeadParser()
            self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        else:
            self._tcp_ready()

    def _tcp_ready(self) -> None:
        transport = self.transport
        assert transport is not None
        if self.url.secure:
            options = self.client.options
            context = options.ssl or ssl.create_default_context()
            transport.start_tls(
                context,
                server_side=False,
                server_hostname=options.server_hostname or self.url.host,
                done=self._tls_done,
            )
        else:
            self._handshake()

    def _tls_done(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.fail(exc)
        elif not self.done:
            self._handshake()

    def _handshake(self) -> None:
        options = self.client.options
        proto = ClientConnection(
            self.url,
            origin=options.origin,
            subprotocols=options.subprotocols,
            extra_headers=self.headers,
            deflate=options.deflate,
            max_message_size=options.max_message_size,
        )
        self.ws = WebSocket(self.loop, proto, self.client.handler, options, self.client)
        self.client.ws = self.ws
        assert self.transport is not None
        self.ws.connection_made(self.transport)

    # -- transport protocol while tunnelling through a proxy / during TLS --

    def data_received(self, data: memoryview, n: int) -> None:
        if self._tunnel is None or self.done:
            return
        try:
            head = self._tunnel.feed(data[:n])
            if head is None:
                return
            status, reason = parse_status_line(head[0])
        except HandshakeError as exc:
            self.fail(OSError(f"proxy {self._proxy_name} sent an invalid response: {exc.reason}"))
            return
        self._tunnel = None
        if status != 200:
            self.fail(ProxyError(status, reason, proxy=self._proxy_name))
            return
        self._tcp_ready()

    @property
    def _proxy_name(self) -> str:
        assert self.proxy is not None
        host, port, _ = self.proxy
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def eof_received(self) -> None:
        if self._tunnel is not None:
            self.fail(
                ConnectionResetError(
                    f"proxy {self._proxy_name} closed the connection before answering CONNECT"
                )
            )
            return
        self.fail(ConnectionResetError("connection closed before the WebSocket handshake"))

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is None:
            self.eof_received()
        else:
            self.fail(exc)

    # -- outcome ----------------------------------------------------------

    def _timed_out(self, timeout: float) -> None:
        self.timer = None
        where = f"{self.url.host}:{self.url.port}"
        self.fail(TimeoutError(f"opening handshake with {where} timed out after {timeout}s"))

    def opened(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sock is not None:
            self.loop.remove_writer(self.sock)
            self.sock.close()
            self.sock = None
        if self.transport is not None:
            self.transport.abort(exc)
        self.client._attempt_failed(self, exc)


class Client:
    """A client connection, with its reconnect policy; made by :func:`wsloop.connect`.

    ``ws`` is the current :class:`WebSocket` (None between connections).
    ``state`` is ``idle``, ``connecting``, ``open``, ``waiting``, ``closed``
    or ``gave_up``; ``closed`` is True once it is one of the last two: the
    client will not connect again.
    """

    def __init__(self, url: str, handler: HandlerLike, loop: Loop, options: ClientOptions) -> None:
        self.url = url
        self._target = parse_url(url)
        if options.ssl is not None and not self._target.secure:
            raise ValueError(f"ssl= was given but {url!r} is not a wss:// URL")
        proxy_for(self._target, options.proxy)  # validate now, not on the loop
        if options.before_reconnect is not None and options.reconnect_policy is None:
            raise ValueError(
                "before_reconnect is called before each reconnect attempt: pass reconnect=True "
                "(or a wsloop.Reconnect) too"
            )
        self.handler = handler
        self.loop = loop
        self.options = options
        self.ws: WebSocket | None = None
        self.state = "idle"
        self.attempts = 0
        self._done = Completion(loop.call_in_loop, "client")
        self._failures = 0
        self._closing = False
        self._attempt: _Attempt | None = None
        self._retry: Handle | None = None
        self._watchdog: Deadline | None = None
        self._requested = time.monotonic()
        self._caller: _Caller | None = None

    # -- API --------------------------------------------------------------

    def start(self) -> Client:
        """Hand the connect to the loop (done by :func:`wsloop.connect`)."""
        warn_after = self.options.loop_warning
        if warn_after is not None and not self.loop.in_loop_thread():
            self._caller = _application_caller()
            self._watchdog = watchdog.after(warn_after, self._loop_did_not_run)
        self.loop.call_in_loop(self._begin)
        return self

    def send(self, data: str | bytes, *, compress: bool = True) -> None:
        """Send on the current connection; raises if there is none open."""
        ws = self.ws
        if ws is None:
            raise InvalidStateError(f"cannot send: the client is {self.state}")
        ws.send(data, compress=compress)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close for good: no reconnect after this. Safe from any thread."""
        self._closing = True
        self.loop.call_in_loop(self._close, code, reason)

    @property
    def closed(self) -> bool:
        """True once the client is done: closed, or gave up reconnecting."""
        return self._done.done

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the client is done (closed or gave up); False if
        ``timeout`` passed first. Not on the loop's thread."""
        return self._done.wait(timeout)

    def add_done_callback(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` on the loop's thread once the client is done."""
        self._done.add_callback(fn)

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.state} on {self.loop.name}>"

    # The callback client used as the asyncio API's: closed at once (no
    # socket is left behind), with an error that says what to call.
    def __await__(self) -> Any:
        raise self._not_awaitable("await wsloop.aio.connect(url)")

    def __aenter__(self) -> Any:
        raise self._not_awaitable("async with wsloop.aio.connect(url) as ws")

    def __aexit__(self, *exc: object) -> Any:
        return None

    def __aiter__(self) -> Any:
        raise self._not_awaitable("async for ws in wsloop.aio.connect(url)")

    def _not_awaitable(self, use: str) -> TypeError:
        self.close()
        return TypeError(
            f"wsloop.connect() is the callback API and returns a Client at once; for "
            f"asyncio use `{use}` (this client was closed)"
        )

    # -- on the loop ---------------------------------------------------------

    def _loop_did_not_run(self) -> None:
        with _warned_lock:
            if self.loop in _warned:
                return  # one warning per loop, however many connects wait on it
            _warned.add(self.loop)
        args = (
            self.url,
            time.monotonic() - self._requested,
            self.loop.name,
            _how_to_run(self.loop),
        )
        # Reported twice on purpose. A warning is Python's way to tell an
        # application to change its code, and it is shown when nothing was
        # configured (the NullHandler keeps wsloop's log records quiet then);
        # the log record is for applications that watch their logs. The
        # warning comes first: whoever waits on the record sees both.
        _warn_at(self._caller, _LOOP_DID_NOT_RUN % args)
        logger.warning(_LOOP_DID_NOT_RUN, *args)

    def _begin(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if not self._closing:
            self._connect(self._target, self.options.max_redirects, self.options.header_items)

    def _connect(self, url: WebSocketURL, redirects: int, headers: list[tuple[str, str]]) -> None:
        self.attempts += 1
        self._set_state("connecting", url=_format_url(url), attempt=self.attempts)
        self._attempt = _Attempt(self, url, redirects, headers)
        self._attempt.start()

    def _set_state(self, state: str, **detail: Any) -> None:
        self.state = state
        try:
            self.handler.on_state(self, state, detail)
        except Exception:
            logger.exception("exception in on_state handler of %r", self)
        if state in ("closed", "gave_up"):
            self._done.finish()

    def _attempt_failed(self, attempt: _Attempt, exc: BaseException) -> None:
        if attempt is not self._attempt:
            return
        self._attempt = None
        self.ws = None
        response = exc.response if isinstance(exc, HandshakeError) else None
        if (
            response is not None
            and response.status in (301, 302, 303, 307, 308)
            and attempt.redirects > 0
            and not self._closing
        ):
            location = response.headers.get("Location")
            if location:
                try:
                    target = _redirect(attempt.url, location)
                    headers = self._redirect_headers(attempt, target)
                except Exception as err:  # the hook's errors too: reported below
                    exc = err
                else:
                    logger.info("redirected to %s", location)
                    self._connect(target, attempt.redirects - 1, headers)
                    return
        if not self._closing:
            try:
                self.handler.on_error(None, exc)
            except Exception:
                logger.exception("exception in on_error handler of %r", self)
        self._failures += 1
        self._after_connection(exc)

    def _redirect_headers(self, attempt: _Attempt, target: WebSocketURL) -> list[tuple[str, str]]:
        """The headers to send to ``target``, as ``redirect_headers`` says.

        Credentials from the old URL's user-info go in as the
        ``Authorization`` they were sent as, so the hook decides about them
        too (the new URL has only its own)."""
        headers = list(attempt.headers)
        if attempt.url.authorization is not None and target.user_info is None:
            headers.insert(0, ("Authorization", attempt.url.authorization))
        # Typed as returning object: what an application's hook returns is
        # checked here, with a message, not by compiled code's return check.
        hook: Callable[[str, str, list[tuple[str, str]]], object] = self.options.redirect_headers
        result: Any = hook(_format_url(attempt.url), _format_url(target), headers)
        try:
            return list(Headers((str(name), str(value)) for name, value in result))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "redirect_headers must return a list of (name, value) str pairs, "
                f"not {result!r:.100}: {exc}"
            ) from exc

    def _after_connection(self, error: BaseException) -> None:
        """A connection attempt failed, or an open connection ended, with
        ``error``: wait and try again, or stop, as the policy says."""
        policy = self.options.reconnect_policy
        if self._closing or policy is None:
            self._set_state("closed")
            return
        # A connection that opened and then closed is not a failed attempt:
        # max_attempts bounds the failures after it (as in wsloop.aio).
        dropped = isinstance(error, ConnectionClosed)
        if (
            policy.max_attempts is not None
            and self._failures >= policy.max_attempts
            and not dropped
        ):
            self._set_state("gave_up", attempts=self._failures, error=error, retryable=True)
            return
        try:
            again = bool(policy.retry_on(error))
        except Exception:
            logger.exception("exception in the reconnect policy's retry_on of %r", self)
            again = False
        if not again:
            self._set_state("gave_up", attempts=self._failures, error=error, retryable=False)
            return
        delay = policy.delay_after(error, self._failures, random.random())
        self._set_state("waiting", delay=delay, attempt=self._failures)
        self._retry = self.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._closing:
            return
        target, headers = self._target, self.options.header_items
        if self.options.before_reconnect is not None:
            try:
                url, headers = reconnect_target(self.options.before_reconnect, self.url, headers)
                target = parse_url(url)
            except Exception as exc:
                # A mistake in the application's hook: reported, then the
                # policy decides (the default gives up on it, as on any hook's).
                logger.error("before_reconnect failed: %s", exc)
                try:
                    self.handler.on_error(None, exc)
                except Exception:
                    logger.exception("exception in on_error handler of %r", self)
                self._failures += 1
                self._after_connection(exc)
                return
        self._connect(target, self.options.max_redirects, headers)

    def _close(self, code: int, reason: str) -> None:
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        ws = self.ws
        attempt = self._attempt
        if ws is not None and ws.state in ("open", "closing"):
            ws.close(code, reason)
        elif attempt is not None:
            attempt.fail(ConnectionAbortedError("closed by the application"))
        elif self.state not in ("closed", "gave_up"):
            self._set_state("closed")

    # -- WebSocket owner ----------------------------------------------------

    def _ws_request(self, ws: WebSocket, event: RequestReceived) -> None:  # pragma: no cover
        raise AssertionError("a client never receives a request")

    def _ws_opened(self, ws: WebSocket) -> None:
        attempt = self._attempt
        if attempt is not None:
            attempt.opened()
        self._attempt = None
        self._failures = 0
        self._set_state("open", url=_format_url(attempt.url if attempt else self._target))

    def _ws_refused(self, ws: WebSocket, error: HandshakeError) -> None:
        attempt = self._attempt
        if attempt is not None and attempt.ws is ws:
            attempt.fail(error)

    def _ws_lost(self, ws: WebSocket) -> None:
        attempt = self._attempt
        if attempt is not None and attempt.ws is ws:
            attempt.fail(ConnectionResetError("connection closed during the opening handshake"))
            return
        if self.ws is ws:
            self.ws = None
            self._failures += 1  # an unexpected close starts the backoff
            self._after_connection(ConnectionClosed.of(ws.protocol.closed))


def reconnect_target(
    hook: Callable[[str, list[tuple[str, str]]], object],
    url: str,
    headers: list[tuple[str, str]],
) -> tuple[str, list[tuple[str, str]]]:
    """What ``before_reconnect`` says the next attempt goes to, checked.

    (Typed as returning object: what an application's hook returns is
    checked here, with a message, not by compiled code's return check.)"""
    result: Any = hook(url, list(headers))
    try:
        new_url, new_headers = result
        pairs = list(Headers((str(name), str(value)) for name, value in new_headers))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "before_reconnect must return (url, headers), headers a list of (name, value) "
            f"str pairs, not {result!r:.100}: {exc}"
        ) from exc
    if not isinstance(new_url, str):
        raise TypeError(f"before_reconnect returned a URL that is not a str: {new_url!r:.100}")
    parse_url(new_url)  # a ValueError that says what is wrong with it
    return new_url, pairs


def _format_url(url: WebSocketURL) -> str:
    return f"{'wss' if url.secure else 'ws'}://{url.host_header}{url.resource}"


def _redirect(current: WebSocketURL, location: str) -> WebSocketURL:
    base = _format_url(current)
    target = urljoin(base.replace("ws", "http", 1), location)
    scheme, _, rest = target.partition("://")
    scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    url = parse_url(f"{scheme}://{rest}")
    if current.secure and not url.secure:
        raise ValueError(f"refusing a redirect from wss:// to insecure {location!r}")
    return url


#: Where the application called wsloop: file, line, module name, module globals.
_Caller = tuple[str, int, str, dict[str, Any]]


def _application_caller() -> _Caller | None:
    """The innermost frame of the calling thread that is not wsloop's (a
    compiled wsloop module has no frame: it is skipped too)."""
    frame: Any = sys._getframe(0)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "wsloop" and not module.startswith("wsloop."):
            return frame.f_code.co_filename, frame.f_lineno, module, frame.f_globals
        frame = frame.f_back
    return None


def _warn_at(caller: _Caller | None, message: str) -> None:
    """A RuntimeWarning at ``caller``'s line, from any thread; the warnings
    filters apply (``-W ignore::RuntimeWarning``, ``filterwarnings``)."""
    try:
        if caller is None:
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        else:
            filename, lineno, module, module_globals = caller
            warnings.warn_explicit(
                message,
                RuntimeWarning,
                filename,
                lineno,
                module=module,
                module_globals=module_globals,
            )
    except Exception:
        # Warnings made errors (-W error) raise here, on the watchdog's
        # thread, not in the application's: the log record still reports it.
        pass


def _how_to_run(loop: Loop) -> str:
    hints = {
        "builtin": "loop.run() or wsloop.run()",
        "asyncio": "loop.run_forever() or asyncio.run(...)",
        "uvloop": "loop.run_forever() or uvloop.run(...)",
        "libev": "loop.run(), or gevent's hub",
        "libuv": "loop.run(), or gevent's hub",
        "glib": "GLib.MainLoop.run() or Gtk.main()",
        "twisted": "reactor.run(), or loop.run() for a reactor wsloop created",
        "trio": "loop.run(), or `async with wsloop.loops.trio.open_loop(loop)` in a trio program",
        "qt": "app.exec() on the QApplication's thread, or loop.run()",
        "tk": "root.mainloop() on the thread that created root, or loop.run()",
    }
    return hints.get(loop.name, "run it")
