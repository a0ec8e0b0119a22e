"""The GLib main loop through PyGObject (GTK and GNOME applications).

GLib removes a source whose callback returns a false value (None included),
so fd watches always return True and one-shot timers False. Timers have
whole-millisecond resolution (rounded up, so they never fire early). Work
queued with :meth:`call_soon` and wake-ups from other threads run at
``PRIORITY_DEFAULT``, not behind ``idle_add``'s idle priority.

Signals: CPython runs a ``signal.signal`` handler only when Python code runs
on the main thread, and PyGObject's ``MainLoop.run()`` wakes only the
*default* main context for that (its signal wake-up fd is watched there). A
run of any other context on the main thread (wsloop's private one included)
watches a wake-up fd of its own instead (``wsloop/loops/_signals.py``), so
handlers run as soon as a signal arrives, and handles Ctrl-C as PyGObject
does: with Python's default SIGINT handler in place the run ends and
:exc:`KeyboardInterrupt` is raised.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._signals import signals_wake_loop
from .base import Loop, run_ready

try:
    from gi.repository import GLib
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the GLib backend needs PyGObject: pip install 'wsloop[glib]'") from exc

__all__ = ["GLibLoop"]

# g_main_loop_run itself, without PyGObject's override (which wires signals
# to the default context only; see the module docstring).
try:
    _g_main_loop_run = super(GLib.MainLoop, GLib.MainLoop).run
except AttributeError:  # pragma: no cover - PyGObject without the override
    _g_main_loop_run = GLib.MainLoop.run

_IN = GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR
_OUT = GLib.IOCondition.OUT | GLib.IOCondition.HUP | GLib.IOCondition.ERR


class GLibLoop(Loop):
    """Adapts a ``GLib.MainContext`` or ``GLib.MainLoop``.

    With None, wsloop makes a private context and main loop. Pass
    ``GLib.MainContext.default()`` to run inside a GTK application.
    """

    name = "glib"

    def __init__(self, loop: Any = None) -> None:
        super().__init__(owned=loop is None, native=loop)
        if loop is None:
            self.context = GLib.MainContext.new()
            self.mainloop = GLib.MainLoop.new(self.context, False)
        elif isinstance(loop, GLib.MainLoop):
            self.mainloop = loop
            self.context = loop.get_context()
        elif isinstance(loop, GLib.MainContext):
            self.context = loop
            self.mainloop = GLib.MainLoop.new(loop, False)
        else:
            raise TypeError(f"expected a GLib.MainContext or GLib.MainLoop, not {loop!r}")
        self._ready: deque[list[Any]] = deque()
        self._ready_source: Any = None
        self._timers: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()
        self._timer_source: Any = None
        self._timer_due = 0.0
        self._init_waker()

    def _attach(self, source: Any, callback: Callable[..., bool]) -> Any:
        source.set_callback(callback)
        source.attach(self.context)
        return source

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        def dispatch(*_: object) -> bool:
            fire()
            return True

        return self._attach(GLib.unix_fd_source_new(fd, _OUT if writable else _IN), dispatch)

    def _io_stop(self, token: Any) -> None:
        token.destroy()

    def _soon(self, fire: Callable[[], None]) -> Any:
        entry = [fire]
        self._ready.append(entry)
        if self._ready_source is None:
            source = GLib.idle_source_new()
            source.set_priority(GLib.PRIORITY_DEFAULT)
            self._ready_source = self._attach(source, self._run_ready)
        return entry

    def _run_ready(self, *_: object) -> bool:
        ready = self._ready
        run_ready(ready)
        if ready:
            return True
        self._ready_source = None
        return False

    # Timers: GLib dispatches sources that are due together in the order
    # they were attached, not by deadline, so wsloop keeps its own heap and
    # one GLib timeout for the earliest deadline.

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        entry = [fire]
        when = self.time() + delay
        heapq.heappush(self._timers, (when, next(self._seq), entry))
        if self._timer_source is None or when < self._timer_due:
            self._arm(when)
        return entry

    def _arm(self, when: float) -> None:
        if self._timer_source is not None:
            self._timer_source.destroy()
        ms = max(0, math.ceil((when - self.time()) * 1000))
        self._timer_due = when
        self._timer_source = self._attach(GLib.timeout_source_new(ms), self._run_timers)

    def _run_timers(self, *_: object) -> bool:
        self._timer_source = None
        timers = self._timers
        now = self.time()
        while timers and timers[0][0] <= now:
            fire = heapq.heappop(timers)[2][0]
            if fire is not None:
                fire()
        while timers and timers[0][2][0] is None:
            heapq.heappop(timers)  # cancelled
        if timers and self._timer_source is None:
            self._arm(timers[0][0])
        return False

    def _unschedule(self, token: Any) -> None:
        token[0] = None

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        return [fire, None]  # the callback, and the idle source in flight

    def _waker_send(self, waker: Any) -> None:
        # g_source_attach is thread-safe and wakes the context up. The base
        # class coalesces wake-ups, so at most one source is in flight.
        source = GLib.idle_source_new()
        source.set_priority(GLib.PRIORITY_DEFAULT)

        def once(*_: object) -> bool:
            waker[1] = None
            waker[0]()
            return False

        source.set_callback(once)
        waker[1] = source
        source.attach(self.context)

    def _waker_stop(self, waker: Any) -> None:
        source = waker[1]
        if source is not None and not source.is_destroyed():
            source.destroy()

    def is_running(self) -> bool:
        return bool(self.mainloop.is_running())

    def _run(self) -> None:
        if (
            threading.current_thread() is not threading.main_thread()
            or self.context == GLib.MainContext.default()
        ):
            self.mainloop.run()  # PyGObject's signal handling fits these
            return
        with signals_wake_loop(self._watch_signal_fd, self.mainloop.quit):
            _g_main_loop_run(self.mainloop)

    def _watch_signal_fd(self, fd: int, drain: Callable[[], None]) -> Callable[[], None]:
        def dispatch(*_: object) -> bool:
            drain()
            return True

        source = self._attach(GLib.unix_fd_source_new(fd, _IN), dispatch)
        return source.destroy  # type: ignore[no-any-return]

    def _stop(self) -> None:
        self.mainloop.quit()

    def _release(self) -> None:
        for source in (self._ready_source, self._timer_source):
            if source is not None and not source.is_destroyed():
                source.destroy()
        self._ready_source = self._timer_source = None
        self._ready.clear()
        self._timers.clear()
