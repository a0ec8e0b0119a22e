"""The few helper threads wsloop uses, shared and short-lived, and how
other threads learn that a client or server is done.

DNS lookups run on a small pool (``wsloop-dns``, at most 8 threads) and
"has the loop run yet?" deadlines on one timer thread
(``wsloop-watchdog``). Both start on demand and end once idle, so a
program that has closed its connections has no wsloop threads left, and
10,000 connects do not mean 10,000 threads. :class:`Completion` is the
``closed``/``wait_closed``/``add_done_callback`` of clients and servers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Completion", "Deadline", "resolver_pool", "watchdog"]

logger = logging.getLogger("wsloop")


class Completion:
    """Something that finishes once (a client, a server): a flag any thread
    can test or wait for, and callbacks run on the loop's thread when it
    finishes (at once, through the loop, if it already has)."""

    def __init__(self, call_in_loop: Callable[..., object], what: str) -> None:
        self._call_in_loop = call_in_loop
        self._what = what
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    def add_callback(self, fn: Callable[[], object]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        self._call_in_loop(fn)

    def finish(self) -> None:
        """On the loop's thread: done; run the callbacks."""
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn()
            except Exception:
                logger.exception("exception in a %s done callback", self._what)


class WorkerPool:
    """Runs functions on at most ``limit`` threads that exit when idle."""

    def __init__(self, name: str, limit: int = 8, idle: float = 0.5) -> None:
        self.name = name
        self.limit = limit
        self.idle = idle
        self._jobs: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._threads = 0
        self._waiting = 0

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        with self._cond:
            self._jobs.append((fn, args))
            if self._waiting:
                self._cond.notify()
                return
            if self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._waiting += 1
                    self._cond.wait(self.idle)
                    self._waiting -= 1
                if not self._jobs:
                    self._threads -= 1
                    return
                fn, args = self._jobs.popleft()
            fn(*args)


class Deadline:
    """A watchdog entry; :meth:`cancel` before it is due and it never fires."""

    __slots__ = ("cancelled", "fn", "owner", "when")

    def __init__(self, owner: Watchdog, when: float, fn: Callable[[], object]) -> None:
        self.owner = owner
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        with self.owner._cond:
            self.cancelled = True
            self.owner._cond.notify()  # let the thread prune it, and end if idle


class Watchdog:
    """One thread that calls functions at deadlines, for checks that must
    work even when no event loop is running."""

    def __init__(self, name: str = "wsloop-watchdog") -> None:
        self.name = name
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running = False

    def after(self, delay: float, fn: Callable[[], object]) -> Deadline:
        entry = Deadline(self, time.monotonic() + delay, fn)
        with self._cond:
            heapq.heappush(self._heap, (entry.when, next(self._seq), entry))
            if self._running:
                self._cond.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return entry

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._running = False
                    return
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)[2]
            entry.fn()


resolver_pool = WorkerPool("wsloop-dns")
watchdog = Watchdog()
