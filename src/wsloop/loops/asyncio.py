"""Any asyncio event loop, running or not yet running; uvloop included."""

from __future__ import annotations

import asyncio as _asyncio
from collections.abc import Callable
from typing import Any

from .base import Loop

__all__ = ["AsyncioLoop"]


class AsyncioLoop(Loop):
    """Adapts an :class:`asyncio.AbstractEventLoop` (a new one if None)."""

    name = "asyncio"

    def __init__(
        self, loop: _asyncio.AbstractEventLoop | None = None, *, owned: bool | None = None
    ) -> None:
        """``owned`` (default: whether ``loop`` is None) makes :meth:`close`
        close the native loop too."""
        native = loop if loop is not None else _asyncio.new_event_loop()
        super().__init__(owned=loop is None if owned is None else owned, native=native)
        self.native: _asyncio.AbstractEventLoop = native
        if type(self.native).__module__.startswith("uvloop"):
            self.name = "uvloop"
        self._init_waker()

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        if writable:
            self.native.add_writer(fd, fire)
        else:
            self.native.add_reader(fd, fire)
        return (fd, writable)

    def _io_stop(self, token: Any) -> None:
        fd, writable = token
        if self.native.is_closed():
            return
        if writable:
            self.native.remove_writer(fd)
        else:
            self.native.remove_reader(fd)

    def _soon(self, fire: Callable[[], None]) -> Any:
        return self.native.call_soon(fire)

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        return self.native.call_later(delay, fire)

    def _unschedule(self, token: Any) -> None:
        token.cancel()

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        return fire

    def _waker_send(self, waker: Any) -> None:
        try:
            self.native.call_soon_threadsafe(waker)
        except RuntimeError:
            pass  # the native loop was closed; nothing can run anymore

    def _waker_stop(self, waker: Any) -> None:
        pass

    def is_running(self) -> bool:
        return self.native.is_running()

    def _run(self) -> None:
        try:
            self.native.run_forever()
        finally:
            if self._closed and self.owned:
                self.native.close()  # closed from a callback of this run

    def _stop(self) -> None:
        self.native.stop()

    def _release(self) -> None:
        if self.owned and not self.native.is_running():
            self.native.close()
