"""wsloop's own loop on :mod:`selectors` (epoll/kqueue), for programs that
have no loop of their own. Like libwebsockets' service loop, but level-
triggered and with the same guarantees as every other backend."""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import Loop, run_ready

__all__ = ["BuiltinLoop"]

_R = selectors.EVENT_READ
_W = selectors.EVENT_WRITE


class _Timer:
    __slots__ = ("fire", "live", "when")

    def __init__(self, when: float, fire: Callable[[], None]) -> None:
        self.when = when
        self.fire = fire
        self.live = True


class BuiltinLoop(Loop):
    """A loop wsloop owns: ``run()`` until ``stop()``."""

    name = "builtin"

    def __init__(self) -> None:
        super().__init__(owned=True)
        self._selector = selectors.DefaultSelector()
        self._ready: deque[list[Any]] = deque()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._dead_timers = 0
        self._seq = itertools.count()
        self._io: dict[int, list[Callable[[], None] | None]] = {}  # fd -> [read, write]
        self._running = False
        self._stopping = False
        self._init_waker()

    # -- native operations --------------------------------------------------

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        slots = self._io.get(fd)
        if slots is None:
            slots = self._io[fd] = [None, None]
            slots[writable] = fire
            self._selector.register(fd, _W if writable else _R, slots)
        else:
            slots[writable] = fire
            self._selector.modify(fd, self._mask(slots), slots)
        return (fd, writable)

    def _io_stop(self, token: Any) -> None:
        fd, writable = token
        slots = self._io.get(fd)
        if slots is None:
            return
        slots[writable] = None
        mask = self._mask(slots)
        if mask:
            self._selector.modify(fd, mask, slots)
        else:
            del self._io[fd]
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    @staticmethod
    def _mask(slots: list[Callable[[], None] | None]) -> int:
        return (_R if slots[0] else 0) | (_W if slots[1] else 0)

    def _soon(self, fire: Callable[[], None]) -> Any:
        entry = [fire]
        self._ready.append(entry)
        return entry

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        timer = _Timer(self.time() + delay, fire)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def _unschedule(self, token: Any) -> None:
        if isinstance(token, _Timer):
            if token.live:
                token.live = False
                self._dead_timers += 1
                if self._dead_timers > 64 and self._dead_timers * 2 > len(self._timers):
                    self._timers = [t for t in self._timers if t[2].live]
                    heapq.heapify(self._timers)
                    self._dead_timers = 0
        else:
            token[0] = None

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)

        def drain() -> None:
            try:
                while r.recv(4096):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            fire()

        token = self._io_start(r.fileno(), False, drain)
        return (r, w, token)

    def _waker_send(self, waker: Any) -> None:
        try:
            waker[1].send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # already full: the loop will wake anyway
        except OSError:
            pass  # closed concurrently with close()

    def _waker_stop(self, waker: Any) -> None:
        r, w, token = waker
        self._io_stop(token)
        r.close()
        w.close()

    def is_running(self) -> bool:
        return self._running

    def _run(self) -> None:
        self._running = True
        self._stopping = False
        try:
            while not self._stopping:
                self.run_once()
        finally:
            self._running = False
            self._stopping = False

    def _stop(self) -> None:
        self._stopping = True

    def _release(self) -> None:
        self._selector.close()
        self._io.clear()
        self._ready.clear()
        self._timers.clear()

    # -- one iteration --------------------------------------------------------

    def run_once(self, timeout: float | None = None) -> None:
        """Wait for I/O or timers (at most ``timeout`` s) and run what is due."""
        if self._ready:
            wait: float | None = 0.0
        elif self._timers:
            wait = max(0.0, self._timers[0][0] - self.time())
            if timeout is not None:
                wait = min(wait, timeout)
        else:
            wait = timeout
        if self._io:
            for key, mask in self._selector.select(wait):
                slots = key.data
                if mask & _R and slots[0] is not None:
                    slots[0]()
                if mask & _W and slots[1] is not None:
                    slots[1]()
        elif wait:
            self._selector.select(wait)
        timers = self._timers
        if timers:
            now = self.time()
            ready = self._ready
            while timers and timers[0][0] <= now:
                timer = heapq.heappop(timers)[2]
                if timer.live:
                    timer.live = False
                    ready.append([timer.fire])
                else:
                    self._dead_timers -= 1
        ready = self._ready
        run_ready(ready)
