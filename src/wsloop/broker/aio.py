"""The broker seen from asyncio: :func:`wsloop.aio.open_broker`."""

from __future__ import annotations

import asyncio
from typing import Any

from ._view import BrokerView
from .fanout import Subscription
from .feed import Position

__all__ = ["AioBroker"]


class AioBroker(BrokerView):
    """A :class:`~wsloop.broker.Broker` on the running asyncio (or uvloop)
    loop, with the same names: ``subscribe`` and ``unsubscribe`` take an
    :class:`~wsloop.aio.AioWebSocket`, ``publish`` is awaited."""

    async def wait_live(self, subscription: Subscription, timeout: float | None = None) -> bool:
        """Wait until ``subscription`` is live (its replay done); False if
        ``timeout`` passed first or it ended."""
        live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        subscription.add_live_callback(lambda: None if live.done() else live.set_result(None))
        try:
            await asyncio.wait_for(live, timeout)
        except asyncio.TimeoutError:
            return False
        return subscription.live

    async def publish(self, channel: str, message: str | bytes) -> Position:
        """Publish; returns the message's position once the broker has it.
        Raises :class:`~wsloop.broker.BrokerUnavailable` if it could not."""
        future: asyncio.Future[Position] = asyncio.get_running_loop().create_future()

        def done(position: Position | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(position)  # type: ignore[arg-type]

        self.broker.publish(channel, message, done)
        return await future

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the broker is connected; False if ``timeout`` passed first."""
        if self.broker._ready.is_set():
            return True
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def changed(state: str) -> None:
            if state == "connected" and not ready.done():
                ready.set_result(None)

        self.broker._listeners.append(changed)
        try:
            await asyncio.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.broker._listeners.remove(changed)
        return True


def open_aio_broker(url: str | None = None, **options: Any) -> AioBroker:
    from . import open_broker

    if "loop" in options:
        raise TypeError("wsloop.aio.open_broker() runs on the running loop: pass no loop=")
    asyncio.get_running_loop()  # RuntimeError outside a coroutine, as asyncio says
    return AioBroker(open_broker(url, loop=None, **options))
