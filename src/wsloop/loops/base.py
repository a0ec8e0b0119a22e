"""The one interface every event-loop backend implements.

A backend is a short table of native operations (in the spirit of libuv's
and libwebsockets' event-lib ops): start/stop an fd watch, start/stop a
one-shot timer, queue a callback, poke the loop from another thread, run and
stop. :class:`Loop` builds the public, asyncio-flavoured API on top of them
and owns everything that must be the same on every loop:

* every callback runs through :func:`~wsloop.loops._invoke.invoke` (compiled
  with the per-message modules), which catches whatever it raises, logs it
  and hands it to :attr:`Loop.exception_handler`, so no exception ever
  reaches (or stops) a foreign loop;
* every watcher, timer and queued callback wsloop created is recorded, so
  :meth:`Loop.close` can leave a foreign loop exactly as it found it;
* calls from other threads go through one locked queue and one coalesced
  wake-up, so none is lost however many threads call at once.

Nothing here knows about WebSockets.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

from ._invoke import invoke

__all__ = ["Handle", "Loop"]

logger = logging.getLogger("wsloop.loops")

Callback = Callable[..., object]
ExceptionHandler = Callable[["Loop", BaseException, Callback], None]


class Handle:
    """A scheduled callback; :meth:`cancel` before it runs and it never will."""

    __slots__ = ("_args", "_callback", "_loop", "_token", "cancelled")

    def __init__(self, loop: Loop, callback: Callback, args: tuple[Any, ...]) -> None:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._token: Any = None
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel the call; nothing happens if it already ran or was cancelled."""
        if not self.cancelled:
            self.cancelled = True
            self._loop._forget(self)

    def _fire(self, *_: object) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        loop = self._loop
        loop._pending.discard(self)
        loop._invoke(self._callback, self._args)

    def __repr__(self) -> str:
        state = "cancelled/done" if self.cancelled else "pending"
        return f"<Handle {self._callback!r} {state}>"


_POSIX = os.name == "posix"


def _fileno(fd: int | Any) -> int:
    if isinstance(fd, int):
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        return fd
    fileno = getattr(fd, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a file descriptor (int) or an object with fileno(), not {fd!r}")
    return _fileno(fileno())


def run_ready(ready: deque[list[Any]]) -> None:
    """Run the callbacks queued in ``ready`` when this batch began (those
    they queue wait for the next batch, so a callback that requeues itself
    cannot starve the loop). A cancelled entry's callback is None; a
    callback that closes the loop empties the queue, which ends the batch."""
    for _ in range(len(ready)):
        if not ready:
            break
        fire = ready.popleft()[0]
        if fire is not None:
            fire()


class Loop(ABC):
    """An event loop wsloop can run on, its own or the application's.

    Methods other than :meth:`call_soon_threadsafe` must be called on the
    loop's thread, or before the loop first runs; the layers above marshal
    calls from other threads with :meth:`call_soon_threadsafe`.
    """

    #: The backend's name, as accepted by :func:`wsloop.loops.get_loop`.
    name: str = "?"

    def __init__(self, *, owned: bool, native: Any = None) -> None:
        #: True when wsloop created the native loop (and may destroy it).
        self.owned = owned
        #: The native loop object this adapter drives (None for builtin).
        self.native: Any = native
        #: Called as ``handler(loop, exception, callback)`` for every
        #: exception a callback raises, after it is logged.
        self.exception_handler: ExceptionHandler | None = None
        self._thread_id: int | None = None
        self._closed = False
        #: Inside this adapter's own :meth:`run` (a backend defers freeing
        #: what that run is using to its end, when close() comes from a callback).
        self._in_run = False
        self._pending: set[Handle] = set()
        self._readers: dict[int, Any] = {}
        self._writers: dict[int, Any] = {}
        self._ts_queue: deque[tuple[Callback, tuple[Any, ...]]] = deque()
        self._ts_lock = threading.Lock()
        self._ts_poked = False
        self._waker: Any = None

    # -- the native operations a backend provides -------------------------

    @abstractmethod
    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        """Watch ``fd`` (level-triggered); call ``fire`` while ready."""

    @abstractmethod
    def _io_stop(self, token: Any) -> None: ...

    @abstractmethod
    def _soon(self, fire: Callable[[], None]) -> Any:
        """Queue ``fire`` to run once, after what is already queued (FIFO)."""

    @abstractmethod
    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        """Run ``fire`` once, ``delay`` seconds from now."""

    @abstractmethod
    def _unschedule(self, token: Any) -> None:
        """Undo :meth:`_soon` or :meth:`_later` (the callback may have run)."""

    @abstractmethod
    def _waker_start(self, fire: Callable[[], None]) -> Any:
        """Create the thread-safe wake-up; ``fire`` runs on the loop."""

    @abstractmethod
    def _waker_send(self, waker: Any) -> None:
        """Wake the loop from any thread."""

    @abstractmethod
    def _waker_stop(self, waker: Any) -> None: ...

    @abstractmethod
    def _run(self) -> None: ...

    @abstractmethod
    def _stop(self) -> None: ...

    @abstractmethod
    def is_running(self) -> bool:
        """Whether the loop is dispatching now (best effort on foreign loops)."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Drop backend-specific state on close; free a native loop wsloop
        created (``self.owned``)."""

    # -- public API --------------------------------------------------------

    def time(self) -> float:
        """Monotonic time in seconds, the clock of :meth:`call_later`."""
        return time.monotonic()

    @property
    def thread_id(self) -> int | None:
        """The thread the loop runs on, once known (it has run a callback)."""
        return self._thread_id

    def in_loop_thread(self) -> bool:
        """True when called on the loop's own thread."""
        return self._thread_id == threading.get_ident()

    def call_in_loop(self, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` now when called on the loop's thread,
        else hand it to the loop (:meth:`call_soon_threadsafe`): how
        everything that may be called from any thread gets to the loop."""
        if self._thread_id == threading.get_ident():
            callback(*args)
        else:
            self.call_soon_threadsafe(callback, *args)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def add_reader(self, fd: int | Any, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable (OSError
        EBADF if ``fd`` is not open)."""
        self._add_io(self._readers, _fileno(fd), False, callback, args)

    def add_writer(self, fd: int | Any, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable (OSError
        EBADF if ``fd`` is not open)."""
        self._add_io(self._writers, _fileno(fd), True, callback, args)

    def remove_reader(self, fd: int | Any) -> bool:
        """Stop watching ``fd`` for reading; True if it was watched."""
        return self._remove_io(self._readers, _fileno(fd))

    def remove_writer(self, fd: int | Any) -> bool:
        """Stop watching ``fd`` for writing; False if it was not watched."""
        return self._remove_io(self._writers, _fileno(fd))

    def call_soon(self, callback: Callback, *args: Any) -> Handle:
        """Run ``callback(*args)`` on the next iteration, in FIFO order."""
        self._check_open()
        handle = Handle(self, callback, args)
        self._pending.add(handle)
        handle._token = self._soon(handle._fire)
        return handle

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Handle:
        """Run ``callback(*args)`` once, ``delay`` seconds from now."""
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, not {type(delay).__name__}")
        if delay != delay:
            raise ValueError("delay is NaN")
        self._check_open()
        handle = Handle(self, callback, args)
        self._pending.add(handle)
        handle._token = self._later(max(0.0, float(delay)), handle._fire)
        return handle

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop's thread; callable from any
        thread, including before the loop runs."""
        self._check_open()
        with self._ts_lock:
            self._ts_queue.append((callback, args))
            if self._ts_poked:
                return
            self._ts_poked = True
            waker = self._waker
        self._waker_send(waker)

    def run(self) -> None:
        """Run the loop until :meth:`stop` (for a foreign loop, runs its native loop)."""
        self._check_open()
        if self.is_running():
            raise RuntimeError(f"the {self.name} loop is already running")
        self._thread_id = threading.get_ident()
        self._in_run = True
        try:
            self._run()
        finally:
            self._in_run = False

    def stop(self) -> None:
        """Make :meth:`run` return; from another thread use call_soon_threadsafe(loop.stop)."""
        self._stop()

    def close(self) -> None:
        """Release every watcher, timer, callback and fd wsloop created.

        Call it from the loop's thread or once the loop has stopped. A
        foreign loop is left as it was found; a loop wsloop created is freed.
        Called from a callback while :meth:`run` runs, it also ends that run
        (nothing could stop it any more: a closed adapter takes no work), and
        what the run is still using is freed when it returns.
        """
        if self._closed:
            return
        if self._in_run and self.in_loop_thread():
            self._stop()
        self._closed = True
        for table in (self._readers, self._writers):
            for token, _, _ in table.values():
                self._io_stop(token)
            table.clear()
        for handle in list(self._pending):
            handle.cancel()
        with self._ts_lock:
            self._ts_queue.clear()
            waker, self._waker = self._waker, None
        if waker is not None:
            self._waker_stop(waker)
        self._release()

    def stats(self) -> dict[str, int]:
        """What wsloop has registered on this loop right now."""
        return {
            "readers": len(self._readers),
            "writers": len(self._writers),
            "pending": len(self._pending),
            "threadsafe": len(self._ts_queue),
        }

    def __repr__(self) -> str:
        kind = "owned" if self.owned else "foreign"
        return f"<{type(self).__name__} {kind} running={self.is_running()} closed={self._closed}>"

    # -- internals ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the {self.name} loop adapter is closed")

    def _invoke(self, callback: Callback, args: tuple[Any, ...]) -> None:
        invoke(self, callback, args)

    def _report(self, exc: BaseException, callback: Callback) -> None:
        logger.error("exception in %r on the %s loop", callback, self.name, exc_info=exc)
        handler = self.exception_handler
        if handler is not None:
            try:
                handler(self, exc, callback)
            except Exception:
                logger.exception("the loop's exception_handler itself raised")

    def _add_io(
        self, table: dict[int, Any], fd: int, writable: bool, cb: Callback, args: tuple[Any, ...]
    ) -> None:
        self._check_open()
        if _POSIX:
            # A closed fd would be refused by some native loops only when
            # they next poll (libev and libuv then abort the process) and
            # ignored by others: refuse it here, the same on every backend.
            os.fstat(fd)
        old = table.pop(fd, None)
        if old is not None:
            self._io_stop(old[0])
        # A partial of the compiled invoke, not a closure or a bound method:
        # no Python frame on every event.
        fire = functools.partial(invoke, self, cb, args)
        table[fd] = (self._io_start(fd, writable, fire), cb, args)

    def _remove_io(self, table: dict[int, Any], fd: int) -> bool:
        entry = table.pop(fd, None)
        if entry is None:
            return False
        self._io_stop(entry[0])
        return True

    def _forget(self, handle: Handle) -> None:
        self._pending.discard(handle)
        self._unschedule(handle._token)

    def _init_waker(self) -> None:
        """Create the thread-safe wake-up now, on the constructing thread:
        creating native watchers later from an arbitrary thread, while the
        loop runs elsewhere, would not be safe. Subclasses call this last."""
        self._waker = self._waker_start(self._drain_threadsafe)

    def _drain_threadsafe(self) -> None:
        with self._ts_lock:
            self._ts_poked = False
            queue = self._ts_queue
            batch = list(queue)
            queue.clear()
        for callback, args in batch:
            self._invoke(callback, args)
        with self._ts_lock:
            if not self._ts_poked:
                self._waker_idle(self._waker)

    def _waker_idle(self, waker: Any) -> None:  # noqa: B027 - optional hook
        """Nothing is queued from other threads any more (loop thread)."""
