"""The Qt event loop (PySide6, or PyQt6 when the application uses it).

fds are watched with ``QSocketNotifier``; the earliest wsloop timer is a
precise Qt timer (``QObject.startTimer``); ready callbacks and wake-ups from
other threads are events posted to one small receiver object, the
primitive under a queued signal: ``QCoreApplication.postEvent`` may be
called from any thread and the event is delivered on the receiver's.

Qt objects belong to one thread, so the registrations live in plain Python
and the Qt objects are made on the loop's thread
(``wsloop/loops/_threadbound.py``). An application's loop is its
``QCoreApplication``/``QApplication``, run by its own ``app.exec()`` on its
main thread; a loop wsloop owns runs a ``QEventLoop`` on the thread that
calls :meth:`Loop.run`, and creates a ``QCoreApplication`` if the process
has none yet (Qt needs one; create your own first if you want a
``QApplication``).

Signals: a run (``QEventLoop.exec()``) blocks in Qt's wait, where Python
gets no chance to run a ``signal.signal`` handler; a run on the main thread
watches a signal wake-up fd of its own so handlers run as soon as a signal
arrives, and Ctrl-C with Python's default SIGINT handler ends the run with
:exc:`KeyboardInterrupt` (``wsloop/loops/_signals.py``).

The binding is the application's: the native loop's own module when one is
passed, else PyQt6 if only PyQt6 is imported, else PySide6.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._signals import signals_wake_loop
from ._threadbound import ThreadBoundLoop, Watch

__all__ = ["QtLoop"]

_EXTRA = "the Qt backend needs PySide6 (or PyQt6): pip install 'wsloop[qt]'"


class _Binding:
    """The few things wsloop takes from a Qt binding."""

    def __init__(self, name: str) -> None:
        self.name = name
        # QtCore first: shiboken6 imported alone imports PySide6 itself, and
        # does not fail cleanly when it is missing.
        self.QtCore: Any = importlib.import_module(f"{name}.QtCore")
        QtCore = self.QtCore
        if name == "PyQt6":
            from PyQt6 import sip

            self.delete: Callable[[Any], None] = sip.delete
        else:
            import shiboken6

            self.delete = shiboken6.delete
        self.ready_type = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())
        self.wake_type = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())
        self.Receiver = _receiver_class(self)


_bindings: dict[str, _Binding] = {}
_bindings_lock = threading.Lock()
# A QCoreApplication wsloop had to create: kept for the life of the process
# (Qt allows one, and it dies with its last Python reference).
_made_app: list[Any] = []


def binding(native: Any = None) -> _Binding:
    """The binding of ``native`` (a Qt object), or the application's."""
    if native is not None:
        name = type(native).__module__.partition(".")[0]
        if name not in ("PySide6", "PyQt6"):
            raise TypeError(f"expected a PySide6 or PyQt6 application object, not {native!r}")
        return _load(name)
    if "PyQt6.QtCore" in sys.modules and "PySide6.QtCore" not in sys.modules:
        return _load("PyQt6")
    try:
        return _load("PySide6")
    except ImportError:
        try:
            return _load("PyQt6")
        except ImportError:
            pass
        raise


def _load(name: str) -> _Binding:
    with _bindings_lock:
        found = _bindings.get(name)
        if found is None:
            try:
                found = _bindings[name] = _Binding(name)
            except ImportError as exc:
                raise ImportError(_EXTRA) from exc
        return found


def _receiver_class(qt: _Binding) -> Any:
    QtCore = qt.QtCore
    ready_type, wake_type = qt.ready_type, qt.wake_type

    class Receiver(QtCore.QObject):  # type: ignore[misc, name-defined]
        """Lives on the loop's thread; gets wsloop's events and timer."""

        def __init__(self, loop: QtLoop) -> None:
            super().__init__()
            self.loop: QtLoop | None = loop
            self.timer_id = 0

        def customEvent(self, event: Any) -> None:  # Qt's name
            loop = self.loop
            if loop is None:
                return
            if loop._bound is None:
                loop._bind()  # first event on an application's thread
            kind = event.type()
            if kind == wake_type:
                loop._drain_threadsafe()
            elif kind == ready_type:
                loop._run_ready()

        def timerEvent(self, event: Any) -> None:  # Qt's name
            if event.timerId() != self.timer_id:
                return
            self.killTimer(self.timer_id)
            self.timer_id = 0
            if self.loop is not None:
                self.loop._run_timers()

    return Receiver


class _Waker:
    """Where wake-ups are posted; None while no receiver exists (a loop
    wsloop owns between runs), and then remembered for the next run."""

    __slots__ = ("lock", "pending", "receiver")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.receiver: Any = None
        self.pending = False


class QtLoop(ThreadBoundLoop):
    """Adapts the application's ``QCoreApplication`` (or ``QApplication``),
    or, with None, runs a ``QEventLoop`` wsloop owns."""

    name = "qt"

    def __init__(self, app: Any = None) -> None:
        qt = binding(app)
        QtCore = qt.QtCore
        if app is None:
            app = QtCore.QCoreApplication.instance()
            if app is None:
                app = QtCore.QCoreApplication([sys.argv[0] if sys.argv else "wsloop"])
                _made_app.append(app)
            owned = True
        elif isinstance(app, QtCore.QCoreApplication):
            owned = False
        else:
            raise TypeError(f"expected a QCoreApplication or QApplication, not {app!r}")
        super().__init__(owned=owned, native=None if owned else app)
        self.qt = qt
        self.app = app
        self._qloop: Any = None
        self._receiver: Any = None
        self._init_waker()
        if not owned:
            receiver = self._receiver = qt.Receiver(self)
            on_app_thread = self._on_app_thread()
            if not on_app_thread:
                receiver.moveToThread(app.thread())
            # Owned by the application from now on, not by its Python
            # wrapper: whichever thread drops the wrapper, the object dies
            # on its own thread, by deleteLater().
            receiver.setParent(app)
            if on_app_thread:
                self._bind()
            with self._waker.lock:
                self._waker.receiver = self._receiver

    # -- binding to the loop's thread ----------------------------------------

    def _bind(self) -> None:
        if self.owned:
            self._receiver = self.qt.Receiver(self)
            waker = self._waker
            with waker.lock:
                waker.receiver = self._receiver
                if waker.pending:
                    waker.pending = False
                    self._post(self.qt.wake_type)
        super()._bind()

    def _unbind(self) -> None:
        super()._unbind()
        if self.owned and self._receiver is not None:
            waker = self._waker
            if waker is not None:  # (None: closed)
                with waker.lock:
                    waker.receiver = None
                    waker.pending = True  # one may have been in flight: drain next run
            receiver, self._receiver = self._receiver, None
            receiver.loop = None
            self.qt.delete(receiver)  # and with it every notifier

    def _post(self, kind: Any, receiver: Any = None) -> None:
        QtCore = self.qt.QtCore
        target = receiver if receiver is not None else self._receiver
        QtCore.QCoreApplication.postEvent(target, QtCore.QEvent(kind))

    # -- the thread-bound table ----------------------------------------------

    def _native_watch(self, watch: Watch) -> Any:
        Notifier = self.qt.QtCore.QSocketNotifier
        kind = Notifier.Type.Write if watch.writable else Notifier.Type.Read
        notifier = Notifier(watch.fd, kind, self._receiver)
        notifier.activated.connect(watch.dispatch)
        return notifier

    def _native_unwatch(self, native: Any) -> None:
        native.setEnabled(False)
        native.deleteLater()  # it may be the one emitting right now

    def _native_kick(self) -> None:
        self._post(self.qt.ready_type)

    def _native_arm(self, ms: int) -> None:
        receiver = self._receiver
        receiver.timer_id = receiver.startTimer(ms, self.qt.QtCore.Qt.TimerType.PreciseTimer)

    def _native_disarm(self) -> None:
        receiver = self._receiver
        if receiver is not None and receiver.timer_id:
            receiver.killTimer(receiver.timer_id)
            receiver.timer_id = 0

    # -- the thread-safe wake-up ----------------------------------------------

    def _waker_start(self, fire: Callable[[], None]) -> Any:
        return _Waker()

    def _waker_send(self, waker: Any) -> None:
        if waker is None:
            return  # closed meanwhile, by another thread
        with waker.lock:
            if waker.receiver is None:
                waker.pending = True
            else:
                self._post(self.qt.wake_type, waker.receiver)

    def _waker_stop(self, waker: Any) -> None:
        with waker.lock:
            waker.receiver = None

    # -- running ---------------------------------------------------------------

    def _on_app_thread(self) -> bool:
        return bool(self.qt.QtCore.QThread.currentThread() is self.app.thread())

    def is_running(self) -> bool:
        if self._qloop is not None and self._qloop.isRunning():
            return True
        if self.owned or not self._on_app_thread():
            return False
        return bool(self.qt.QtCore.QThread.currentThread().loopLevel() > 0)

    def _run(self) -> None:
        if not self.owned and not self._on_app_thread():
            raise RuntimeError(
                "an application's Qt loop runs on the thread of its QCoreApplication; "
                "call run() there (or app.exec())"
            )
        if self._bound is None:
            self._bind()
        self._qloop = self.qt.QtCore.QEventLoop()
        self._in_run = True
        try:
            with signals_wake_loop(self._watch_signal_fd, self._qloop.quit):
                self._qloop.exec()
        finally:
            self._qloop = None
            self._in_run = False
            if (self.owned or self._closed) and self._bound is not None:
                self._unbind()

    def _watch_signal_fd(self, fd: int, drain: Callable[[], None]) -> Callable[[], None]:
        Notifier = self.qt.QtCore.QSocketNotifier
        notifier = Notifier(fd, Notifier.Type.Read, self._receiver)
        notifier.activated.connect(lambda *_: drain())

        def unwatch() -> None:  # after the run: nothing is emitting
            notifier.setEnabled(False)
            self.qt.delete(notifier)

        return unwatch

    def _stop(self) -> None:
        if self._qloop is not None:
            self._qloop.quit()

    def _release(self) -> None:
        super()._release()
        if self.owned:
            return  # its receiver lives only during a run, whose end deletes it
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.loop = None
            receiver.deleteLater()  # thread-safe; we may be inside its event
