"""Event-loop backends: one small interface (:class:`Loop`), one module each.

=========  =====================================  ==================
name       native loop                            extra
=========  =====================================  ==================
builtin    wsloop's own, on :mod:`selectors`      (none)
asyncio    any asyncio loop                       (none)
uvloop     a uvloop loop (asyncio backend)        ``wsloop[uvloop]``
libev      ``gevent.libev.corecext.loop``         ``wsloop[libev]``
libuv      ``gevent.libuv.loop.loop``             ``wsloop[libuv]``
glib       ``GLib.MainContext`` / ``MainLoop``    ``wsloop[glib]``
=========  =====================================  ==================
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .base import Handle, Loop
from .builtin import BuiltinLoop

__all__ = ["BACKENDS", "BuiltinLoop", "Handle", "Loop", "get_loop"]

#: The backend names :func:`get_loop` takes.
BACKENDS = ("builtin", "asyncio", "uvloop", "libev", "libuv", "glib")

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
    raise TypeError(
        f"cannot run on {native!r}: pass a wsloop Loop, a backend name "
        f"({', '.join(BACKENDS)}), an asyncio loop, a gevent loop or a GLib main context/loop"
    )


def get_loop(spec: Loop | str | Any = None) -> Loop:
    """The :class:`Loop` for ``spec``.

    ``None`` or a name makes a new loop that wsloop owns (``run()`` it). A
    native loop (asyncio, gevent's libev or libuv, GLib) is adapted; the
    same native loop always gets the same adapter, so everything wsloop
    puts on it is released together by that adapter's ``close()``.
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
