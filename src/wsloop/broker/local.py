"""The in-process broker: channels within one process, no Redis.

For one server process, and for testing an application's use of channels
without Redis. It keeps the same history semantics as the Redis broker:
each channel has an epoch (chosen when its history starts, so a new
process means a new epoch) and an offset per message, and keeps its last
``history`` messages for ``since=`` resumes, until ``ttl`` seconds after
its last publish (then its next publish starts a new epoch).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Any

from ..loops import Loop
from .base import DEFAULT_HISTORY, DEFAULT_TTL, Broker, PublishCallback
from .errors import BrokerUnavailable
from .fanout import Channel, Subscription, replay_gap
from .feed import Position

__all__ = ["LocalBroker"]


class _History:
    __slots__ = ("entries", "epoch", "offset", "touched")

    def __init__(self, history: int, now: float) -> None:
        self.epoch = os.urandom(6).hex()
        self.offset = 0
        self.touched = now
        self.entries: deque[tuple[Position, str | bytes]] = deque(maxlen=history or 1)


class LocalBroker(Broker):
    """Channels in this process (see :class:`~wsloop.broker.Broker` for the
    options). Its state is always ``connected`` until closed (``down``)."""

    def __init__(
        self,
        *,
        loop: Loop,
        history: int = DEFAULT_HISTORY,
        ttl: int = DEFAULT_TTL,
        envelope: bool = False,
        policy: str | None = None,
        on_gap: Callable[[Subscription, str], object] | None = None,
        on_state: Callable[[Broker, str, dict[str, Any]], object] | None = None,
    ) -> None:
        super().__init__(
            loop,
            history=history,
            envelope=envelope,
            policy=policy,
            on_gap=on_gap,
            on_state=on_state,
        )
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError(f"ttl must be an int >= 0 (seconds; 0: forever), not {ttl!r}")
        self.ttl = ttl
        self._histories: dict[str, _History] = {}
        self._sweep_at = 1024  # histories held when expired ones are next dropped
        self._ready.set()

    @property
    def state(self) -> str:
        return "down" if self._closed else "connected"

    def _history(self, name: str) -> _History | None:
        hist = self._histories.get(name)
        if hist is not None and self.ttl and self.loop.time() - hist.touched > self.ttl:
            del self._histories[name]
            return None
        return hist

    def _sweep(self) -> None:
        """Drop expired histories, so that channels no longer published to
        do not accumulate."""
        if self.ttl:
            now = self.loop.time()
            for name in [n for n, h in self._histories.items() if now - h.touched > self.ttl]:
                del self._histories[name]
        self._sweep_at = max(1024, 2 * len(self._histories))

    def _head(self, name: str) -> tuple[_History | None, Position]:
        hist = self._history(name)
        if hist is None:
            return None, Position("", 0)
        return hist, Position(hist.epoch, hist.offset)

    def _start(self, channel: Channel, sub: Subscription) -> None:
        hist, head = self._head(channel.name)
        token = self._fanout.start_sync(sub)
        start = sub.position
        entries: list[tuple[Position, str | bytes]] = []
        gap = None
        if start is not None and hist is not None and self.history:
            since = start.offset if start.epoch == hist.epoch else 0
            entries = [e for e in hist.entries if e[0].offset > since]
        if start is not None:
            first = entries[0][0].offset if entries else None
            gap = replay_gap(start, head, first, len(entries), None)
        self._fanout.finish_sync(sub, token, head, entries, gap)

    def _stop(self, channel: Channel) -> None:
        pass  # the history stays: a later subscriber may resume from it

    def _publish(self, name: str, data: str | bytes, callback: PublishCallback | None) -> None:
        if self._closed:
            if callback is not None:
                self.loop.call_soon(callback, None, BrokerUnavailable("the broker is closed"))
            return
        hist = self._history(name)
        if hist is None:
            if len(self._histories) >= self._sweep_at:
                self._sweep()
            hist = self._histories[name] = _History(self.history, self.loop.time())
        hist.offset += 1
        hist.touched = self.loop.time()
        position = Position(hist.epoch, hist.offset)
        if self.history:
            hist.entries.append((position, data))
        channel = self._channels.get(name)
        if channel is not None:
            self._fanout.live(channel, position, data)
        if callback is not None:
            # Later, as a reply from Redis would be: never inside publish().
            self.loop.call_soon(callback, position, None)

    def _shutdown(self) -> None:
        self._histories.clear()
        self._set_state("down", {"reason": "closed"})
