"""Python signal handlers while a native loop idles on the main thread.

CPython runs a ``signal.signal`` handler only when the main thread runs
Python code. A native loop blocked in its own wait (a GLib context Python
does not watch, Tcl's notifier, Qt's dispatcher) gives it none until some
other event arrives, so a handler, and Ctrl-C, would wait for that event.

:func:`signals_wake_loop` closes the gap for the length of one run: the
signal wake-up fd (``signal.set_wakeup_fd``) is the write end of a socket
pair whose read end the backend watches with its native fd watch; the C
signal handler writes to it, the loop wakes, the watch's callback is Python
code, and reaching Python code runs the pending handlers. Ctrl-C with
Python's default SIGINT handler quits the run and raises
:exc:`KeyboardInterrupt` after it (raised inside a native callback, it would
go where the native loop puts a callback's exception: printed by PyGObject
and PySide, kept by tkinter for a ``mainloop()`` that never comes). The
previous wake-up fd and SIGINT handler are restored.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator

__all__ = ["signals_wake_loop"]

#: ``watch(fd, drain)`` starts a native read watch calling ``drain()`` on
#: the loop's thread and returns the function that ends it.
Watcher = Callable[[int, Callable[[], None]], Callable[[], None]]


@contextlib.contextmanager
def signals_wake_loop(watch: Watcher, quit: Callable[[], None]) -> Iterator[None]:
    """Wrap one run of a native loop: ``watch`` watches an fd natively,
    ``quit`` makes the run return. Off the main thread (where Python runs no
    handlers and no wake-up fd can be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted: list[bool] = []
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)

    def drain() -> None:
        # Reaching Python code is what runs the pending handlers (at the
        # first Python frame the native callback enters, which may be the
        # backend's: an exception a handler raises goes where the native
        # loop puts a callback's, hence SIGINT's own handler below).
        with contextlib.suppress(OSError):
            while wake_r.recv(512):
                pass

    def on_sigint(_signum: int, _frame: object) -> None:
        interrupted.append(True)
        quit()

    unwatch = watch(wake_r.fileno(), drain)
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    default_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if default_sigint:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if default_sigint and signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        current = signal.set_wakeup_fd(old_wakeup)
        if current != wake_w.fileno():
            signal.set_wakeup_fd(current)  # set by someone during the run: it stays
        unwatch()
        wake_r.close()
        wake_w.close()
    if interrupted:
        raise KeyboardInterrupt
