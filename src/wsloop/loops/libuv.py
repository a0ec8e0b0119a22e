"""libuv through gevent's libuv core (needs cffi)."""

from __future__ import annotations

from typing import Any

from ._gevent import GeventLoop

try:
    from gevent.libuv import loop as _uvloop_mod
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the libuv backend needs gevent's libuv core and cffi: pip install 'wsloop[libuv]'"
    ) from exc

__all__ = ["LibuvLoop"]


class LibuvLoop(GeventLoop):
    """Adapts a ``gevent.libuv.loop.loop`` (a new private one if None)."""

    name = "libuv"

    def __init__(self, loop: Any = None) -> None:
        owned = loop is None
        super().__init__(_uvloop_mod.loop(default=False) if owned else loop, owned)
