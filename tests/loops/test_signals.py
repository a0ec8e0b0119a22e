"""Python signal handlers on a loop that blocks in native code.

CPython runs a ``signal.signal`` handler only when the main thread runs
Python code: a GLib context other than the default one (PyGObject wakes only
that one), Tcl's notifier and Qt's dispatcher give it none while they idle.
An owned loop run on the main thread must still run handlers at once and
end on Ctrl-C (wsloop/loops/_signals.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from loopkit import require
from wsloop.loops import Loop, get_loop

# Each blocks the main thread in a wait of its own: GLib and Qt in poll(),
# threaded Tcl on a condition variable its notifier thread signals.
NATIVE_WAITS = {"glib": ("poll",), "qt": ("poll",), "tk": ("futex", "poll")}


@pytest.fixture(params=sorted(NATIVE_WAITS))
def loop(request: pytest.FixtureRequest) -> Iterator[Loop]:
    require(request.param)
    loop = get_loop(request.param)
    yield loop
    loop.close()


def signal_when_idle(loop: Loop, signum: int) -> None:
    """Send ``signum`` to this process from another thread once the loop's
    thread (this one) blocks in its native wait: a signal that comes while
    Python code still runs has its handler run at once, and proves nothing.
    The wait must be seen in 20 samples in a row (a thread waiting for the
    GIL waits on a futex too, but not for long)."""
    wchan = f"/proc/self/task/{threading.get_native_id()}/wchan"
    if not os.path.exists(wchan):
        pytest.skip("needs /proc/self/task/*/wchan to see the loop idle")
    waits = NATIVE_WAITS[loop.name]

    def send() -> None:
        seen = 0
        for _ in range(5000):  # bounded: at least 5 s
            with open(wchan) as f:
                state = f.read()
            seen = seen + 1 if any(w in state for w in waits) else 0
            if seen == 20:
                break
            threading.Event().wait(0.001)  # polling another thread's state
        os.kill(os.getpid(), signum)

    loop.call_soon(threading.Thread(target=send).start)


@contextlib.contextmanager
def watchdog(loop: Loop) -> Iterator[list[bool]]:
    """Stops a run that lasts 5 s, by a loop timer, then from another thread
    once a second: where a run never calls Python for signals, the first of
    them may be the callback a pending handler's exception escapes from, to
    be swallowed by the native loop with the stop (and, from a timer, with
    the rearming of the next)."""
    timed_out: list[bool] = []
    done = threading.Event()

    def stop() -> None:
        timed_out.append(True)
        loop.stop()

    def watch() -> None:
        for _ in range(10):  # bounded: from 6 s to 15 s
            if done.wait(6 if not timed_out else 1):
                return
            loop.call_soon_threadsafe(stop)

    timer = loop.call_later(5, stop)
    thread = threading.Thread(target=watch)
    thread.start()
    try:
        yield timed_out
    finally:
        done.set()
        thread.join()
        timer.cancel()


def test_signal_handler_runs_while_the_owned_loop_idles(loop: Loop) -> None:
    handled: list[int] = []

    def on_usr1(signum: int, _frame: object) -> None:
        handled.append(signum)
        loop.stop()

    old = signal.signal(signal.SIGUSR1, on_usr1)
    old_wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_wakeup)
    try:
        signal_when_idle(loop, signal.SIGUSR1)
        with watchdog(loop) as timed_out:
            loop.run()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert handled == [signal.SIGUSR1] and not timed_out, "the handler waited for another event"
    assert signal.set_wakeup_fd(old_wakeup) == old_wakeup, "the run restored the wake-up fd"


def test_ctrl_c_ends_the_run_with_keyboardinterrupt(loop: Loop) -> None:
    """With Python's default SIGINT handler, as PyGObject does for the
    default context: the run ends, KeyboardInterrupt is raised after it."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal_when_idle(loop, signal.SIGINT)
    with watchdog(loop) as timed_out, pytest.raises(KeyboardInterrupt):
        loop.run()
    assert not timed_out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not loop.is_running()
