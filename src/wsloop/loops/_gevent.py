"""What the libev and libuv backends share: gevent's loop API.

gevent exposes libev and libuv through one interface (``io``, ``timer``,
``async_``, ``run_callback``). It is documented as low level and may change
between minor versions, so this adapter uses as little of it as it can and
the extras pin a tested range.

Two traps shape it. gevent's default error handler breaks the loop when a
callback raises; every callback here runs through :meth:`Loop._invoke`,
which never lets one escape, and loops wsloop creates get an error handler
that only logs. And gevent's libuv ``break_()`` does not return from
``run()`` while an io watcher is active, so a loop wsloop owns is driven one
iteration at a time (``run(once=True)``) until :meth:`stop` sets a flag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .base import Loop

__all__ = ["GeventLoop"]

logger = logging.getLogger("wsloop.loops")


class _LogErrors:
    """gevent error handler for loops wsloop creates: log, never break."""

    def handle_error(self, context: Any, type_: Any, value: Any, tb: Any) -> None:
        if value is None and type_ is not None:
            value = type_()
        logger.error("error in a gevent loop callback (%r)", context, exc_info=value)


class GeventLoop(Loop):
    """Base for the libev and libuv backends; ``native`` is a gevent loop."""

    def __init__(self, native: Any, owned: bool) -> None:
        super().__init__(owned=owned, native=native)
        self._stopping = False
        self._running = False
        if owned:
            native.error_handler = _LogErrors()
        self._init_waker()

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        watcher = self.native.io(fd, 2 if writable else 1)
        watcher.start(fire)
        return watcher

    def _io_stop(self, token: Any) -> None:
        token.stop()
        token.close()

    def _soon(self, fire: Callable[[], None]) -> Any:
        return self.native.run_callback(fire)

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        # libev and libuv measure timers from the loop's cached "now", which
        # is stale when the loop has not run for a while: refresh it, or the
        # timer fires early.
        self.native.update_now()
        timer = self.native.timer(delay)

        def once() -> None:
            timer.close()
            fire()

        timer.start(once)
        return timer

    def _unschedule(self, token: Any) -> None:
        token.stop()
        close = getattr(token, "close", None)
        if close is not None:
            close()

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        waker = self.native.async_()
        # An idle waker must not keep a foreign loop alive (its run() should
        # return once wsloop has nothing left to do), but a loop wsloop runs
        # itself must block on it rather than spin.
        waker.ref = self.owned
        waker.start(fire)
        return waker

    def _waker_send(self, waker: Any) -> None:
        # Work is queued: the loop must not exit before running it, even if
        # this is all there is (a connect made before the loop runs). The
        # flag is a plain counter update done under the GIL; the loop's
        # thread clears it again in _waker_idle.
        if not waker.ref:
            waker.ref = True
        waker.send()

    def _waker_idle(self, waker: Any) -> None:
        waker.ref = self.owned or self._running

    def _waker_stop(self, waker: Any) -> None:
        waker.stop()
        waker.close()

    def is_running(self) -> bool:
        if self._running:
            return True
        if self.owned and self._closed:
            return False  # the native loop is destroyed
        return bool(self.native.depth > 0)

    def _run(self) -> None:
        self._running = True
        self._stopping = False
        # Keep the loop blocking on the waker while we drive it.
        self._waker.ref = True
        try:
            while not self._stopping:
                self.native.run(once=True)
        finally:
            self._running = False
            self._stopping = False
            if self._waker is not None:
                self._waker.ref = self.owned
            if self._closed and self.owned:
                self.native.destroy()  # closed from a callback of this run

    def _stop(self) -> None:
        self._stopping = True
        waker = self._waker
        if waker is not None:
            waker.send()

    def _release(self) -> None:
        # Destroying the native loop under its own run() crashes the
        # process: a close() from a callback leaves it to the run's end.
        if self.owned and not self._in_run:
            self.native.destroy()
