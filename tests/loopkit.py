"""Make every backend, owned or wrapping a native loop the test created."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from wsloop.loops import BACKENDS, Loop, get_loop

ALLOW_MISSING = os.environ.get("WSLOOP_ALLOW_MISSING_BACKENDS") == "1"


def native_loop(name: str) -> Any:
    """A native loop of the backend, as an application would create it."""
    if name == "builtin":
        return None
    if name == "asyncio":
        import asyncio

        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "libev":
        from gevent.libev.corecext import loop

        return loop(default=False)
    if name == "libuv":
        from gevent.libuv.loop import loop as uvloop_

        return uvloop_(default=False)
    if name == "glib":
        from gi.repository import GLib

        return GLib.MainContext.new()
    if name == "twisted":
        # A reactor of its own per test, not the process-wide one: a
        # reactor's run() is final once it is stopped (see native_run).
        from wsloop.loops.twisted import new_reactor

        return new_reactor()
    if name == "trio":
        # trio has no loop object: the "native loop" is a trio program that
        # opens the adapter with open_loop() (see TrioApp).
        from wsloop.loops.trio import TrioLoop

        return TrioApp(TrioLoop(owned=False))
    if name == "qt":
        return qt_app()
    if name == "tk":
        return tk_root()
    raise ValueError(name)


class TrioApp:
    """A trio program using wsloop as trio programs do: its own
    ``trio.run()``, its own tasks, and ``async with open_loop(loop)``."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def run(self, done: Callable[[], bool] | None, timeout: float) -> None:
        """Until ``done()`` (None: until ``loop.stop()`` ends the block) or
        ``timeout``."""
        import time

        import trio

        from wsloop.loops.trio import open_loop

        deadline = time.monotonic() + timeout

        async def wait() -> None:
            if done is None:
                await trio.sleep_forever()
            while not done() and time.monotonic() < deadline:
                await trio.sleep(0.005)

        async def main() -> None:
            if self.loop.closed:  # the program goes on without wsloop
                await wait()
                return
            async with open_loop(self.loop):
                await wait()

        trio.run(main)


#: Native loops that only their own thread may run (an application's Qt
#: loop runs on the QCoreApplication's thread, a Tk root on its creator's).
THREAD_BOUND = ("qt", "tk")

_tk_roots: list[Any] = []


def tk_root() -> Any:
    """The process's one Tk root, as an application has one, withdrawn.

    Shared: a Tk interpreter freed by the garbage collector on another
    thread aborts the process (Tcl_AsyncDelete), and tests run threads."""
    if not _tk_roots:
        import tkinter

        ensure_display()
        root = tkinter.Tk()
        root.withdraw()
        _tk_roots.append(root)
    return _tk_roots[0]


def qt_app() -> Any:
    """The process's QCoreApplication (Qt allows one), made headless."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication

    return QCoreApplication.instance() or QCoreApplication(["wsloop-tests"])


_xvfb: list[Any] = []


def ensure_display() -> str:
    """Point DISPLAY at an Xvfb this test run started (one per process).

    Skips (with the reason) only if Xvfb cannot run here at all."""
    import atexit
    import select
    import shutil
    import subprocess
    import tempfile

    import pytest

    if _xvfb:
        return str(os.environ["DISPLAY"])
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Tk needs a display and Xvfb is not installed (scripts/setup installs xvfb)")
    read_fd, write_fd = os.pipe()
    # Through a shell that kills Xvfb when its stdin closes: when this
    # process exits, however it exits (an abort skips atexit), Xvfb goes too.
    # Its messages go to a file, which nobody has to read while it runs.
    with tempfile.TemporaryFile() as log:
        args = ["-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"]
        proc = subprocess.Popen(
            ["sh", "-c", '"$@" & x=$!; read _; kill $x; wait $x', "sh", xvfb, *args],
            pass_fds=(write_fd,),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        os.close(write_fd)
        # Xvfb writes its display number once it accepts clients.
        with os.fdopen(read_fd) as f:
            ready, _, _ = select.select([f], [], [], 30)
            number = f.readline().strip() if ready else ""
        if not number:
            proc.communicate(timeout=10)
            log.seek(0)
            err = log.read().decode(errors="replace").strip()[-400:]
            pytest.skip(f"Tk needs a display and Xvfb could not start: {err}")

    def stop() -> None:
        proc.communicate(timeout=10)  # closes its stdin: the shell stops Xvfb

    atexit.register(stop)
    _xvfb.append(proc)
    os.environ["DISPLAY"] = f":{number}"
    return os.environ["DISPLAY"]


def make_loop(name: str, foreign: bool) -> tuple[Loop, Any]:
    native = native_loop(name) if foreign else None
    if native is None:
        return get_loop(name), None
    if isinstance(native, TrioApp):
        return native.loop, native
    return get_loop(native), native


def free_native(name: str, native: Any) -> None:
    if native is None:
        return
    if name in ("asyncio", "uvloop"):
        native.close()
    elif name in ("libev", "libuv"):
        native.destroy()
    elif name == "twisted":
        free_reactor(native)


def free_reactor(reactor: Any) -> None:
    """Close a reactor made by native_loop: its wake-up pipe and poller fd
    (Twisted has no public call for it; its own test suite does the same)."""
    waker = reactor.waker
    if waker is not None:
        reactor.removeReader(waker)
        waker.connectionLost(None)
        reactor.waker = None
    poller = getattr(reactor, "_poller", None)
    if poller is not None:
        poller.close()


def run_loop(loop: Loop, timeout: float = 10.0) -> bool:
    """Run ``loop`` until something calls ``loop.stop()``; False on timeout.

    The watchdog is a thread, so it works even if the loop's timers do not.
    A trio adapter that is not owned runs the way a trio program runs it
    (:class:`TrioApp`).
    """
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        loop.call_soon_threadsafe(loop.stop)

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    try:
        if loop.name == "trio" and not loop.owned:
            TrioApp(loop).run(None, timeout + 5)
        else:
            loop.run()
    finally:
        watchdog.cancel()
        watchdog.join()
    return not timed_out.is_set()


def backend_params() -> list[str]:
    return list(BACKENDS)


def require(name: str) -> None:
    """Import the backend or fail (skip only if explicitly allowed)."""
    import pytest

    try:
        get_loop(name).close()
    except ImportError as exc:
        if ALLOW_MISSING:
            pytest.skip(str(exc))
        raise


def native_run(name: str, native: Any, done: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Run a native loop the way an application would, without wsloop's
    ``run()``, until ``done()`` or ``timeout``; True if done."""
    import time

    deadline = time.monotonic() + timeout

    def finished() -> bool:
        return done() or time.monotonic() > deadline

    if name in ("asyncio", "uvloop"):
        import asyncio

        async def main() -> None:
            while not finished():
                await asyncio.sleep(0.005)

        native.run_until_complete(main())
    elif name == "libev":
        timer = native.timer(0.005, 0.005)
        timer.start(lambda: native.break_() if finished() else None)
        try:
            native.run()
        finally:
            timer.stop()
            timer.close()
    elif name == "libuv":
        # gevent's libuv break_() does not return while io watchers are
        # active, so an application drives it one iteration at a time.
        timer = native.timer(0.005, 0.005)
        timer.start(lambda: None)
        try:
            while not finished():
                native.run(once=True)
        finally:
            timer.stop()
            timer.close()
    elif name == "glib":
        from gi.repository import GLib

        mainloop = GLib.MainLoop.new(native, False)
        source = GLib.timeout_source_new(5)

        def check(*_: object) -> bool:
            if finished():
                mainloop.quit()
                return False
            return True

        source.set_callback(check)
        source.attach(native)
        mainloop.run()
        source.destroy()
    elif name == "twisted":
        # As an application runs its reactor, reactor.run(), but ended with
        # crash() rather than stop(): a stopped reactor never runs again,
        # and a test drives the same one several times.
        def check() -> None:
            if finished():
                native.crash()
            else:
                native.callLater(0.005, check)

        native.callLater(0, check)
        native.run(installSignalHandlers=False)
    elif name == "trio":
        native.run(done, timeout)
    elif name == "qt":
        from PySide6.QtCore import QTimer

        timer = QTimer()
        timer.timeout.connect(lambda: native.quit() if finished() else None)
        timer.start(5)
        native.exec()
        timer.stop()
        timer.deleteLater()
    elif name == "tk":

        def poll() -> None:
            if finished():
                native.quit()
            else:
                native.after(5, poll)

        native.after(5, poll)
        native.mainloop()
    else:
        raise ValueError(name)
    return done()


def native_count(name: str, native: Any) -> int | None:
    """How many watchers/sources the native loop has active, where it says."""
    if name == "asyncio":
        return len(native._selector.get_map()) + len(native._scheduled) + len(native._ready)
    if name in ("libev", "libuv"):
        return int(native.activecnt)
    if name == "twisted":
        return (
            len(native.getReaders())
            + len(native.getWriters())
            + len(native.getDelayedCalls())
            + len(native.threadCallQueue)
        )
    if name == "qt":
        import shiboken6
        from PySide6.QtCore import QEvent, QSocketNotifier, QTimer

        # Socket notifiers and timers alive, and wsloop receivers whose
        # adapter let go of them (an adapter's own receiver lives as long
        # as the adapter; after close() it must be gone too).
        return sum(
            isinstance(w, (QSocketNotifier, QTimer))
            or (type(w).__name__ == "Receiver" and getattr(w, "loop", None) is None)
            for w in shiboken6.getAllValidWrappers()
            if not isinstance(w, QEvent)
        )
    if name == "tk":
        return len(native.tk.splitlist(native.tk.call("after", "info")))
    return None


def drive(
    loop: Loop, native: Any, name: str, done: Callable[[], bool], timeout: float = 10.0
) -> bool:
    """Run the loop under test until ``done()``: through wsloop's ``run()``
    for an owned loop, by native means for an application's loop."""
    if native is not None:
        return native_run(name, native, done, timeout)
    # A run that timed out leaves its check scheduled: it must not stop a
    # later run when its own condition comes true.
    running = [True]

    def check() -> None:
        if not running[0]:
            return
        if done():
            loop.stop()
        else:
            loop.call_later(0.005, check)

    loop.call_soon(check)
    try:
        run_loop(loop, timeout)
    finally:
        running[0] = False
    return done()
