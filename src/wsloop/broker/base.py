"""The broker interface every backend implements, and what they share.

A broker connects publishers to the connections subscribed to a channel.
Its methods may be called from any thread; its work happens on its loop's
thread (the loop of the server whose connections subscribe). Backends
(:mod:`.local`, :mod:`.redis`) say how a message gets from ``publish`` to
every process that has subscribers, and how history is kept and read.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ..loops import Loop
from ..websocket import WebSocket
from .errors import BrokerError, BrokerUnavailable
from .fanout import Channel, Fanout, Subscription
from .feed import Position, parse_position

__all__ = ["Broker", "PublishCallback"]

logger = logging.getLogger("wsloop")

#: ``callback(position, error)``, on the loop's thread, once per publish.
PublishCallback = Callable[["Position | None", "BaseException | None"], object]

#: Recent messages kept per channel for resuming, unless ``history=`` says.
DEFAULT_HISTORY = 1000
#: Seconds a channel's history outlives its last publish.
DEFAULT_TTL = 3600


def check_channel(channel: Any) -> str:
    if not isinstance(channel, str):
        raise TypeError(f"a channel name is a str, not {type(channel).__name__}")
    if not channel or len(channel) > 1024 or any(c in channel for c in "{}\r\n"):
        raise ValueError(
            f"a channel name is 1 to 1024 characters, without braces or line breaks: {channel!r}"
        )
    return channel


def check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{}\r\n"):
        raise ValueError(
            f"prefix must be a non-empty str without braces or line breaks, not {prefix!r}"
        )
    return prefix


def check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
    return float(value)


def check_message(message: Any) -> str | bytes:
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    if not isinstance(message, (str, bytes)):
        raise TypeError(f"publish() takes a str or bytes message, not {type(message).__name__}")
    return message


class Broker(ABC):
    """Channels of messages, delivered to the connections subscribed to them.

    Made by :func:`wsloop.broker.open_broker` (or as :class:`LocalBroker` /
    :class:`RedisBroker`). Options every backend has:

    - ``loop``: the loop of the server whose connections will subscribe.
    - ``history``: how many recent messages of each channel are kept for
      resuming (0: none).
    - ``envelope``: deliver each message as a JSON envelope (channel,
      epoch, offset, data: :func:`encode_envelope`) rather than as
      published.
    - ``policy``: ``"skip"`` or ``"close"`` for a subscriber over its
      ``write_limit``; None: its server's ``broadcast_policy``.
    - ``on_gap(subscription, reason)``: a subscription's position could not
      be served, or its channel's history was lost.
    - ``on_state(broker, state, detail)``: the broker's :attr:`state` changed.
    """

    def __init__(
        self,
        loop: Loop,
        *,
        history: int = DEFAULT_HISTORY,
        envelope: bool = False,
        policy: str | None = None,
        on_gap: Callable[[Subscription, str], object] | None = None,
        on_state: Callable[[Broker, str, dict[str, Any]], object] | None = None,
    ) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be an int >= 0, not {history!r}")
        if policy not in (None, "skip", "close"):
            raise ValueError(f"policy must be None, 'skip' or 'close', not {policy!r}")
        for name, fn in (("on_gap", on_gap), ("on_state", on_state)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function or None, not {type(fn).__name__}")
        self.loop = loop
        self.history = history
        self.envelope = bool(envelope)
        self.on_state = on_state
        self._fanout = Fanout(envelope=self.envelope, policy=policy, on_gap=on_gap)
        self._channels: dict[str, Channel] = {}
        self._by_ws: dict[WebSocket, dict[str, Subscription]] = {}
        self._closed = False
        self._ready = threading.Event()
        # Told every state change, on the loop's thread (the front-ends' waits).
        self._listeners: list[Callable[[str], object]] = []

    # -- what every front-end calls (any thread) ------------------------------

    @property
    @abstractmethod
    def state(self) -> str:
        """``connecting``, ``connected``, ``reconnecting`` or ``down``."""

    def subscribe(self, ws: Any, channel: str, since: Any = None) -> Subscription:
        """Deliver ``channel``'s messages to ``ws`` (a connection of a server
        on this broker's loop, from any front-end) from now on; with
        ``since=(epoch, offset)`` (or ``"EPOCH:OFFSET"``) first the messages
        after that position that history still holds, with no gap and no
        duplicate. If that position cannot be served the subscription says
        so (``gap``, ``on_gap``, and a gap notice with ``envelope``) and
        continues live. Subscribing again to the same channel replaces the
        subscription. Closing the connection ends its subscriptions."""
        conn = self._websocket(ws)
        check_channel(channel)
        position = None if since is None else parse_position(since)
        if self._closed:
            raise BrokerError("the broker is closed")
        sub = Subscription(conn, channel, position)
        self.loop.call_in_loop(self._subscribe, sub)
        return sub

    def unsubscribe(self, ws: Any, channel: str) -> None:
        """Stop delivering ``channel`` to ``ws``; harmless if not subscribed."""
        conn = self._websocket(ws)
        check_channel(channel)
        self.loop.call_in_loop(self._unsubscribe, conn, channel)

    def subscriptions(self, ws: Any) -> list[Subscription]:
        """``ws``'s subscriptions (loop thread)."""
        return list(self._by_ws.get(self._websocket(ws), {}).values())

    def wait_live(self, subscription: Subscription, timeout: float | None = None) -> bool:
        """Block until ``subscription`` is live (its replay done); False if
        ``timeout`` passed first or it ended. Not on the loop's thread; there,
        use ``subscription.add_live_callback``."""
        return subscription.wait_live(timeout)

    def publish(
        self, channel: str, message: str | bytes, callback: PublishCallback | None = None
    ) -> None:
        """Publish ``message`` (str: text, bytes: binary) to ``channel``, from
        any thread; never blocks. ``callback(position, error)`` follows on
        the loop's thread. Raises :class:`BrokerUnavailable` at once if the
        broker cannot publish now (Redis down)."""
        check_channel(channel)
        data = check_message(message)
        self._check_available()
        self.loop.call_in_loop(self._publish, channel, data, callback)

    def publish_wait(self, channel: str, message: str | bytes, timeout: float = 10.0) -> Position:
        """Publish and wait for its position; not on the loop's thread (it
        must run meanwhile). Raises :class:`BrokerUnavailable` if it could
        not be published."""
        if self.loop.in_loop_thread():
            raise RuntimeError("publish_wait() would block the loop; use publish(..., callback)")
        done = threading.Event()
        result: list[Any] = []

        def finished(position: Position | None, error: BaseException | None) -> None:
            result.append((position, error))
            done.set()

        self.publish(channel, message, finished)
        if not done.wait(timeout):
            raise BrokerUnavailable(f"publish to {channel!r}: no answer within {timeout}s")
        position, error = result[0]
        if error is not None:
            raise error
        assert position is not None
        return position  # type: ignore[no-any-return]

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the broker is connected (at once for the in-process
        one); False if ``timeout`` passed first. Not on the loop's thread."""
        return self._ready.wait(timeout)

    def close(self) -> None:
        """End every subscription and disconnect; safe from any thread."""
        self._closed = True
        self.loop.call_in_loop(self._close)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # -- on the loop ------------------------------------------------------

    def _websocket(self, ws: Any) -> WebSocket:
        conn = ws if isinstance(ws, WebSocket) else getattr(ws, "ws", None)
        if not isinstance(conn, WebSocket):
            raise TypeError(
                f"subscribe() takes a server connection (WebSocket, AioWebSocket, "
                f"SyncWebSocket), not {type(ws).__name__}"
            )
        if conn.loop is not self.loop:
            raise ValueError(
                f"this connection runs on {conn.loop!r} but the broker on {self.loop!r}: "
                "open the broker with the server's loop"
            )
        return conn

    def _subscribe(self, sub: Subscription) -> None:
        ws = sub.ws
        if self._closed or ws.closed:
            sub.active = False
            sub._went_live()
            return
        subs = self._by_ws.get(ws)
        if subs is None:
            subs = self._by_ws[ws] = {}
            ws.add_close_callback(self._ws_closed)
        old = subs.get(sub.channel)
        subs[sub.channel] = sub
        channel = self._channels.get(sub.channel)
        if channel is None:
            channel = self._channels[sub.channel] = Channel(sub.channel)
        channel.subs[ws] = sub  # in place of ``old``: the channel stays subscribed
        if old is not None:
            self._end(old)
        self._start(channel, sub)

    def _unsubscribe(self, ws: WebSocket, name: str) -> None:
        subs = self._by_ws.get(ws)
        sub = subs.pop(name, None) if subs is not None else None
        if sub is not None:
            self._remove(sub)

    def _ws_closed(self, ws: WebSocket) -> None:
        for sub in list(self._by_ws.pop(ws, {}).values()):
            self._remove(sub)

    def _end(self, sub: Subscription) -> None:
        sub.active = False
        sub._held = None
        sub._went_live()  # waiters learn it ended

    def _remove(self, sub: Subscription) -> None:
        self._end(sub)
        channel = self._channels.get(sub.channel)
        if channel is None or channel.subs.get(sub.ws) is not sub:
            return
        del channel.subs[sub.ws]
        if not channel.subs:
            del self._channels[channel.name]
            self._stop(channel)

    def _close(self) -> None:
        for ws in list(self._by_ws):
            self._ws_closed(ws)
        self._shutdown()

    def _set_state(self, state: str, detail: dict[str, Any]) -> None:
        if state == "connected":
            self._ready.set()
        else:
            self._ready.clear()
        for listener in list(self._listeners):
            listener(state)
        if self.on_state is not None:
            try:
                self.on_state(self, state, detail)
            except Exception:
                logger.exception("exception in a broker's on_state")

    # -- what a backend provides ----------------------------------------------

    def _check_available(self) -> None:
        """Raise :class:`BrokerUnavailable` if a publish cannot be made now."""
        if self._closed:
            raise BrokerUnavailable("the broker is closed")

    @abstractmethod
    def _start(self, channel: Channel, sub: Subscription) -> None:
        """``sub`` just joined ``channel``: start its delivery (and replay)."""

    @abstractmethod
    def _stop(self, channel: Channel) -> None:
        """``channel`` has no subscriber left here."""

    @abstractmethod
    def _publish(self, channel: str, data: str | bytes, callback: PublishCallback | None) -> None:
        """Publish on the loop's thread."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Release what the backend holds."""
