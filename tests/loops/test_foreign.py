"""wsloop on loops the application runs itself, by their own native means."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from loopkit import THREAD_BOUND, free_native, native_count, native_run, require
from wsloop.loops import get_loop

FOREIGN = ["asyncio", "uvloop", "libev", "libuv", "glib", "qt", "twisted", "tk"]


@pytest.fixture(params=FOREIGN)
def native(request: pytest.FixtureRequest) -> Any:
    from loopkit import native_loop

    require(request.param)
    loop = native_loop(request.param)
    yield request.param, loop
    free_native(request.param, loop)


def test_work_registered_before_the_native_loop_runs(native: Any) -> None:
    name, nloop = native
    loop = get_loop(nloop)
    assert get_loop(nloop) is loop, "one adapter per native loop"
    a, b = socket.socketpair()
    a.setblocking(False)
    b.send(b"ping")
    fired: list[str] = []
    loop.call_soon(fired.append, "soon")
    loop.call_later(0.01, fired.append, "later")
    loop.add_reader(a, lambda: (fired.append("reader"), loop.remove_reader(a)))
    t = threading.Thread(target=loop.call_soon_threadsafe, args=(fired.append, "threadsafe"))
    t.start()
    t.join()
    assert fired == []
    assert native_run(name, nloop, lambda: len(fired) == 4)
    assert sorted(fired) == ["later", "reader", "soon", "threadsafe"]
    loop.close()
    a.close()
    b.close()


def test_close_leaves_the_native_loop_as_found(native: Any) -> None:
    name, nloop = native
    # Let the native loop start its own helpers first; they are its business.
    native_run(name, nloop, lambda: False, timeout=0.02)
    before = native_count(name, nloop)
    loop = get_loop(nloop)
    a, b = socket.socketpair()
    b.send(b"x")  # readable: a leaked watcher would fire
    fired: list[str] = []
    loop.add_reader(a, fired.append, "reader")
    loop.add_writer(a, fired.append, "writer")
    loop.call_later(0.001, fired.append, "timer")
    loop.call_later(30, fired.append, "far timer")
    loop.call_soon(fired.append, "soon")
    loop.call_soon_threadsafe(fired.append, "threadsafe")
    loop.close()
    assert loop.stats() == {"readers": 0, "writers": 0, "pending": 0, "threadsafe": 0}
    # Native loops drop cancelled entries lazily, on their next iteration.
    native_run(name, nloop, lambda: False, timeout=0.05)
    assert native_count(name, nloop) == before
    assert fired == []
    if name == "glib":
        assert not nloop.iteration(False), "a wsloop source is still attached"
    a.close()
    b.close()


def test_an_exception_never_stops_the_native_loop(native: Any) -> None:
    name, nloop = native
    loop = get_loop(nloop)
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("handler bug")

    loop.call_soon(boom)
    loop.call_later(0.005, boom)
    loop.call_later(0.03, seen.append, "after")
    assert native_run(name, nloop, lambda: seen == ["after"], timeout=5)
    loop.close()


def test_native_loop_running_in_another_thread(native: Any) -> None:
    name, nloop = native
    loop = get_loop(nloop)
    if name in THREAD_BOUND:
        # Only the thread that made it may run an application's Qt or Tk
        # loop: it runs here, and the calls come from another thread.
        idents: list[int] = []
        fired = threading.Event()

        def post() -> None:
            for _ in range(100):
                loop.call_soon_threadsafe(lambda: idents.append(threading.get_ident()))
            loop.call_soon_threadsafe(fired.set)

        poster = threading.Thread(target=post)
        poster.start()
        assert native_run(name, nloop, fired.is_set)
        poster.join()
        assert len(idents) == 100 and set(idents) == {threading.get_ident()}
        loop.close()
        return
    done = threading.Event()
    idents: list[int] = []
    runner_ident: list[int] = []

    def run() -> None:
        runner_ident.append(threading.get_ident())
        native_run(name, nloop, done.is_set, timeout=10)

    loop.call_soon(lambda: None)  # keep the loop busy from the start
    t = threading.Thread(target=run)
    t.start()
    for _ in range(100):
        loop.call_soon_threadsafe(lambda: idents.append(threading.get_ident()))
    loop.call_soon_threadsafe(done.set)
    t.join(15)
    assert done.is_set()
    assert len(idents) == 100 and set(idents) == set(runner_ident)
    loop.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["libev", "libuv"])
def test_plain_native_run_does_the_work_then_returns(name: str) -> None:
    """An application's ``loop.run()`` runs what was queued before it
    started (also from another thread), and returns once wsloop is done:
    wsloop's idle waker never keeps a foreign loop alive."""
    from loopkit import native_loop

    require(name)
    nloop = native_loop(name)
    loop = get_loop(nloop)
    fired: list[str] = []
    t = threading.Thread(target=loop.call_soon_threadsafe, args=(fired.append, "threadsafe"))
    t.start()
    t.join()
    loop.call_later(0.01, fired.append, "timer")
    nloop.run()
    assert sorted(fired) == ["threadsafe", "timer"]
    nloop.run()  # nothing of wsloop's is left to keep it running
    loop.close()
    free_native(name, nloop)


def test_qt_application_adapted_from_another_thread() -> None:
    """A worker thread may adapt the application's QCoreApplication and
    register work before ``app.exec()``: the Qt objects are made on the
    application's thread when it runs."""
    from loopkit import native_loop

    require("qt")
    app = native_loop("qt")
    box: dict[str, Any] = {}
    a, b = socket.socketpair()
    b.send(b"x")
    fired: list[str] = []

    def worker() -> None:
        loop = box["loop"] = get_loop(app)
        loop.call_soon(fired.append, "soon")
        loop.call_later(0.01, fired.append, "later")
        loop.add_reader(a, lambda: (fired.append("reader"), loop.remove_reader(a)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert fired == []
    assert native_run("qt", app, lambda: len(fired) == 3)
    assert sorted(fired) == ["later", "reader", "soon"]
    box["loop"].close()
    a.close()
    b.close()


def test_tk_root_adapted_on_another_thread_says_so() -> None:
    from loopkit import native_loop

    require("tk")
    root = native_loop("tk")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            get_loop(root)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors and "thread that created it" in str(errors[0])


PYQT6_APP = r"""
import json, sys, threading
from PyQt6.QtCore import QCoreApplication

import wsloop
from wsloop.loops import get_loop

url = sys.argv[1]
app = QCoreApplication([])
loop = get_loop(app)
got = []

def on_message(ws, data):
    got.append(json.loads(data)["seq"])
    if got[-1] == 20:
        ws.close()

# Before exec(), from this thread and from another one.
wsloop.connect(url, loop=app, on_message=on_message, on_close=lambda *a: app.quit())
t = threading.Thread(target=loop.call_soon_threadsafe, args=(got.append, "threadsafe"))
t.start()
t.join()
app.exec()
loop.close()
# A loop wsloop owns picks the binding the application imported.
owned = get_loop("qt")
owned.call_later(0.01, owned.stop)
owned.run()
owned.close()
print(json.dumps({"binding": loop.qt.name, "owned": owned.qt.name, "got": got}))
"""


def test_an_application_on_pyqt6(peer: Any) -> None:
    """PyQt6 rather than PySide6: the binding of the application object.
    (In a process of its own: two Qt bindings do not share one process.)"""
    import json
    import subprocess
    import sys

    import wsloop
    from netkit import Ticker

    server = peer.call(lambda: wsloop.serve(Ticker(200), loop=peer.loop))
    out = subprocess.run(
        [sys.executable, "-c", PYQT6_APP, server.url], capture_output=True, text=True, timeout=30
    )
    peer.call(server.close)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["binding"] == result["owned"] == "PyQt6"
    assert result["got"][0] == "threadsafe" and result["got"][1:] == list(range(1, 21))
