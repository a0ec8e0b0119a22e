"""trio, on its own primitives: a trio program uses wsloop inside a nursery.

trio has no loop object to hand over; wsloop joins a trio run with an async
context manager that opens a nursery and closes it again::

    async with wsloop.loops.trio.open_loop() as loop:
        client = wsloop.connect(url, handler, loop=loop)
        ...

How it works, and why this way rather than trio's guest mode: guest mode
runs trio *inside* another loop, the opposite of what is needed here (wsloop
inside trio). So wsloop's work is a few ordinary trio tasks in that nursery:

* one task per watched fd and direction, parked in
  ``trio.lowlevel.wait_readable``/``wait_writable`` and calling the watch each
  time it wakes (level-triggered, as on every backend); removing a watch
  cancels its task's scope, which unregisters the fd at once;
* one dispatcher task that runs :meth:`~TrioLoop.call_soon` callbacks (its
  own FIFO queue: trio's scheduler deliberately does not run tasks in the
  order they were woken) and timers (its own heap; it sleeps until the
  earliest deadline or until woken);
* wake-ups from other threads go through the run's ``TrioToken``
  (``run_sync_soon``), which only wakes the dispatcher: every wsloop
  callback runs in the trio thread, in a task of that nursery.

Work registered while the adapter is not open in a run (``TrioLoop()``
before ``open_loop(loop)`` or :meth:`~wsloop.loops.Loop.run`, or between two
runs) is kept and starts when it opens. ``loop.stop()`` cancels the
``async with open_loop()`` block, the way it makes ``run()`` return on other
loops; ``loop.run()`` itself is ``trio.run()`` with the adapter open until
``stop()``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from .base import Loop, run_ready

try:
    import trio
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the trio backend needs trio: pip install 'wsloop[trio]'") from exc

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["TrioLoop", "open_loop"]


class _Watch:
    __slots__ = ("fd", "fire", "scope", "writable")

    def __init__(self, fd: int, writable: bool, fire: Callable[[], None]) -> None:
        self.fd = fd
        self.writable = writable
        self.fire: Callable[[], None] | None = fire
        self.scope: trio.CancelScope | None = None


class TrioLoop(Loop):
    """wsloop's work as tasks of a trio run.

    Open it in a trio program with :func:`open_loop`; or run it on its own
    with :meth:`run` (``trio.run`` until :meth:`stop`). ``owned`` is only a
    label here (trio has no loop object to free): True for adapters made by
    ``TrioLoop()``/``get_loop("trio")``, False for those :func:`open_loop`
    makes.
    """

    name = "trio"

    def __init__(self, *, owned: bool = True) -> None:
        super().__init__(owned=owned, native=None)
        self._watches: dict[_Watch, None] = {}  # insertion-ordered set
        self._ready: deque[list[Any]] = deque()
        self._timers: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()
        # While open in a trio run:
        self._nursery: trio.Nursery | None = None
        #: The open block's scope, which stop() cancels: kept until the block
        #: ends, so a stop() after a close() in a callback still ends it.
        self._block: trio.CancelScope | None = None
        self._dispatcher: trio.CancelScope | None = None
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._parked = False
        self._stopping = False
        self._woken = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._token_lock = threading.Lock()
        self._init_waker()

    # -- native operations --------------------------------------------------

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        watch = _Watch(fd, writable, fire)
        self._watches[watch] = None
        if self._nursery is not None:
            self._spawn(watch)
        return watch

    def _io_stop(self, token: Any) -> None:
        watch: _Watch = token
        self._watches.pop(watch, None)
        watch.fire = None
        if watch.scope is not None:
            # Delivered at once to a task parked in wait_readable: trio
            # unregisters the fd before this returns, so a new watch on the
            # same fd can start right away.
            watch.scope.cancel()
            watch.scope = None

    def _spawn(self, watch: _Watch) -> None:
        assert self._nursery is not None
        watch.scope = trio.CancelScope()
        self._nursery.start_soon(self._watch_fd, watch, watch.scope)

    async def _watch_fd(self, watch: _Watch, scope: trio.CancelScope) -> None:
        wait = trio.lowlevel.wait_writable if watch.writable else trio.lowlevel.wait_readable
        fd = watch.fd
        with scope:
            # Checked before every wait: a task whose watch was removed (or
            # replaced by one on the same fd) before it first ran must not
            # touch the fd at all.
            while not (scope.cancel_called or self._stopping):
                try:
                    await wait(fd)
                except OSError as exc:  # an fd closed (or never valid) while watched
                    # Reported, not raised: it would end the application's nursery.
                    self._report(exc, self._watch_fd)
                    return
                fire = watch.fire
                if fire is None or scope.cancel_called or self._stopping:
                    return
                fire()

    def _soon(self, fire: Callable[[], None]) -> Any:
        entry = [fire]
        self._ready.append(entry)
        self._poke()
        return entry

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        entry = [fire]
        heapq.heappush(self._timers, (self.time() + delay, next(self._seq), entry))
        self._poke()
        return entry

    def _unschedule(self, token: Any) -> None:
        token[0] = None

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        return fire

    def _waker_send(self, waker: Any) -> None:
        with self._token_lock:
            token = self._token
            if token is None:
                return  # not open in a run: opening it drains the queue
            try:
                token.run_sync_soon(self._wake_up)
            except trio.RunFinishedError:
                pass  # the run ended; the next one drains the queue

    def _wake_up(self) -> None:
        # In the trio thread (run_sync_soon): only wake the dispatcher, so
        # wsloop's callbacks run in its task, not in trio's system context.
        self._woken = True
        self._poke()

    def _waker_stop(self, waker: Any) -> None:
        pass

    def is_running(self) -> bool:
        return self._nursery is not None

    def _run(self) -> None:
        trio.run(self._serve)

    async def _serve(self) -> None:
        async with open_loop(self):
            await trio.sleep_forever()

    def _stop(self) -> None:
        block = self._block
        if block is not None:
            self._stopping = True
            block.cancel()

    def _release(self) -> None:
        self._close_tasks()
        self._watches.clear()
        self._ready.clear()
        self._timers.clear()

    # -- in a trio run --------------------------------------------------------

    def _poke(self) -> None:
        if self._parked:
            self._parked = False
            assert self._lot is not None
            self._lot.unpark_all()

    async def _dispatch(self, scope: trio.CancelScope, lot: trio.lowlevel.ParkingLot) -> None:
        ready = self._ready
        timers = self._timers
        with scope:
            # Checked at each pass: the block may have ended (and the
            # adapter been opened again) before this task first ran.
            while not scope.cancel_called:
                if self._woken:
                    self._woken = False
                    drain = self._waker
                    if drain is not None:
                        drain()
                run_ready(ready)
                if timers:
                    now = self.time()
                    while timers and timers[0][0] <= now:
                        fire = heapq.heappop(timers)[2][0]
                        if fire is not None:
                            fire()
                    while timers and timers[0][2][0] is None:
                        heapq.heappop(timers)  # cancelled
                if ready or self._woken:
                    await trio.lowlevel.checkpoint()  # let the fd tasks run too
                    continue
                if timers:
                    deadline = trio.current_time() + max(0.0, timers[0][0] - self.time())
                else:
                    deadline = math.inf
                self._parked = True
                with trio.move_on_at(deadline):
                    await lot.park()
                self._parked = False

    def _open(self, nursery: trio.Nursery) -> None:
        self._check_open()
        if self._nursery is not None:
            raise RuntimeError("this trio loop is already open in a trio run")
        self._thread_id = threading.get_ident()
        self._nursery = nursery
        self._block = nursery.cancel_scope
        self._stopping = False
        self._lot = lot = trio.lowlevel.ParkingLot()
        self._dispatcher = scope = trio.CancelScope()
        with self._token_lock:
            self._token = trio.lowlevel.current_trio_token()
        # Calls from other threads may have been queued while it was not
        # open (or their wake-up lost with an earlier run): drain once.
        self._woken = True
        nursery.start_soon(self._dispatch, scope, lot)
        for watch in self._watches:
            self._spawn(watch)

    def _close_tasks(self) -> None:
        with self._token_lock:
            self._token = None
        for watch in self._watches:
            if watch.scope is not None:
                watch.scope.cancel()
                watch.scope = None
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            self._dispatcher = None
        self._nursery = None
        self._lot = None
        self._parked = False


@asynccontextmanager
async def open_loop(loop: TrioLoop | None = None) -> AsyncIterator[TrioLoop]:
    """Open wsloop in the current trio run, for the ``async with`` block.

    ``async with open_loop() as loop:`` makes a new adapter, runs wsloop's
    work in a nursery for the block, and closes the adapter at its end
    (close clients and servers first). Pass a :class:`TrioLoop` made before
    the run to open that one instead (work already registered on it starts
    now; it is not closed at the end, so it can be opened again).

    ``loop.stop()`` (from a wsloop callback, or through
    ``call_soon_threadsafe``) cancels the block; an exception raised in the
    block leaves it as itself, not wrapped in an exception group.
    """
    if loop is not None and not isinstance(loop, TrioLoop):
        raise TypeError(f"expected a wsloop.loops.trio.TrioLoop or None, not {loop!r}")
    adapter = TrioLoop(owned=False) if loop is None else loop
    try:
        async with trio.open_nursery() as nursery:
            adapter._open(nursery)
            try:
                yield adapter
            finally:
                adapter._close_tasks()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # wsloop's tasks never raise, so a group holds what the block raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        adapter._stopping = False
        adapter._block = None
        if loop is None:
            adapter.close()
