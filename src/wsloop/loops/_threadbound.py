"""What the Qt and Tk backends share: native objects that belong to one thread.

A Qt ``QSocketNotifier`` or timer works only in the thread that owns it, and
a Tcl interpreter only in the thread that created it; GLib's contexts, by
contrast, can be run by any thread. wsloop's contract lets work be
registered before the loop first runs, from whichever thread, and lets a
loop wsloop owns run on any thread. So this base keeps every registration in
plain Python (a FIFO of ready callbacks, a heap of timers, a set of fd
watches) and creates the native objects only on the loop's thread:

* a loop wsloop owns is bound to the thread that calls :meth:`Loop.run`
  for the length of that run; its native objects are created when the run
  starts and destroyed before it returns, so :meth:`Loop.close` never has
  to touch them from another thread;
* an application's loop is bound to the application's thread for good;
  work registered from elsewhere before it runs is handed over through the
  thread-safe wake-up, and created when the loop's thread takes it.

Timers are one native one-shot timer for the earliest deadline, re-armed
as deadlines come and go; due timers run in deadline order, and one that
the native timer fires early (its clock rounds to milliseconds) waits for
the next arming. Ready callbacks run in batches: what a callback queues
runs on the next batch, after the loop has looked at its fds again; and
before any timer that comes due after they were queued.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import Loop, run_ready

__all__ = ["ThreadBoundLoop", "Watch"]


class Watch:
    """One fd watch: its callback and, on the loop's thread, its native object."""

    __slots__ = ("__weakref__", "fd", "fire", "native", "writable")  # PyQt6 weakrefs slots

    def __init__(self, fd: int, writable: bool, fire: Callable[[], None]) -> None:
        self.fd = fd
        self.writable = writable
        self.fire: Callable[[], None] | None = fire
        self.native: Any = None

    def dispatch(self, *_: object) -> None:
        fire = self.fire
        if fire is not None:  # a native event still queued after removal
            fire()


class ThreadBoundLoop(Loop):
    """Base for backends whose native objects may be used by one thread only."""

    def __init__(self, *, owned: bool, native: Any) -> None:
        super().__init__(owned=owned, native=native)
        #: The thread whose native objects exist now (None: none exist).
        self._bound: int | None = None
        self._ready: deque[list[Any]] = deque()
        self._ready_kicked = False
        self._timers: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()
        self._timer_due: float | None = None
        self._watches: set[Watch] = set()
        self._orphans: list[Any] = []  # native watches removed from another thread
        # self._in_run (Loop's): inside this adapter's own run(), which
        # unbinds, at its end, what a close() from a callback could not
        # destroy under it.

    # -- the native operations a thread-bound backend provides -------------

    @abstractmethod
    def _native_watch(self, watch: Watch) -> Any:
        """Start watching ``watch.fd``; call ``watch.dispatch`` while ready."""

    @abstractmethod
    def _native_unwatch(self, native: Any) -> None: ...

    @abstractmethod
    def _native_kick(self) -> None:
        """Call :meth:`_run_ready` soon, once."""

    @abstractmethod
    def _native_arm(self, ms: int) -> None:
        """Call :meth:`_run_timers` once, ``ms`` milliseconds from now."""

    @abstractmethod
    def _native_disarm(self) -> None: ...

    # -- binding -------------------------------------------------------------

    def _on_loop_thread(self) -> bool:
        return self._bound == threading.get_ident()

    def _bind(self) -> None:
        """Make this thread the loop's and create every native object
        registered so far (called on that thread)."""
        self._bound = threading.get_ident()
        self._sync()

    def _unbind(self) -> None:
        """Destroy every native object, keeping the registrations (called
        on the bound thread)."""
        for watch in self._watches:
            if watch.native is not None:
                self._native_unwatch(watch.native)
                watch.native = None
        self._bury_orphans()
        if self._timer_due is not None:
            self._native_disarm()
            self._timer_due = None
        self._ready_kicked = False
        self._bound = None

    def _sync(self) -> None:
        """Create what was registered from another thread (loop thread)."""
        self._bury_orphans()
        for watch in self._watches:
            if watch.native is None:
                watch.native = self._native_watch(watch)
        if self._ready and not self._ready_kicked:
            self._ready_kicked = True
            self._native_kick()
        self._arm_timers()

    def _bury_orphans(self) -> None:
        orphans, self._orphans = self._orphans, []
        for native in orphans:
            self._native_unwatch(native)

    def _hand_over(self) -> None:
        """Registration made off the loop's thread: let the loop's thread
        create it (a loop wsloop owns does so when its run starts)."""
        if not self.owned:
            self.call_soon_threadsafe(self._sync)

    # -- Loop's table of operations ----------------------------------------

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        watch = Watch(fd, writable, fire)
        self._watches.add(watch)
        if self._on_loop_thread():
            watch.native = self._native_watch(watch)
        else:
            self._hand_over()
        return watch

    def _io_stop(self, token: Any) -> None:
        watch: Watch = token
        self._watches.discard(watch)
        watch.fire = None
        if watch.native is not None:
            if self._on_loop_thread():
                self._native_unwatch(watch.native)
            else:
                self._orphans.append(watch.native)
                self._hand_over()
            watch.native = None

    def _soon(self, fire: Callable[[], None]) -> Any:
        entry = [fire]
        self._ready.append(entry)
        if not self._ready_kicked:
            if self._on_loop_thread():
                self._ready_kicked = True
                self._native_kick()
            else:
                self._hand_over()
        return entry

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        entry = [fire]
        heapq.heappush(self._timers, (self.time() + delay, next(self._seq), entry))
        if self._on_loop_thread():
            self._arm_timers()
        else:
            self._hand_over()
        return entry

    def _unschedule(self, token: Any) -> None:
        token[0] = None

    def _run_ready(self, *_: object) -> None:
        """The native kick: run a batch, and kick again if work is left."""
        self._ready_kicked = False
        self._run_batch()
        if self._ready and not self._ready_kicked and self._bound is not None:
            self._ready_kicked = True
            self._native_kick()

    def _run_batch(self) -> None:
        ready = self._ready
        run_ready(ready)

    def _run_timers(self, *_: object) -> None:
        self._timer_due = None  # the native timer was one-shot
        if self._ready:
            # Work queued before the timer came due runs first, as on
            # asyncio: Qt may deliver its timers ahead of posted events.
            # (The kick already pending runs whatever this batch queues.)
            self._run_batch()
        timers = self._timers
        now = self.time()
        while timers and timers[0][0] <= now:
            fire = heapq.heappop(timers)[2][0]
            if fire is not None:
                fire()
        if self._bound is not None:
            self._arm_timers()

    def _arm_timers(self) -> None:
        timers = self._timers
        while timers and timers[0][2][0] is None:
            heapq.heappop(timers)  # cancelled
        if not timers:
            return
        when = timers[0][0]
        if self._timer_due is not None:
            if when >= self._timer_due:
                return
            self._native_disarm()
        # Rounded up: a native timer may still fire a little early, and
        # _run_timers then simply arms again.
        self._native_arm(max(0, math.ceil((when - self.time()) * 1000)))
        self._timer_due = when

    def close(self) -> None:
        """As :meth:`Loop.close`; while native objects exist (an
        application's loop, or a run in progress) only on the loop's thread,
        the one place they can be destroyed."""
        if not self._closed and self._bound is not None and not self._on_loop_thread():
            raise RuntimeError(
                f"close the {self.name} loop adapter on the loop's thread, where its "
                "native objects live"
            )
        super().close()

    def _release(self) -> None:
        if self._bound is not None and not self._in_run:
            self._unbind()
        self._watches.clear()
        self._orphans.clear()
        self._ready.clear()
        self._timers.clear()
