"""The broker seen from blocking code: :func:`wsloop.sync.open_broker`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Broker
from .fanout import Subscription
from .feed import Position

__all__ = ["SyncBroker"]


class SyncBroker:
    """A :class:`~wsloop.broker.Broker` on the loop thread that
    :func:`wsloop.sync.serve` runs connections on, with the same names:
    ``subscribe`` and ``unsubscribe`` take a
    :class:`~wsloop.sync.SyncWebSocket`, ``publish`` blocks until the
    broker has the message."""

    def __init__(self, broker: Broker, release: Callable[[], object]) -> None:
        #: The callback API's broker underneath.
        self.broker = broker
        self._release: Callable[[], object] | None = release

    @property
    def state(self) -> str:
        """``connecting``, ``connected``, ``reconnecting`` or ``down``."""
        return self.broker.state

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.broker.closed

    def subscribe(self, ws: Any, channel: str, since: Any = None) -> Subscription:
        """See :meth:`wsloop.broker.Broker.subscribe`."""
        return self.broker.subscribe(ws, channel, since)

    def wait_live(self, subscription: Subscription, timeout: float | None = None) -> bool:
        """Block until ``subscription`` is live (its replay done); False if
        ``timeout`` passed first or it ended."""
        return subscription.wait_live(timeout)

    def subscriptions(self, ws: Any) -> list[Subscription]:
        """``ws``'s subscriptions (see :meth:`wsloop.broker.Broker.subscriptions`)."""
        return self.broker.subscriptions(ws)

    def unsubscribe(self, ws: Any, channel: str) -> None:
        """See :meth:`wsloop.broker.Broker.unsubscribe`."""
        self.broker.unsubscribe(ws, channel)

    def publish(self, channel: str, message: str | bytes, timeout: float = 10.0) -> Position:
        """Publish and return the message's position; raises
        :class:`~wsloop.broker.BrokerUnavailable` if it could not be."""
        return self.broker.publish_wait(channel, message, timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the broker is connected; False if ``timeout`` passed first."""
        return self.broker.wait_ready(timeout)

    def close(self) -> None:
        """End every subscription and disconnect."""
        self.broker.close()
        # The loop thread is released once the broker is down (decided on
        # that thread, where its state changes).
        self.broker.loop.call_in_loop(self._release_when_down)

    def _release_when_down(self) -> None:
        if self.broker.state == "down":
            self._release_now()
        else:
            self.broker._listeners.append(
                lambda state: self._release_now() if state == "down" else None
            )

    def _release_now(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> SyncBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncBroker {self.broker!r}>"
