"""Channels, publish and subscribe, within one process or across many
through Redis, with history and gap-free resume (docs/scaling-out.md).

The callback API (asyncio: :func:`wsloop.aio.open_broker`, blocking:
:func:`wsloop.sync.open_broker`, with the same method names)::

    import wsloop
    from wsloop.broker import open_broker

    loop = wsloop.default_loop()
    broker = open_broker("redis://127.0.0.1:6379/0", loop=loop, history=1000)

    def on_open(ws):
        broker.subscribe(ws, "feed", since=None)   # or since=(epoch, offset)

    server = wsloop.serve(on_open=on_open, port=8765, loop=loop)
    broker.publish("feed", "hello")               # from any thread

and from a plain script, no loop::

    wsloop.broker.publish("redis://127.0.0.1:6379/0", "feed", "hello")
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Callable
from typing import Any

from ..options import Reconnect
from .base import DEFAULT_HISTORY, DEFAULT_TTL, Broker, PublishCallback
from .blocking import Publisher, publish
from .errors import BrokerError, BrokerUnavailable, RedisReplyError
from .fanout import Subscription
from .feed import FeedMessage, Position, decode_envelope, encode_envelope, parse_position
from .local import LocalBroker
from .redis_broker import RedisBroker

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_TTL",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "FeedMessage",
    "LocalBroker",
    "Position",
    "PublishCallback",
    "Publisher",
    "RedisBroker",
    "RedisReplyError",
    "Subscription",
    "decode_envelope",
    "encode_envelope",
    "open_broker",
    "parse_position",
    "publish",
]


def open_broker(
    url: str | None = None,
    *,
    loop: Any = None,
    history: int = DEFAULT_HISTORY,
    envelope: bool = False,
    policy: str | None = None,
    on_gap: Callable[[Subscription, str], object] | None = None,
    on_state: Callable[[Broker, str, dict[str, Any]], object] | None = None,
    ttl: int = DEFAULT_TTL,
    prefix: str = "wsloop",
    reconnect: Reconnect | None = None,
    ssl: _ssl.SSLContext | None = None,
    ping_interval: float = 5.0,
    timeout: float = 5.0,
) -> Broker:
    """A broker on ``loop`` (given as for :func:`wsloop.serve`: the server's).

    ``url`` None or ``"memory://"``: the in-process :class:`LocalBroker`;
    ``redis://[user:password@]host:port/db`` or ``rediss://``: a
    :class:`RedisBroker` (needs ``pip install 'wsloop[redis]'``; it
    connects once the loop runs, and keeps reconnecting). The other
    options are described on :class:`Broker` and :class:`RedisBroker`.
    """
    from .. import _loop

    target = _loop(loop)
    if url is None or url == "memory://":
        return LocalBroker(
            loop=target,
            history=history,
            ttl=ttl,
            envelope=envelope,
            policy=policy,
            on_gap=on_gap,
            on_state=on_state,
        )
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or None, not {type(url).__name__}")
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"a broker URL is memory://, redis:// or rediss://, not {url!r}")
    return RedisBroker(
        url,
        loop=target,
        history=history,
        envelope=envelope,
        policy=policy,
        on_gap=on_gap,
        on_state=on_state,
        ttl=ttl,
        prefix=prefix,
        reconnect=reconnect,
        ssl=ssl,
        ping_interval=ping_interval,
        timeout=timeout,
    )
