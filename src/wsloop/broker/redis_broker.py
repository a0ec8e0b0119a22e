"""The Redis broker: channels shared by every process connected to one Redis.

Publishing runs :data:`~.scripts.PUBLISH` (history, offset, epoch and the
pub/sub message in one atomic step). A process subscribes in Redis to a
channel only while it has local subscribers to it, one Redis channel per
wsloop channel, and fans each message out locally (:mod:`.fanout`).

Every time the connection to Redis is (re)made, each channel is subscribed
again and each local subscription is brought up to date from the
channel's history, from the position of the last message it got: what
was published while the connection was down is delivered then (if
history still holds it), and a lost history (Redis restarted without
persistence, keys expired) is reported as a gap.
"""

from __future__ import annotations

import logging
import os
import ssl as _ssl
from collections.abc import Callable
from typing import Any

from ..loops import Loop
from ..options import Reconnect
from .base import (
    DEFAULT_HISTORY,
    DEFAULT_TTL,
    Broker,
    PublishCallback,
    check_prefix,
    check_seconds,
)
from .errors import BrokerUnavailable, RedisReplyError
from .fanout import NO_EPOCH, Channel, Subscription, replay_gap
from .feed import Position
from .redis_conn import RedisConnection, Reply
from .resp import parse_redis_url, require_hiredis
from .scripts import PUBLISH, READ, channel_keys, sha1

__all__ = ["RedisBroker"]

logger = logging.getLogger("wsloop")

_PUBLISH_SHA = sha1(PUBLISH)
_READ_SHA = sha1(READ)


def _decode_entries(epoch: str, raw: list[Any]) -> list[tuple[Position, str | bytes]]:
    out: list[tuple[Position, str | bytes]] = []
    for entry_id, fields in raw:
        offset = int(bytes(entry_id).split(b"-", 1)[0])
        values: dict[bytes, bytes] = dict(zip(fields[::2], fields[1::2], strict=False))
        raw_data = values.get(b"d", b"")
        data = raw_data.decode("utf-8", "replace") if values.get(b"k") == b"t" else raw_data
        out.append((Position(epoch, offset), data))
    return out


def parse_payload(payload: bytes) -> tuple[Position, str | bytes]:
    """A pub/sub message of :data:`~.scripts.PUBLISH`: position and data."""
    i = payload.index(b":", 1)
    j = payload.index(b":", i + 1)
    position = Position(payload[1:i].decode("ascii"), int(payload[i + 1 : j]))
    data = payload[j + 1 :]
    if payload[:1] == b"t":
        return position, data.decode("utf-8", "replace")
    return position, data


class RedisBroker(Broker):
    """Channels shared through Redis at ``url`` (``redis://[user:password@]host:port/db``
    or ``rediss://`` for TLS, with ``ssl`` an :class:`ssl.SSLContext` if the
    default one does not fit). Options beyond :class:`~wsloop.broker.Broker`'s:
    ``ttl`` (seconds a channel's history and offset outlive its last
    publish; 0: forever), ``prefix`` of its Redis keys, ``reconnect`` (a
    :class:`~wsloop.Reconnect`), ``ping_interval`` and ``timeout`` (a
    reply later than this kills the connection, which reconnects)."""

    def __init__(
        self,
        url: str,
        *,
        loop: Loop,
        history: int = DEFAULT_HISTORY,
        ttl: int = DEFAULT_TTL,
        prefix: str = "wsloop",
        envelope: bool = False,
        policy: str | None = None,
        on_gap: Callable[[Subscription, str], object] | None = None,
        on_state: Callable[[Broker, str, dict[str, Any]], object] | None = None,
        reconnect: Reconnect | None = None,
        ssl: _ssl.SSLContext | None = None,
        ping_interval: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        require_hiredis()
        target = parse_redis_url(url)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError(f"ttl must be an int >= 0 (seconds; 0: forever), not {ttl!r}")
        check_prefix(prefix)
        ping_interval = check_seconds("ping_interval", ping_interval)
        timeout = check_seconds("timeout", timeout)
        if reconnect is not None and not isinstance(reconnect, Reconnect):
            raise TypeError("reconnect must be a wsloop.Reconnect or None")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}")
        if ssl is not None and not target.tls:
            raise ValueError(f"ssl= was given but {url!r} is not a rediss:// URL")
        super().__init__(
            loop,
            history=history,
            envelope=envelope,
            policy=policy,
            on_gap=on_gap,
            on_state=on_state,
        )
        self.url = target
        self.ttl = ttl
        self.prefix = prefix
        self._pubsub: dict[bytes, str] = {}
        self._conn = RedisConnection(
            loop,
            target,
            on_push=self._on_push,
            on_ready=self._on_ready,
            on_state=self._on_conn_state,
            reconnect=reconnect,
            ssl_context=ssl,
            ping_interval=ping_interval,
            timeout=timeout,
            name=f"wsloop-{os.getpid()}",
        )
        loop.call_in_loop(self._conn.start)

    @property
    def state(self) -> str:
        return self._conn.state

    def __repr__(self) -> str:
        return f"<RedisBroker {self.url} {self.state}, {len(self._channels)} channels>"

    # -- publishing -------------------------------------------------------

    def _check_available(self) -> None:
        super()._check_available()
        if self._conn.state not in ("connected", "connecting"):
            raise self._conn.unavailable()

    def _publish(self, name: str, data: str | bytes, callback: PublishCallback | None) -> None:
        meta, stream, pubsub = channel_keys(self.prefix, name)
        kind, raw = ("t", data.encode("utf-8")) if isinstance(data, str) else ("b", data)

        def done(reply: Any, error: BaseException | None) -> None:
            position = None
            if error is None:
                try:
                    position = Position(bytes(reply[0]).decode("ascii"), int(reply[1]))
                except (TypeError, ValueError, IndexError) as exc:
                    error = RedisReplyError(f"unexpected reply to publish: {reply!r:.100} ({exc})")
            if callback is not None:
                callback(position, error)
            elif error is not None:
                logger.warning("wsloop: publish to %r failed: %s", name, error)

        args = (pubsub, kind, raw, self.history, self.ttl, os.urandom(6).hex())
        self._eval(PUBLISH, _PUBLISH_SHA, (meta, stream), args, done)

    def _eval(
        self,
        script: str,
        sha: str,
        keys: tuple[str, ...],
        args: tuple[str | bytes | int, ...],
        callback: Reply,
    ) -> None:
        """EVALSHA, or EVAL once if Redis does not have the script yet."""

        def first(reply: Any, error: BaseException | None) -> None:
            if isinstance(error, RedisReplyError) and str(error).startswith("NOSCRIPT"):
                try:
                    self._conn.command("EVAL", script, len(keys), *keys, *args, callback=callback)
                except BrokerUnavailable as exc:
                    callback(None, exc)
                return
            callback(reply, error)

        try:
            self._conn.command("EVALSHA", sha, len(keys), *keys, *args, callback=first)
        except BrokerUnavailable as exc:
            # Later, as a reply would come: never inside publish() (where a
            # callback that publishes again would recurse).
            self.loop.call_soon(callback, None, exc)

    # -- subscriptions ------------------------------------------------------

    def _start(self, channel: Channel, sub: Subscription) -> None:
        self._fanout.start_sync(sub)
        if channel.remote == "":
            _, _, pubsub = channel_keys(self.prefix, channel.name)
            self._pubsub[pubsub.encode()] = channel.name
            if self._subscribe_remote([pubsub]):
                channel.remote = "subscribing"
            # else: subscribed with every other channel once connected
        elif channel.remote == "subscribed":
            if sub.position is None and channel.head is not None:
                self._fanout.finish_sync(sub, sub._sync, channel.head, [], None)
            else:
                self._read(channel, [sub], sub.position)
        # "subscribing": brought up to date with the others once subscribed

    def _stop(self, channel: Channel) -> None:
        _, _, pubsub = channel_keys(self.prefix, channel.name)
        self._pubsub.pop(pubsub.encode(), None)
        if channel.remote:
            self._conn.send_subscription("UNSUBSCRIBE", pubsub)
        channel.remote = ""

    def _on_ready(self) -> None:
        """Connected (again): subscribe to every channel with subscribers here."""
        names = []
        for channel in self._channels.values():
            channel.remote = "subscribing"
            names.append(channel_keys(self.prefix, channel.name)[2])
        for i in range(0, len(names), 1000):
            self._subscribe_remote(names[i : i + 1000])

    def _subscribe_remote(self, names: list[str]) -> bool:
        """SUBSCRIBE ``names``. Redis refuses the whole command if it refuses
        one channel (an ACL): then each is tried alone, and the subscribers
        of one that is refused are told (a gap) and left waiting; it is
        tried again when they resubscribe or the connection is made again."""

        def refused(error: BaseException) -> None:
            if len(names) > 1:
                for name in names:
                    self._subscribe_remote([name])
                return
            channel = self._channels.get(self._pubsub.get(names[0].encode(), ""))
            if channel is None or channel.remote != "subscribing":
                return
            channel.remote = ""
            reason = f"Redis refused to subscribe: {error}"
            logger.warning("wsloop: channel %r: %s", channel.name, reason)
            for sub in list(channel.subs.values()):
                self._fanout.report_gap(sub, reason, sub.position or Position(NO_EPOCH, 0))

        return self._conn.send_subscription("SUBSCRIBE", *names, on_error=refused)

    def _on_conn_state(self, state: str, detail: dict[str, Any]) -> None:
        if state != "connected":
            for channel in self._channels.values():
                channel.remote = ""
        self._set_state(state, detail)

    def _on_push(self, push: list[Any]) -> None:
        kind = push[0]
        if kind == b"message" and len(push) == 3:
            name = self._pubsub.get(push[1])
            channel = self._channels.get(name) if name is not None else None
            if channel is None or channel.remote != "subscribed":
                return  # not (or no longer, or not yet) ours
            try:
                position, data = parse_payload(push[2])
            except (ValueError, UnicodeDecodeError):
                logger.warning("wsloop: ignoring a malformed message on %r", push[1])
                return
            self._fanout.live(channel, position, data)
        elif kind == b"subscribe":
            name = self._pubsub.get(push[1])
            channel = self._channels.get(name) if name is not None else None
            if channel is not None and channel.remote == "subscribing":
                channel.remote = "subscribed"
                self._sync_channel(channel)

    def _sync_channel(self, channel: Channel) -> None:
        """Bring every subscription of ``channel`` up to date from history,
        one read per distinct position."""
        groups: dict[Position | None, list[Subscription]] = {}
        for sub in channel.subs.values():
            self._fanout.start_sync(sub)
            groups.setdefault(sub.position, []).append(sub)
        for start, subs in groups.items():
            self._read(channel, subs, start)

    def _read(self, channel: Channel, subs: list[Subscription], start: Position | None) -> None:
        meta, stream, _ = channel_keys(self.prefix, channel.name)
        tokens = [(sub, sub._sync) for sub in subs]
        since = -1 if start is None else 0 if start.epoch == NO_EPOCH else start.offset
        limit = self.history * 2 + 200

        def done(reply: Any, error: BaseException | None) -> None:
            if isinstance(error, BrokerUnavailable):
                return  # the connection was lost: every channel is read again on reconnect
            gap = None
            entries: list[tuple[Position, str | bytes]] = []
            head = Position(NO_EPOCH, 0)
            if error is None:
                try:
                    epoch = NO_EPOCH if reply[0] is None else bytes(reply[0]).decode("ascii")
                    head = Position(epoch, int(reply[1]))
                    if start is not None and start.epoch in (NO_EPOCH, epoch):
                        entries = _decode_entries(epoch, reply[2])
                except (TypeError, ValueError, IndexError) as exc:
                    error = exc
            if error is not None:
                gap = f"history could not be read: {error}"
                logger.warning("wsloop: reading the history of %r failed: %s", channel.name, error)
            elif start is not None:
                first = entries[0][0].offset if entries else None
                gap = replay_gap(start, head, first, len(entries), limit)
            current = channel.head
            if current is None or current.epoch != head.epoch or current.offset < head.offset:
                channel.head = head
            for sub, token in tokens:
                self._fanout.finish_sync(sub, token, head, entries, gap)

        self._eval(READ, _READ_SHA, (meta, stream), (since, limit), done)

    def _shutdown(self) -> None:
        self._conn.close()
