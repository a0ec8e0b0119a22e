"""The contract every event-loop backend keeps, checked on each of them,
both on a loop wsloop creates and on a native loop the application made."""

from __future__ import annotations

import errno
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import THREAD_BOUND, backend_params, free_native, make_loop, require, run_loop
from wsloop.loops import Loop


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


@pytest.fixture(
    params=[
        (b, m)
        for b in backend_params()
        for m in ("owned", "foreign")
        if (b, m) != ("builtin", "foreign")
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def loop(request: pytest.FixtureRequest) -> Iterator[Loop]:
    backend, mode = request.param
    require(backend)
    adapter, native = make_loop(backend, mode == "foreign")
    yield adapter
    adapter.close()
    free_native(backend, native)


@pytest.fixture
def sockpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_registrations_before_run_fire_once_it_runs(loop: Loop, sockpair: Any) -> None:
    a, b = sockpair
    b.send(b"x")
    fired: set[str] = set()

    def mark(what: str) -> None:
        fired.add(what)
        if what == "reader":
            loop.remove_reader(a)
        if fired == {"soon", "later", "reader", "threadsafe"}:
            loop.stop()

    loop.call_soon(mark, "soon")
    loop.call_later(0.01, mark, "later")
    loop.add_reader(a, mark, "reader")
    threading.Thread(target=loop.call_soon_threadsafe, args=(mark, "threadsafe")).start()
    assert not fired
    assert run_loop(loop), f"only {fired} fired"


def test_call_soon_is_fifo(loop: Loop) -> None:
    seen: list[int] = []

    def add(i: int) -> None:
        seen.append(i)
        if i == 99:
            loop.stop()

    for i in range(100):
        loop.call_soon(add, i)
    assert run_loop(loop)
    assert seen == list(range(100))


def test_timers_fire_in_deadline_order_and_cancelled_never(loop: Loop) -> None:
    seen: list[float] = []
    delays = [0.05, 0.01, 0.03, 0.02, 0.04, 0.002]
    for d in delays:
        loop.call_later(d, seen.append, d)
    loop.call_later(0.025, seen.append, -1.0).cancel()
    loop.call_soon(seen.append, -2.0).cancel()
    start = loop.time()
    loop.call_later(0.08, loop.stop)
    assert run_loop(loop)
    assert seen == sorted(delays)
    assert loop.time() - start >= 0.079


def test_timers_due_together_still_run_in_deadline_order(loop: Loop) -> None:
    seen: list[float] = []
    for d in [0.010, 0.002, 0.006, 0.004]:
        loop.call_later(d, seen.append, d)
    loop.call_later(0.012, loop.stop)
    # The scenario: the loop starts after every timer is already due.
    threading.Event().wait(0.03)
    assert run_loop(loop)
    assert seen == [0.002, 0.004, 0.006, 0.010]


def test_timers_never_fire_early_after_the_loop_was_idle(loop: Loop) -> None:
    loop.call_soon(loop.stop)
    assert run_loop(loop)  # the loop has run, then sits idle:
    threading.Event().wait(0.2)
    fired: list[float] = []
    start = time.monotonic()
    loop.call_later(0.1, lambda: (fired.append(time.monotonic() - start), loop.stop()))
    assert run_loop(loop)
    assert fired and fired[0] >= 0.099, fired


def test_timer_cancelled_by_an_earlier_callback(loop: Loop) -> None:
    seen: list[str] = []
    victim = loop.call_later(0.02, seen.append, "victim")
    loop.call_later(0.01, victim.cancel)
    loop.call_later(0.04, loop.stop)
    assert run_loop(loop)
    assert seen == []


def test_fd_watching_is_level_triggered(loop: Loop, sockpair: Any) -> None:
    a, b = sockpair
    b.send(b"0123456789")
    got: list[bytes] = []

    def read_one() -> None:
        got.append(a.recv(1))  # leave the rest: must be called again
        if len(got) == 10:
            loop.remove_reader(a)
            loop.stop()

    loop.add_reader(a, read_one)
    assert run_loop(loop)
    assert b"".join(got) == b"0123456789"


def test_writer_fires_and_can_remove_itself(loop: Loop, sockpair: Any) -> None:
    a, _ = sockpair
    calls = []

    def writable() -> None:
        calls.append(1)
        loop.remove_writer(a)
        loop.call_later(0.03, loop.stop)

    loop.add_writer(a, writable)
    assert run_loop(loop)
    assert calls == [1]


def test_callback_removes_its_own_and_another_watcher(loop: Loop) -> None:
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        for r, w in pairs:
            r.setblocking(False)
            w.send(b"data")
        calls: list[int] = []

        def on_read(i: int) -> None:
            calls.append(i)
            loop.remove_reader(pairs[0][0])
            loop.remove_reader(pairs[1][0])
            loop.call_later(0.03, loop.stop)

        loop.add_reader(pairs[0][0], on_read, 0)
        loop.add_reader(pairs[1][0], on_read, 1)
        assert run_loop(loop)
        assert len(calls) == 1, calls
    finally:
        for r, w in pairs:
            r.close()
            w.close()


def test_replacing_a_reader(loop: Loop, sockpair: Any) -> None:
    a, b = sockpair
    b.send(b"x")
    seen = []
    loop.add_reader(a, seen.append, "old")
    loop.add_reader(a, lambda: (seen.append("new"), loop.remove_reader(a), loop.stop()))
    assert run_loop(loop)
    assert seen == ["new"]


def test_threadsafe_from_many_threads_none_lost(loop: Loop) -> None:
    threads_n, calls_n = 8, 1000
    total = threads_n * calls_n
    seen_threads: set[int] = set()
    count = [0]

    def hit() -> None:
        seen_threads.add(threading.get_ident())
        count[0] += 1
        if count[0] == total:
            loop.stop()

    barrier = threading.Barrier(threads_n)

    def worker() -> None:
        barrier.wait()
        for _ in range(calls_n):
            loop.call_soon_threadsafe(hit)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]

    def start() -> None:
        for t in threads:
            t.start()

    loop.call_soon(start)
    ok = run_loop(loop, timeout=30)
    for t in threads:
        t.join()
    assert ok, f"{count[0]} of {total} arrived"
    assert count[0] == total
    assert seen_threads == {threading.get_ident()}


def test_loop_reports_its_thread(loop: Loop) -> None:
    assert loop.thread_id is None or not loop.in_loop_thread()
    result: dict[str, Any] = {}

    def probe() -> None:
        result["running"] = loop.is_running()
        result["in_thread"] = loop.in_loop_thread()
        loop.stop()

    def runner() -> None:
        result["ident"] = threading.get_ident()
        loop.call_soon(probe)
        result["ok"] = run_loop(loop)

    t = threading.Thread(target=runner)
    if not loop.owned and loop.name in THREAD_BOUND:
        # Only the application's own thread may run its Qt or Tk loop:
        # anywhere else run() says so, in the caller's thread.
        def wrong_thread() -> None:
            with pytest.raises(RuntimeError, match="thread"):
                loop.run()
            result["raised"] = True

        t = threading.Thread(target=wrong_thread)
        t.start()
        t.join()
        assert result.get("raised")
        runner()
        assert result["ok"] and result["running"] and result["in_thread"]
        assert loop.in_loop_thread() and not loop.is_running()
        return
    t.start()
    t.join()
    assert result["ok"] and result["running"] and result["in_thread"]
    assert loop.thread_id == result["ident"]
    assert not loop.in_loop_thread()
    assert not loop.is_running()


def test_exception_in_callback_is_logged_and_hooked_not_propagated(
    loop: Loop, caplog: pytest.LogCaptureFixture, sockpair: Any
) -> None:
    a, b = sockpair
    hooked: list[BaseException] = []
    after: list[str] = []

    def hook(_loop: Loop, exc: BaseException, _cb: Any) -> None:
        hooked.append(exc)
        if len(hooked) == 4:  # every callback has raised: the loop must go on
            loop.call_soon(lambda: (after.append("still running"), loop.stop()))

    loop.exception_handler = hook

    def boom() -> None:
        raise ValueError("boom in soon")

    def boom_timer() -> None:
        raise KeyError("boom in timer")

    def boom_reader() -> None:
        loop.remove_reader(a)
        raise RuntimeError("boom in reader")

    b.send(b"x")
    loop.call_soon(boom)
    loop.call_later(0.005, boom_timer)
    loop.add_reader(a, boom_reader)
    loop.call_soon_threadsafe(boom)
    loop.call_later(10.0, loop.stop)  # a bound only: the hook stops it
    with caplog.at_level(logging.ERROR, logger="wsloop.loops"):
        assert run_loop(loop)
    assert after == ["still running"]
    assert sorted(type(e).__name__ for e in hooked) == [
        "KeyError",
        "RuntimeError",
        "ValueError",
        "ValueError",
    ]
    assert sum("boom" in str(r.exc_info[1]) for r in caplog.records if r.exc_info) == 4


def test_argument_errors_are_clear(loop: Loop) -> None:
    with pytest.raises(TypeError, match="seconds"):
        loop.call_later("1", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fileno"):
        loop.add_reader(object(), print)
    with pytest.raises(ValueError, match="descriptor"):
        loop.add_reader(-1, print)


def test_closed_adapter_refuses_work(loop: Loop) -> None:
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(print)
    loop.close()  # twice is harmless


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_owned_loop_frees_every_fd(backend: str) -> None:
    # One warm-up cycle first: some native libraries (uvloop) keep a couple
    # of process-wide fds open after their first loop has run.
    before = 0
    for i in range(4):
        if i == 1:
            gc.collect()
            before = open_fds()
        loop, _native = make_loop(backend, foreign=False)
        a, b = socket.socketpair()
        loop.add_reader(a, print)
        loop.call_later(10, print)
        loop.call_soon_threadsafe(print)
        loop.call_soon(loop.stop)
        assert run_loop(loop)
        loop.close()
        a.close()
        b.close()
    gc.collect()
    assert open_fds() == before


def test_close_from_a_callback_of_the_running_loop(loop: Loop, sockpair: Any) -> None:
    """What a callback runs under is freed when the run returns, not under
    it (libev and libuv aborted the process); the callbacks still queued
    behind it never run, and the run ends (a stop() after it is harmless)."""
    a, b = sockpair
    b.send(b"x")
    loop.add_reader(a, lambda: None)
    loop.call_later(10, print)
    after: list[int] = []

    def close_then_stop() -> None:
        loop.close()
        loop.stop()

    loop.call_soon(close_then_stop)
    loop.call_soon(after.append, 1)  # same batch, behind the close
    assert run_loop(loop)
    assert loop.closed and not loop.is_running()
    assert after == []
    if loop.name in THREAD_BOUND:
        assert loop._bound is None, "the run's end destroyed the native objects"  # type: ignore[attr-defined]


def test_close_from_a_callback_ends_the_run(backend: str) -> None:
    """A closed adapter takes no work, so nothing could stop its run after:
    close() from a callback ends wsloop's own run() of the loop."""
    loop, _native = make_loop(backend, foreign=False)
    loop.call_later(0.01, loop.close)
    # The watchdog cannot use call_soon_threadsafe on a closed adapter: a
    # direct stop() from its thread is the last resort if the run goes on.
    watchdog = threading.Timer(10, loop.stop)
    watchdog.start()
    try:
        loop.run()
    finally:
        timed_out = not watchdog.is_alive()
        watchdog.cancel()
        watchdog.join()
    assert not timed_out, "the run went on after close()"
    assert loop.closed and not loop.is_running()


def test_watching_a_closed_fd_raises_oserror(loop: Loop) -> None:
    """Every backend refuses a closed fd with EBADF, in the caller's thread
    (libev and libuv aborted the process when they next polled it)."""
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    for watch in (loop.add_reader, loop.add_writer):
        with pytest.raises(OSError) as info:
            watch(fd, print)
        assert info.value.errno == errno.EBADF
    assert loop.stats()["readers"] == loop.stats()["writers"] == 0
    loop.call_soon(loop.stop)
    assert run_loop(loop)
