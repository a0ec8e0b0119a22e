"""Event-loop backends: one small interface (:class:`Loop`), one module each.

=======  ======================================  ===================
name     native loop                             extra
=======  ======================================  ===================
builtin  wsloop's own, on :mod:`selectors`       (none)
asyncio  any asyncio loop                        (none)
uvloop   a uvloop loop (asyncio backend)         ``wsloop[uvloop]``
libev    ``gevent.libev.corecext.loop``          ``wsloop[libev]``
libuv    ``gevent.libuv.loop.loop``              ``wsloop[libuv]``
glib     ``GLib.MainContext`` / ``MainLoop``     ``wsloop[glib]``
qt       ``QCoreApplication`` (PySide6/PyQt6)    ``wsloop[qt]``
twisted  a Twisted reactor                       ``wsloop[twisted]``
trio     a trio run (:func:`.trio.open_loop`)    ``wsloop[trio]``
tk       ``tkinter.Tk`` (or a display-less Tcl)  (none: stdlib)
=======  ======================================  ===================
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .base import Handle, Loop
from .builtin import BuiltinLoop

__all__ = ["BACKENDS", "BuiltinLoop", "Handle", "Loop", "get_loop"]

#: The backend names :func:`get_loop` takes.
BACKENDS = (
    "builtin",
    "asyncio",
    "uvloop",
    "libev",
    "libuv",
    "glib",
    "qt",
    "twisted",
    "trio",
    "tk",
)

# id(native loop) -> weak reference to its adapter (gevent loops cannot be
# weakly referenced themselves, so they are keyed by id and checked by identity).
_adapters: dict[int, weakref.ref[Loop]] = {}
_adapters_lock = threading.Lock()


def _new(name: str) -> Loop:
    if name == "builtin":
        return BuiltinLoop()
    if name == "asyncio":
        from .asyncio import AsyncioLoop

        return AsyncioLoop()
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise ImportError(
                "the uvloop backend needs uvloop: pip install 'wsloop[uvloop]'"
            ) from exc
        from .asyncio import AsyncioLoop

        return AsyncioLoop(uvloop.new_event_loop(), owned=True)
    if name == "libev":
        from .libev import LibevLoop

        return LibevLoop()
    if name == "libuv":
        from .libuv import LibuvLoop

        return LibuvLoop()
    if name == "glib":
        from .glib import GLibLoop

        return GLibLoop()
    if name == "qt":
        from .qt import QtLoop

        return QtLoop()
    if name == "tk":
        from .tk import TkLoop

        return TkLoop()
    if name == "twisted":
        from .twisted import TwistedLoop

        return TwistedLoop()
    if name == "trio":
        from .trio import TrioLoop

        return TrioLoop()
    raise ValueError(f"unknown loop {name!r}: choose one of {', '.join(BACKENDS)}")


def _adapt(native: Any) -> Loop:
    import asyncio

    if isinstance(native, asyncio.AbstractEventLoop):
        from .asyncio import AsyncioLoop

        return AsyncioLoop(native)
    module = type(native).__module__
    if module.startswith("gevent.libev"):
        from .libev import LibevLoop

        return LibevLoop(native)
    if module.startswith("gevent.libuv"):
        from .libuv import LibuvLoop

        return LibuvLoop(native)
    if module.startswith("gi."):
        from .glib import GLibLoop

        return GLibLoop(native)
    if module.startswith(("PySide6.", "PyQt6.")):
        from .qt import QtLoop

        return QtLoop(native)
    if module == "tkinter" or module.startswith("tkinter.") or module == "_tkinter":
        from .tk import TkLoop

        return TkLoop(native)
    if module.startswith("twisted."):
        from .twisted import TwistedLoop

        return TwistedLoop(native)
    raise TypeError(
        f"cannot run on {native!r}: pass a wsloop Loop, a backend name "
        f"({', '.join(BACKENDS)}), an asyncio loop, a gevent loop, a GLib main "
        "context/loop, a Qt application, a Twisted reactor or a Tk root "
        "(for trio: wsloop.loops.trio.open_loop())"
    )


def get_loop(spec: Loop | str | Any = None) -> Loop:
    """The :class:`Loop` for ``spec``.

    ``None`` or a name makes a new loop that wsloop owns (``run()`` it). A
    native loop (asyncio, gevent's libev or libuv, GLib, a Qt application,
    a Twisted reactor, a Tk root) is adapted; the same native loop always
    gets the same adapter, so everything wsloop puts on it is released
    together by that adapter's ``close()``. trio has no loop object: a trio
    program opens its adapter with :func:`wsloop.loops.trio.open_loop`.
    """
    if spec is None:
        return BuiltinLoop()
    if isinstance(spec, Loop):
        return spec
    if isinstance(spec, str):
        return _new(spec)
    with _adapters_lock:
        ref = _adapters.get(id(spec))
        adapter = ref() if ref is not None else None
        if adapter is None or adapter.closed or adapter.native is not spec:
            adapter = _adapt(spec)
            _adapters[id(spec)] = weakref.ref(adapter)
            for key in [k for k, r in _adapters.items() if r() is None]:
                del _adapters[key]
        return adapter
