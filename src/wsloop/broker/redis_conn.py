"""One connection to Redis, kept open, on any wsloop :class:`~wsloop.Loop`.

It speaks RESP3 (``HELLO 3``) over wsloop's own :class:`~wsloop.transport.Transport`
(TLS for ``rediss://`` through the same MemoryBIO path as WebSockets), so it
runs on whatever loop the server runs on, with no thread and no second
loop. Replies come back in the order commands were sent and go to each
command's callback; pub/sub messages are RESP3 push frames and go to
``on_push``. Because of RESP3, one connection carries both the
subscriptions and the commands (publishing, reading history).

Kept alive: a ``PING`` every ``ping_interval`` seconds, and a reply late by
more than ``timeout`` counts the connection as dead. It reads whenever the
socket is readable, so Redis never sees a full output buffer because of us.
When the connection is lost it reconnects with the :class:`~wsloop.Reconnect`
policy (backoff and jitter) and calls ``on_ready`` again, which is where its
owner subscribes again. Its :attr:`state` is ``connecting`` (first attempt),
``connected``, ``reconnecting`` (lost, or failing: waiting for the next
attempt) or ``down`` (closed, or the policy gave up); each change goes to
``on_state`` and to the ``wsloop`` logger.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

from .._threads import resolver_pool
from ..loops import Handle, Loop
from ..options import Reconnect
from ..transport import Transport
from .errors import BrokerUnavailable, RedisReplyError
from .resp import RedisURL, hiredis, pack

__all__ = ["RedisConnection", "Reply"]

logger = logging.getLogger("wsloop")

#: ``callback(reply, error)``: exactly one of them is None (unless the reply is).
Reply = Callable[[Any, "BaseException | None"], object]

#: Commands queued while the first connection is being made, at most.
MAX_EARLY = 10_000

_PING = b"*1\r\n$4\r\nPING\r\n"


class _Pushed:
    """The reply slot of a SUBSCRIBE or UNSUBSCRIBE. RESP3 answers those
    with push messages when they succeed but with an ordinary error reply
    when they fail (an ACL's NOPERM): a PING sent right after tells the two
    apart (its PONG comes first if there was no error), so an error never
    lands on another command's callback."""

    __slots__ = ("on_error",)

    def __init__(self, on_error: Callable[[BaseException], object] | None) -> None:
        self.on_error = on_error


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class RedisConnection:
    """A self-healing connection to Redis; create and use it on the loop's thread."""

    def __init__(
        self,
        loop: Loop,
        url: RedisURL,
        *,
        on_push: Callable[[list[Any]], object],
        on_ready: Callable[[], object],
        on_state: Callable[[str, dict[str, Any]], object],
        reconnect: Reconnect | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ping_interval: float = 5.0,
        timeout: float = 5.0,
        name: str = "wsloop",
    ) -> None:
        self.loop = loop
        self.url = url
        self.policy = reconnect or Reconnect(initial_delay=0.1, max_delay=5.0, jitter=0.3)
        self.ssl_context = ssl_context
        self.ping_interval = ping_interval
        self.timeout = timeout
        self.name = name
        self._on_push = on_push
        self._on_ready = on_ready
        self._on_state = on_state
        #: ``connecting``, ``connected``, ``reconnecting`` or ``down``.
        self.state = "connecting"
        #: Why the last attempt or connection failed, if it did.
        self.last_error: BaseException | None = None
        self._transport: Transport | None = None
        self._sock: socket.socket | None = None
        self._addresses: list[Any] = []  # left to try in this attempt
        self._reader: Any = None
        self._pending: deque[tuple[float, Reply | _Pushed | None]] = deque()
        self._early: list[tuple[bytes, Reply | None]] = []
        self._failures = 0
        self._closing = False
        self._ready = False
        self._attempt = 0  # which attempt callbacks belong to (late ones are ignored)
        self._retry: Handle | None = None
        self._tick: Handle | None = None
        self._last_ping = 0.0
        self._last_input = 0.0  # when bytes last came from Redis
        self._connect_started = 0.0
        self._started = False

    # -- API (loop thread) ----------------------------------------------------

    def start(self) -> None:
        if not self._started and not self._closing:
            self._started = True
            self._connect()

    def command(self, *args: str | bytes | int, callback: Reply | None = None) -> None:
        """Send a command; ``callback(reply, error)`` gets its reply on the
        loop's thread. Raises :class:`BrokerUnavailable` unless connected
        (or making the first connection: then it waits for it)."""
        data = pack(*args)
        if self._ready:
            self._send(data, callback)
        elif self.state == "connecting" and not self._closing:
            if len(self._early) >= MAX_EARLY:
                raise BrokerUnavailable(f"Redis at {self.url}: still connecting, too many waiting")
            self._early.append((data, callback))
        else:
            raise self.unavailable()

    def send_subscription(
        self, *args: str | bytes, on_error: Callable[[BaseException], object] | None = None
    ) -> bool:
        """SUBSCRIBE/UNSUBSCRIBE, whose answers come as pushes (RESP3);
        ``on_error(error)`` if Redis refuses it instead. False if not
        connected (they are sent again on ready)."""
        if not self._ready or self._transport is None:
            return False
        now = self.loop.time()
        self._pending.append((now, _Pushed(on_error)))
        self._pending.append((now, None))  # its PING
        self._transport.write(pack(*args) + _PING)
        return True

    def unavailable(self) -> BrokerUnavailable:
        why = f": {self.last_error}" if self.last_error is not None else ""
        return BrokerUnavailable(f"Redis at {self.url} is {self.state}{why}")

    @property
    def connected(self) -> bool:
        return self._ready

    def close(self) -> None:
        """Close for good; commands in flight fail."""
        if self._closing:
            return
        self._closing = True
        self._ready = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._stop_tick()
        transport, self._transport = self._transport, None
        self._drop(BrokerUnavailable("the broker is closed"))
        if transport is not None:
            transport.abort()
        if self._sock is not None:
            self.loop.remove_writer(self._sock)
            self._sock.close()
            self._sock = None
        self._set_state("down", reason="closed")

    # -- connecting -------------------------------------------------------

    def _connect(self) -> None:
        self._attempt += 1
        attempt = self._attempt
        self._connect_started = self.loop.time()
        self._arm_tick()  # the whole attempt is timed, a slow name lookup too
        host, port = self.url.host, self.url.port
        if _is_ip(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._resolved(attempt, [(family, socket.SOCK_STREAM, 0, "", (host, port))])
        else:
            resolver_pool.submit(self._resolve, attempt, host, port)

    def _resolve(self, attempt: int, host: str, port: int) -> None:
        try:
            result: Any = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result = OSError(f"cannot resolve {host!r}: {exc}")
        try:
            self.loop.call_soon_threadsafe(self._resolved, attempt, result)
        except RuntimeError:
            pass  # the loop was closed meanwhile

    def _resolved(self, attempt: int, result: Any) -> None:
        if attempt != self._attempt or self._closing:
            return
        if isinstance(result, BaseException):
            self._failed(result)
            return
        self._addresses = list(result)
        self._try_next(attempt, None)

    def _try_next(self, attempt: int, error: BaseException | None) -> None:
        """Connect to the next address (``localhost`` may be ::1 and
        127.0.0.1); fail with the last error once none is left."""
        while self._addresses:
            family, type_, proto, _, addr = self._addresses.pop(0)
            try:
                sock = socket.socket(family, type_, proto)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                error = exc
                continue
            err = sock.connect_ex(addr)
            if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self._sock = sock
                self.loop.add_writer(sock, self._tcp_done, attempt)
                self._arm_tick()  # the connect and the handshake are timed too
                return
            sock.close()
            error = OSError(err, f"connect to {self.url} failed: {errno.errorcode.get(err)}")
        self._failed(error or OSError(f"cannot connect to {self.url}"))

    def _tcp_done(self, attempt: int) -> None:
        sock = self._sock
        if sock is None:
            return
        self.loop.remove_writer(sock)
        self._sock = None
        if attempt != self._attempt or self._closing:
            sock.close()
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            sock.close()
            error = OSError(err, f"connect to {self.url} failed: {errno.errorcode.get(err)}")
            self._try_next(attempt, error)
            return
        self._reader = hiredis.Reader()
        self._transport = Transport(self.loop, sock, _Stream(self, attempt))
        if self.url.tls:
            context = self.ssl_context or ssl.create_default_context()
            self._transport.start_tls(
                context, server_side=False, server_hostname=self.url.host, done=self._tls_done
            )
        else:
            self._hello()

    def _tls_done(self, exc: BaseException | None) -> None:
        if exc is not None:
            self._abort(exc)
        else:
            self._hello()

    def _hello(self) -> None:
        url = self.url
        hello: list[str | bytes | int] = ["HELLO", 3]
        if url.password is not None:
            hello += ["AUTH", url.username or "default", url.password]
        hello += ["SETNAME", self.name]
        self._send(pack(*hello), self._hello_done)
        if url.db:
            self._send(pack("SELECT", url.db), self._select_done)

    def _hello_done(self, reply: Any, error: BaseException | None) -> None:
        if error is not None:
            self._abort(error)
        elif not self.url.db:
            self._opened()

    def _select_done(self, reply: Any, error: BaseException | None) -> None:
        if error is not None:
            self._abort(error)
        else:
            self._opened()

    def _opened(self) -> None:
        if self._transport is None:
            return
        self._ready = True
        self._failures = 0
        self.last_error = None
        self._last_ping = self.loop.time()
        early, self._early = self._early, []
        for data, callback in early:
            self._send(data, callback)
        self._set_state("connected")
        try:
            self._on_ready()
        except Exception:
            logger.exception("exception in the Redis connection's on_ready")

    # -- from the transport (through _Stream) -------------------------------

    def _data_received(self, data: memoryview, n: int) -> None:
        self._last_input = self.loop.time()
        reader = self._reader
        reader.feed(data[:n])
        push_type = hiredis.PushNotification
        while self._transport is not None:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._abort(exc)
                return
            if reply is False:
                # Stamped again once handled: a long burst of pushes (each
                # fanned out to every local subscriber) is this process's
                # time, not Redis's, and must not count against a reply
                # that waits in the socket behind it (docs/performance.md,
                # "Fan-out").
                self._last_input = self.loop.time()
                return
            if type(reply) is push_type:
                try:
                    self._on_push(reply)
                except Exception:
                    logger.exception("exception handling a Redis push message")
                continue
            if not self._pending:
                self._abort(ConnectionError("Redis sent a reply to no command"))
                return
            _, callback = self._pending.popleft()
            if isinstance(callback, _Pushed):
                if isinstance(reply, hiredis.ReplyError):
                    if callback.on_error is not None:
                        try:
                            callback.on_error(RedisReplyError(str(reply)))
                        except Exception:
                            logger.exception("exception in a Redis subscription's error callback")
                    continue
                # Answered by pushes: this reply is the PING's that follows.
                _, callback = self._pending.popleft()
            if callback is None or isinstance(callback, _Pushed):
                continue  # (a _Pushed is never followed by another: by its PING)
            try:
                if isinstance(reply, hiredis.ReplyError):
                    callback(None, RedisReplyError(str(reply)))
                else:
                    callback(reply, None)
            except Exception:
                logger.exception("exception in a Redis reply callback")

    # -- internals --------------------------------------------------------

    def _send(self, data: bytes, callback: Reply | None) -> None:
        transport = self._transport
        assert transport is not None
        self._pending.append((self.loop.time(), callback))
        transport.write(data)

    def _abort(self, exc: BaseException) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return  # already handled
        transport.abort(exc)
        self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        was_ready = self._ready
        self._ready = False
        self._attempt += 1  # late callbacks of this attempt are ignored
        self._stop_tick()
        if self._sock is not None:
            self.loop.remove_writer(self._sock)
            self._sock.close()
            self._sock = None
        self.last_error = exc
        self._drop(BrokerUnavailable(f"connection to Redis at {self.url} lost: {exc}"))
        if self._closing:
            return
        if was_ready:
            logger.warning("wsloop: connection to Redis at %s lost: %s", self.url, exc)
        self._failures += 1
        policy = self.policy
        if policy.max_attempts is not None and self._failures >= policy.max_attempts:
            self._closing = True
            self._set_state("down", reason=f"gave up after {self._failures} attempts: {exc}")
            return
        delay = policy.delay(self._failures, random.random())
        self._set_state("reconnecting", delay=delay, attempt=self._failures, error=exc)
        self._retry = self.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if not self._closing:
            self._connect()

    def _drop(self, exc: BaseException) -> None:
        """Fail every command in flight, and those waiting for the first connection."""
        pending = [cb for _, cb in self._pending] + [cb for _, cb in self._early]
        self._pending.clear()
        self._early.clear()
        self._reader = None
        for callback in pending:
            # (a lost subscription is made again on reconnect: no error)
            if callback is not None and not isinstance(callback, _Pushed):
                try:
                    callback(None, exc)
                except Exception:
                    logger.exception("exception in a Redis reply callback")

    def _set_state(self, state: str, **detail: Any) -> None:
        if state == self.state and state != "reconnecting":
            return
        self.state = state
        if state == "connected":
            logger.info("wsloop: connected to Redis at %s", self.url)
        elif state == "reconnecting":
            logger.info(
                "wsloop: Redis at %s unreachable (%s); retry %d in %.2fs",
                self.url,
                detail.get("error"),
                detail.get("attempt", 0),
                detail.get("delay", 0.0),
            )
        else:
            logger.info("wsloop: Redis at %s is %s (%s)", self.url, state, detail.get("reason"))
        try:
            self._on_state(state, detail)
        except Exception:
            logger.exception("exception in the Redis connection's on_state")

    def _arm_tick(self) -> None:
        if self._tick is None:
            period = max(0.05, min(self.ping_interval, self.timeout) / 2)
            self._tick = self.loop.call_later(period, self._on_tick)

    def _stop_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _on_tick(self) -> None:
        """Keepalive and timeouts: a PING when due; a command (or the
        connect and handshake) waiting longer than ``timeout`` kills the
        connection, which then reconnects."""
        self._tick = None
        now = self.loop.time()
        # Timed from the command's sending, or from the last bytes received
        # if later: a large reply (a long history) still arriving is alive.
        if self._pending and now - max(self._pending[0][0], self._last_input) > self.timeout:
            self._abort(TimeoutError(f"Redis at {self.url}: no reply within {self.timeout}s"))
            return
        if not self._ready:
            if now - self._connect_started > self.timeout:
                error = TimeoutError(
                    f"connecting to Redis at {self.url}: no answer in {self.timeout}s"
                )
                if self._transport is not None:
                    self._abort(error)
                else:
                    self._failed(error)
                return
        else:
            if now - self._last_ping >= self.ping_interval:
                self._last_ping = now
                self._send(pack("PING"), None)
        self._arm_tick()


class _Stream:
    """What one attempt's transport reports to: the connection, unless a
    later attempt has replaced this one (then a late loss is ignored)."""

    __slots__ = ("attempt", "conn")

    def __init__(self, conn: RedisConnection, attempt: int) -> None:
        self.conn = conn
        self.attempt = attempt

    def data_received(self, data: memoryview, n: int) -> None:
        if self.conn._attempt == self.attempt:
            self.conn._data_received(data, n)

    def eof_received(self) -> None:
        if self.conn._attempt == self.attempt:
            self.conn._abort(
                ConnectionResetError(f"Redis at {self.conn.url} closed the connection")
            )

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.conn._attempt == self.attempt:
            url = self.conn.url
            self.conn._abort(exc or ConnectionResetError(f"connection to Redis at {url} lost"))
