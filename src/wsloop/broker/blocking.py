"""Publishing from a plain script: no loop, one short blocking connection.

:func:`publish` (or a :class:`Publisher` kept open for many messages) runs
the same atomic script as the Redis broker over an ordinary blocking
socket, so a cron job, a worker or a shell pipeline can feed channels that
wsloop servers deliver. Every call has a timeout: it never hangs, and a
Redis that is down is a :class:`~wsloop.broker.BrokerUnavailable` at once.
"""

from __future__ import annotations

import os
import select
import socket
import ssl as _ssl
import time
from typing import Any

from .base import (
    DEFAULT_HISTORY,
    DEFAULT_TTL,
    check_channel,
    check_message,
    check_prefix,
    check_seconds,
)
from .errors import BrokerError, BrokerUnavailable, RedisReplyError
from .feed import Position
from .redis_broker import _PUBLISH_SHA
from .resp import RedisURL, hiredis, pack, parse_redis_url, require_hiredis
from .scripts import PUBLISH, channel_keys

__all__ = ["Publisher", "publish"]


class Publisher:
    """A blocking connection to Redis for publishing; ``with`` it, or close it.

    ``history``, ``ttl`` and ``prefix`` must match the servers' broker so
    that resumes find the messages. Each call takes at most ``timeout``
    seconds in all (connecting, TLS, logging in and the publish itself).
    Not for a loop's thread (it blocks); one thread at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        history: int = DEFAULT_HISTORY,
        ttl: int = DEFAULT_TTL,
        prefix: str = "wsloop",
        timeout: float = 5.0,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        require_hiredis()
        self.url: RedisURL = parse_redis_url(url)
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be an int >= 0, not {history!r}")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError(f"ttl must be an int >= 0, not {ttl!r}")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}")
        if ssl is not None and not self.url.tls:
            raise ValueError(f"ssl= was given but {url!r} is not a rediss:// URL")
        self.history = history
        self.ttl = ttl
        self.prefix = check_prefix(prefix)
        self.timeout = check_seconds("timeout", timeout)
        self._ssl = ssl
        self._sock: Any = None
        self._reader: Any = None
        self._deadline = 0.0

    def publish(self, channel: str, message: str | bytes) -> Position:
        """Publish one message; returns its position. Raises
        :class:`BrokerUnavailable` if Redis cannot be reached or does not
        answer in time (then the message may or may not have been published)."""
        check_channel(channel)
        data = check_message(message)
        meta, stream, pubsub = channel_keys(self.prefix, channel)
        kind, raw = ("t", data.encode("utf-8")) if isinstance(data, str) else ("b", data)
        args = (2, meta, stream, pubsub, kind, raw, self.history, self.ttl, os.urandom(6).hex())
        self._deadline = time.monotonic() + self.timeout
        try:
            reply = self._call("EVALSHA", _PUBLISH_SHA, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            reply = self._call("EVAL", PUBLISH, *args)
        return Position(bytes(reply[0]).decode("ascii"), int(reply[1]))

    def close(self) -> None:
        """Disconnect (the next :meth:`publish` connects again)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------

    def _call(self, *args: str | bytes | int) -> Any:
        if self._sock is not None and self._stale():
            self.close()  # closed by Redis while kept (its idle timeout, a restart)
        if self._sock is None:
            self._open()
        try:
            self._sock.settimeout(self._left())
            self._sock.sendall(pack(*args))
            return self._reply()
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise BrokerUnavailable(f"Redis at {self.url}: {exc}") from exc

    def _stale(self) -> bool:
        """Whether the kept connection was closed meanwhile: between calls
        nothing comes unasked, so a readable socket means it was (and
        nothing was sent on it, so opening another cannot publish twice)."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _left(self) -> float:
        """Seconds left of this call's ``timeout``; TimeoutError if none."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {self.timeout}s")
        return left

    def _reply(self) -> Any:
        while True:
            reply = self._reader.gets()
            if reply is not False:
                break
            self._sock.settimeout(self._left())  # a trickle cannot stretch it
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("Redis closed the connection")
            self._reader.feed(chunk)
        if isinstance(reply, hiredis.ReplyError):
            raise RedisReplyError(str(reply))
        return reply

    def _open(self) -> None:
        url = self.url
        try:
            sock = socket.create_connection((url.host, url.port), timeout=self._left())
        except OSError as exc:
            raise BrokerUnavailable(f"cannot connect to Redis at {url}: {exc}") from exc
        try:
            if url.tls:
                context = self._ssl or _ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=url.host)
            self._sock = sock
            self._reader = hiredis.Reader()
            if url.password is not None:
                self._call("AUTH", url.username or "default", url.password)
            if url.db:
                self._call("SELECT", url.db)
        except BaseException as exc:
            self.close()
            sock.close()
            if isinstance(exc, OSError) and not isinstance(exc, BrokerError):
                raise BrokerUnavailable(f"Redis at {url}: {exc}") from exc  # TLS failed
            raise


def publish(
    url: str,
    channel: str,
    message: str | bytes,
    *,
    history: int = DEFAULT_HISTORY,
    ttl: int = DEFAULT_TTL,
    prefix: str = "wsloop",
    timeout: float = 5.0,
    ssl: _ssl.SSLContext | None = None,
) -> Position:
    """Publish one message to ``channel`` through Redis at ``url`` from any
    code, no loop needed (a short-lived blocking connection); returns its
    position. See :class:`Publisher` for the options and errors."""
    with Publisher(url, history=history, ttl=ttl, prefix=prefix, timeout=timeout, ssl=ssl) as p:
        return p.publish(channel, message)
