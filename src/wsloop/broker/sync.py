"""The broker seen from blocking code: :func:`wsloop.sync.open_broker`."""

from __future__ import annotations

from collections.abc import Callable

from ._view import BrokerView
from .base import Broker
from .fanout import Subscription
from .feed import Position

__all__ = ["SyncBroker"]


class SyncBroker(BrokerView):
    """A :class:`~wsloop.broker.Broker` on the loop thread that
    :func:`wsloop.sync.serve` runs connections on, with the same names:
    ``subscribe`` and ``unsubscribe`` take a
    :class:`~wsloop.sync.SyncWebSocket`, ``publish`` blocks until the
    broker has the message."""

    def __init__(self, broker: Broker, release: Callable[[], object]) -> None:
        super().__init__(broker)
        self._release: Callable[[], object] | None = release

    def wait_live(self, subscription: Subscription, timeout: float | None = None) -> bool:
        """Block until ``subscription`` is live (its replay done); False if
        ``timeout`` passed first or it ended."""
        return subscription.wait_live(timeout)

    def publish(self, channel: str, message: str | bytes, timeout: float = 10.0) -> Position:
        """Publish and return the message's position; raises
        :class:`~wsloop.broker.BrokerUnavailable` if it could not be."""
        return self.broker.publish_wait(channel, message, timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the broker is connected; False if ``timeout`` passed first."""
        return self.broker.wait_ready(timeout)

    def close(self) -> None:
        """End every subscription and disconnect."""
        super().close()
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
