"""The Tcl/Tk event loop through the standard library's :mod:`tkinter`.

fds are watched with ``createfilehandler`` (Tcl's file handlers; not on
Windows, where Tk has no such call), the earliest wsloop timer is one
``after`` event, and ready callbacks run from an ``after 0`` event. Wake-ups
from other threads never call Tcl: they write a byte to a socket pair whose
other end the loop's thread watches like any fd (Tcl calls made from a
foreign thread would block until the Tk thread is idle in ``mainloop()``).

A Tcl interpreter belongs to the thread that created it, so the
registrations live in plain Python and the Tcl objects are made on the
loop's thread (``wsloop/loops/_threadbound.py``). An application's loop is
its ``tkinter.Tk()`` (any widget will do), adapted on the thread that
created it and run by its own ``mainloop()``; a loop wsloop owns is a
display-less Tcl interpreter (``tkinter.Tcl()``) made for each
:meth:`Loop.run` on the thread that calls it, and deleted there when the run
returns (Tcl aborts the process if an interpreter is deleted on another
thread).

Signals: a run blocks in Tcl's wait, where Python gets no chance to run a
``signal.signal`` handler; a run on the main thread watches a signal
wake-up fd of its own so handlers run as soon as a signal arrives, and
Ctrl-C with Python's default SIGINT handler ends the run with
:exc:`KeyboardInterrupt` (``wsloop/loops/_signals.py``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ._signals import signals_wake_loop
from ._threadbound import ThreadBoundLoop, Watch

try:
    import tkinter
except ImportError as exc:  # pragma: no cover - depends on the Python build
    raise ImportError(
        "the Tk backend needs the standard library's tkinter "
        "(on Debian: apt-get install python3-tk)"
    ) from exc

__all__ = ["TkLoop"]

_READ = tkinter.READABLE | tkinter.EXCEPTION
_WRITE = tkinter.WRITABLE


class TkLoop(ThreadBoundLoop):
    """Adapts the application's ``tkinter.Tk`` (or ``Tcl``) root, or, with
    None, runs a Tcl interpreter wsloop owns."""

    name = "tk"

    def __init__(self, root: Any = None) -> None:
        tkapp = None
        if root is not None:
            tkapp = getattr(root, "tk", root)
            if not hasattr(tkapp, "call") or not hasattr(tkapp, "dooneevent"):
                raise TypeError(f"expected a tkinter.Tk root or widget, not {root!r}")
            if not hasattr(tkapp, "createfilehandler"):  # pragma: no cover - Windows
                raise RuntimeError("Tk has no createfilehandler on this platform")
        super().__init__(owned=root is None, native=root)
        self._interp: Any = None  # the tkinter.Tcl() of a loop wsloop owns
        self._tk: Any = tkapp
        self._fds: dict[int, list[Watch | None]] = {}  # fd -> [reader, writer]
        self._timer_after: Any = None
        self._kick_after: Any = None
        self._commands: tuple[str, str] | None = None
        self._wake_fd: int | None = None
        self._running = False
        self._stopping = False
        self._dispatching = 0
        # One bound method for every file handler: tkinter drops its
        # reference when a handler is deleted, which may happen inside it.
        self._on_fd = self._tcl_fd
        self._init_waker()
        if root is not None:
            try:
                self._bind()
            except RuntimeError as exc:
                raise RuntimeError(
                    "adapt a Tk root on the thread that created it (Tcl calls are bound to it)"
                ) from exc

    # -- binding to the loop's thread ----------------------------------------

    def _bind(self) -> None:
        if self.owned:
            self._interp = tkinter.Tcl()
            self._tk = self._interp.tk
        tk = self._tk
        # First: of these calls only createfilehandler fails at once on the
        # wrong thread (the others wait for that thread's mainloop).
        reader = self._waker[0]
        tk.createfilehandler(reader, tkinter.READABLE, self._tcl_wake)
        self._wake_fd = reader.fileno()
        suffix = f"{id(self):x}"
        self._commands = (f"wsloop_ready_{suffix}", f"wsloop_timer_{suffix}")
        tk.createcommand(self._commands[0], self._tcl_ready)
        tk.createcommand(self._commands[1], self._tcl_timer)
        super()._bind()

    def _unbind(self) -> None:
        super()._unbind()
        tk = self._tk
        if self._kick_after is not None:
            tk.call("after", "cancel", self._kick_after)
            self._kick_after = None
        if self._wake_fd is not None:
            tk.deletefilehandler(self._wake_fd)
            self._wake_fd = None
        if self._commands is not None:
            for command in self._commands:
                tk.deletecommand(command)
            self._commands = None
        if self.owned:
            # A Tcl interpreter must be deleted on its own thread (Tcl
            # aborts the process otherwise), and this is the last moment
            # wsloop surely is on it: a new one is made for the next run.
            self._interp = self._tk = None

    # -- the thread-bound table ----------------------------------------------

    def _native_watch(self, watch: Watch) -> Any:
        slot = self._fds.setdefault(watch.fd, [None, None])
        slot[watch.writable] = watch
        self._set_mask(watch.fd, slot)
        return watch

    def _native_unwatch(self, native: Any) -> None:
        watch: Watch = native
        slot = self._fds.get(watch.fd)
        if slot is not None and slot[watch.writable] is watch:
            slot[watch.writable] = None
            self._set_mask(watch.fd, slot)

    def _set_mask(self, fd: int, slot: list[Watch | None]) -> None:
        # Tcl keeps one handler per fd, and tkinter remembers every handler
        # it created for an fd until deletefilehandler: delete, then create.
        tk = self._tk
        mask = (_READ if slot[0] is not None else 0) | (_WRITE if slot[1] is not None else 0)
        tk.deletefilehandler(fd)
        if mask:
            tk.createfilehandler(fd, mask, self._on_fd)
        else:
            del self._fds[fd]

    def _tcl_fd(self, fd: int, mask: int) -> None:
        self._dispatching += 1
        try:
            slot = self._fds.get(fd)
            if slot is not None and mask & _READ and slot[0] is not None:
                slot[0].dispatch()
                slot = self._fds.get(fd)  # the callback may have changed it
            if slot is not None and mask & _WRITE and slot[1] is not None:
                slot[1].dispatch()
        finally:
            self._dispatching -= 1

    def _native_kick(self) -> None:
        assert self._commands is not None
        self._kick_after = self._tk.call("after", 0, self._commands[0])

    def _tcl_ready(self) -> None:
        self._kick_after = None
        self._dispatching += 1
        try:
            self._run_ready()
        finally:
            self._dispatching -= 1

    def _native_arm(self, ms: int) -> None:
        assert self._commands is not None
        self._timer_after = self._tk.call("after", ms, self._commands[1])

    def _native_disarm(self) -> None:
        if self._timer_after is not None:
            self._tk.call("after", "cancel", self._timer_after)
            self._timer_after = None

    def _tcl_timer(self) -> None:
        self._timer_after = None
        self._dispatching += 1
        try:
            self._run_timers()
        finally:
            self._dispatching -= 1

    # -- the thread-safe wake-up: a socket pair, no Tcl call -------------------

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        return (reader, writer)

    def _waker_send(self, waker: Any) -> None:
        if waker is None:
            return  # closed meanwhile, by another thread
        try:
            waker[1].send(b"\0")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def _tcl_wake(self, fd: int, mask: int) -> None:
        reader = self._waker[0] if self._waker is not None else None
        if reader is None:
            return
        try:
            while reader.recv(4096):
                pass
        except OSError:
            pass
        self._dispatching += 1
        try:
            self._drain_threadsafe()
        finally:
            self._dispatching -= 1

    def _waker_stop(self, waker: Any) -> None:
        if self._wake_fd is not None:
            self._tk.deletefilehandler(self._wake_fd)
            self._wake_fd = None
        waker[0].close()
        waker[1].close()

    # -- running ---------------------------------------------------------------

    def is_running(self) -> bool:
        return self._running or self._dispatching > 0

    def _run(self) -> None:
        if not self.owned and not self._on_loop_thread():
            raise RuntimeError("run an application's Tk loop on the thread that created it")
        if self._bound is None:
            self._bind()
        self._running = self._in_run = True
        self._stopping = False
        # No local for the interpreter: a frame outlives the run when an
        # exception's traceback holds it, and the interpreter must die on
        # this thread when the run ends.
        try:
            with signals_wake_loop(self._watch_signal_fd, self._stop):
                while not self._stopping:
                    self._tk.dooneevent(0)
        finally:
            self._running = self._in_run = False
            self._stopping = False
            if (self.owned or self._closed) and self._bound is not None:
                self._unbind()

    def _watch_signal_fd(self, fd: int, drain: Callable[[], None]) -> Callable[[], None]:
        # The unwatch holds self, not the interpreter: a traceback through
        # it must not keep the interpreter alive past the run.
        self._tk.createfilehandler(fd, tkinter.READABLE, lambda _fd, _mask: drain())
        return lambda: self._tk.deletefilehandler(fd)

    def _stop(self) -> None:
        self._stopping = True

    def _release(self) -> None:
        super()._release()
        if not self._in_run:  # else the run's end does it, on this thread
            self._fds.clear()
            self._interp = self._tk = None
