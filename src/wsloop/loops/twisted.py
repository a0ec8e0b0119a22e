"""A Twisted reactor: the application's (it keeps calling ``reactor.run()``)
or a private one wsloop creates.

Everything goes through the reactor's public interfaces: fd readiness through
``addReader``/``addWriter`` (``IReactorFDSet``), timers through ``callLater``,
the thread-safe wake-up through ``callFromThread``.

Three things about Twisted shape this adapter:

* A reactor keeps one descriptor object per fd (epoll keys them by fd), so
  wsloop registers one object per fd that is both the reader and the writer,
  and dispatches ``doRead``/``doWrite`` to whichever watch is set.
* When the poller reports a hang-up or an error without input, Twisted does
  not call ``doRead``/``doWrite``: it unregisters the descriptor and calls
  its ``connectionLost``. wsloop's watches are level-triggered, so
  ``connectionLost`` calls the watches that are set (the transport's
  ``recv``/``send`` then meets the error) and registers what is still
  watched again. At reactor shutdown (``reactor.stop()``) Twisted
  disconnects every descriptor the same way; wsloop then lets its watches go.
* A reactor runs once per process (``reactor.stop()`` is final), so
  :meth:`TwistedLoop.run` does not call ``reactor.run()`` on a private
  reactor: it drives it iteration by iteration (``runUntilCurrent``,
  ``doIteration``), which can be repeated and touches no process-wide state
  (signal handlers, the "I/O thread"). On an application's reactor it calls
  ``reactor.run(installSignalHandlers=False)`` and returns on :meth:`stop`
  through ``reactor.crash()``, which leaves the reactor runnable again;
  :meth:`stop` while the application's own ``reactor.run()`` runs is
  ``reactor.stop()``.

``call_soon`` keeps its own FIFO queue, run from one ``callLater(0, ...)``:
Twisted orders timers only by their deadline, and callbacks queued in the
same clock tick would otherwise run in any order. Twisted's timers follow
``time.time()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .base import Loop, run_ready

try:
    from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
    from zope.interface import implementer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Twisted backend needs Twisted: pip install 'wsloop[twisted]'") from exc

__all__ = ["TwistedLoop", "new_reactor"]


def new_reactor() -> Any:
    """A new reactor of the platform's best kind, not installed as the global
    ``twisted.internet.reactor`` (epoll on Linux, else poll, else select)."""
    try:
        from twisted.internet.epollreactor import EPollReactor

        return EPollReactor()  # type: ignore[no-untyped-call]
    except ImportError:
        pass
    try:
        from twisted.internet.pollreactor import PollReactor

        return PollReactor()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - Windows
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor()


@implementer(IReadDescriptor, IWriteDescriptor)
class _Watch:
    """The one descriptor object the reactor sees for an fd."""

    __slots__ = ("adapter", "fd", "read", "write")

    def __init__(self, adapter: TwistedLoop, fd: int) -> None:
        self.adapter = adapter
        self.fd = fd
        self.read: Callable[[], None] | None = None
        self.write: Callable[[], None] | None = None

    def fileno(self) -> int:
        return self.fd

    # Twisted's interface names (IReadDescriptor, IWriteDescriptor).

    def logPrefix(self) -> str:
        return "wsloop"

    def doRead(self) -> None:
        fire = self.read
        if fire is not None:
            fire()

    def doWrite(self) -> None:
        fire = self.write
        if fire is not None:
            fire()

    def connectionLost(self, reason: Any) -> None:
        # The reactor has already unregistered this object (see the module
        # docstring): report the condition to the watches, then watch again.
        adapter = self.adapter
        if adapter._shutting_down or adapter.closed:
            return
        if self.read is not None:
            self.read()
        if self.write is not None:
            self.write()
        reactor = adapter.native
        try:
            if self.read is not None:
                reactor.addReader(self)
            if self.write is not None:
                reactor.addWriter(self)
        except OSError as exc:  # the fd was closed while still watched
            adapter._report(exc, self.connectionLost)


class TwistedLoop(Loop):
    """Adapts a Twisted reactor (a new private one if None).

    For the application's reactor pass ``twisted.internet.reactor`` and keep
    calling ``reactor.run()``.
    """

    name = "twisted"

    def __init__(self, reactor: Any = None) -> None:
        native = new_reactor() if reactor is None else reactor
        if not callable(getattr(native, "addReader", None)) or not callable(
            getattr(native, "callFromThread", None)
        ):
            raise TypeError(f"expected a Twisted reactor, not {reactor!r}")
        super().__init__(owned=reactor is None, native=native)
        self._watches: dict[int, _Watch] = {}
        self._ready: deque[list[Any]] = deque()
        self._ready_call: Any = None
        self._driving = False
        self._stopping = False
        self._shutting_down = False
        self._trigger = native.addSystemEventTrigger("before", "shutdown", self._on_shutdown)
        self._init_waker()

    # -- native operations --------------------------------------------------

    def _io_start(self, fd: int, writable: bool, fire: Callable[[], None]) -> Any:
        watch = self._watches.get(fd)
        if watch is None:
            watch = self._watches[fd] = _Watch(self, fd)
        if writable:
            watch.write = fire
            self.native.addWriter(watch)
        else:
            watch.read = fire
            self.native.addReader(watch)
        return (watch, writable)

    def _io_stop(self, token: Any) -> None:
        watch: _Watch = token[0]
        writable: bool = token[1]
        if writable:
            watch.write = None
            self.native.removeWriter(watch)
        else:
            watch.read = None
            self.native.removeReader(watch)
        if watch.read is None and watch.write is None and self._watches.get(watch.fd) is watch:
            del self._watches[watch.fd]

    def _soon(self, fire: Callable[[], None]) -> Any:
        entry = [fire]
        self._ready.append(entry)
        if self._ready_call is None:
            self._ready_call = self.native.callLater(0, self._run_ready)
        return entry

    def _run_ready(self) -> None:
        self._ready_call = None
        ready = self._ready
        run_ready(ready)
        if ready and self._ready_call is None:
            self._ready_call = self.native.callLater(0, self._run_ready)

    def _later(self, delay: float, fire: Callable[[], None]) -> Any:
        return self.native.callLater(delay, fire)

    def _unschedule(self, token: Any) -> None:
        if isinstance(token, list):
            token[0] = None
        elif token.active():
            token.cancel()

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        return [fire]

    def _waker_send(self, waker: Any) -> None:
        self.native.callFromThread(self._wake, waker)

    @staticmethod
    def _wake(waker: list[Any]) -> None:
        fire = waker[0]
        if fire is not None:
            fire()

    def _waker_stop(self, waker: Any) -> None:
        # A callFromThread already queued cannot be taken back: it finds
        # nothing to do and is gone after the reactor's next iteration.
        waker[0] = None

    def is_running(self) -> bool:
        return self._driving or bool(self.native.running)

    def _run(self) -> None:
        reactor = self.native
        self._stopping = False
        self._driving = True
        try:
            if self.owned:
                while not self._stopping:
                    reactor.runUntilCurrent()
                    if self._stopping:
                        break
                    reactor.doIteration(reactor.timeout())
            else:
                reactor.run(installSignalHandlers=False)
        finally:
            self._driving = False
            self._stopping = False

    def _stop(self) -> None:
        if self._driving:
            self._stopping = True
            if not self.owned:
                self.native.crash()
        elif self.native.running:
            self.native.stop()

    def _on_shutdown(self) -> None:
        self._shutting_down = True

    def _release(self) -> None:
        reactor = self.native
        if self._ready_call is not None and self._ready_call.active():
            self._ready_call.cancel()
        self._ready_call = None
        self._ready.clear()
        self._watches.clear()
        if not self._shutting_down:
            try:
                reactor.removeSystemEventTrigger(self._trigger)
            except (ValueError, KeyError):
                pass
        if self.owned:
            # A reactor holds a wake-up pipe and its poller's fd; nothing
            # public frees them, and the pipe is not closed by the collector.
            waker = getattr(reactor, "waker", None)
            if waker is not None:
                reactor.removeReader(waker)
                waker.connectionLost(None)
                reactor.waker = None
            poller = getattr(reactor, "_poller", None)
            close = getattr(poller, "close", None)
            if close is not None:
                close()
