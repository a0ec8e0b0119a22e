"""libev through gevent's libev core, with no monkey-patching and no
greenlets: a private loop, or the loop of the application's gevent hub."""

from __future__ import annotations

from typing import Any

from ._gevent import GeventLoop

try:
    from gevent.libev import corecext as _corecext
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the libev backend needs gevent's libev core: pip install 'wsloop[libev]'"
    ) from exc

__all__ = ["LibevLoop"]


class LibevLoop(GeventLoop):
    """Adapts a ``gevent.libev.corecext.loop`` (a new private one if None).

    For the loop of a running gevent hub pass ``gevent.get_hub().loop``.
    """

    name = "libev"

    def __init__(self, loop: Any = None) -> None:
        owned = loop is None
        super().__init__(_corecext.loop(default=False) if owned else loop, owned)
