"""What the asyncio and blocking brokers share: the calls that need no
waiting, forwarded to the callback API's :class:`~wsloop.broker.Broker`."""

from __future__ import annotations

from typing import Any

from .base import Broker
from .fanout import Subscription

__all__ = ["BrokerView"]


class BrokerView:
    """A front-end's view of a :class:`~wsloop.broker.Broker`; the
    subclasses add the calls that wait (``publish``, ``wait_ready``,
    ``wait_live``) in their front-end's way."""

    def __init__(self, broker: Broker) -> None:
        #: The callback API's broker underneath.
        self.broker = broker

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

    def subscriptions(self, ws: Any) -> list[Subscription]:
        """``ws``'s subscriptions (see :meth:`wsloop.broker.Broker.subscriptions`)."""
        return self.broker.subscriptions(ws)

    def unsubscribe(self, ws: Any, channel: str) -> None:
        """See :meth:`wsloop.broker.Broker.unsubscribe`."""
        self.broker.unsubscribe(ws, channel)

    def close(self) -> None:
        """End every subscription and disconnect."""
        self.broker.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.broker!r}>"
