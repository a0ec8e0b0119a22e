"""The GLib backend's own behaviour: Python signal handlers on a private
context (PyGObject wakes only the default context for them)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from loopkit import require
from wsloop.loops import Loop, get_loop


@pytest.fixture
def glib_loop() -> Iterator[Loop]:
    require("glib")
    loop = get_loop("glib")
    yield loop
    loop.close()


def signal_when_idle(loop: Loop, signum: int) -> None:
    """Send ``signum`` to this process from another thread once the loop's
    thread (this one) blocks in its poll: a signal that comes while Python
    code still runs has its handler run at once, and proves nothing."""
    wchan = f"/proc/self/task/{threading.get_native_id()}/wchan"
    if not os.path.exists(wchan):
        pytest.skip("needs /proc/self/task/*/wchan to see the loop idle")

    def send() -> None:
        for _ in range(5000):  # bounded: 5 s
            with open(wchan) as f:
                if "poll" in f.read():
                    break
            threading.Event().wait(0.001)  # polling another thread's state
        os.kill(os.getpid(), signum)

    loop.call_soon(threading.Thread(target=send).start)


def test_signal_handler_runs_while_the_owned_loop_idles(glib_loop: Loop) -> None:
    loop = glib_loop
    handled: list[int] = []

    def on_usr1(signum: int, _frame: object) -> None:
        handled.append(signum)
        loop.stop()

    timed_out: list[bool] = []
    loop.call_later(5, lambda: (timed_out.append(True), loop.stop()))
    old = signal.signal(signal.SIGUSR1, on_usr1)
    old_wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_wakeup)
    try:
        signal_when_idle(loop, signal.SIGUSR1)
        loop.run()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert handled == [signal.SIGUSR1] and not timed_out, "the handler waited for another event"
    assert signal.set_wakeup_fd(old_wakeup) == old_wakeup, "the run restored the wake-up fd"


def test_ctrl_c_ends_the_run_with_keyboardinterrupt(glib_loop: Loop) -> None:
    """With Python's default SIGINT handler, as PyGObject does for the
    default context: the run ends, KeyboardInterrupt is raised after it."""
    loop = glib_loop
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    timed_out: list[bool] = []
    loop.call_later(5, lambda: (timed_out.append(True), loop.stop()))
    signal_when_idle(loop, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert not timed_out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not loop.is_running()
