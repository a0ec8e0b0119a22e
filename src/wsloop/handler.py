"""The callback interface: what a WebSocket tells the application.

Subclass :class:`Handler` and override what you need, or pass any object
with some of these methods, or pass plain functions as ``on_message=...``
keyword arguments to :func:`wsloop.connect` / :func:`wsloop.serve`. Every
callback runs on the loop's thread. An exception from a callback is logged,
passed to ``on_error``, and (by default) closes that connection with 1011;
it never reaches the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .client import Client
    from .websocket import WebSocket

__all__ = [
    "EVENTS",
    "Handler",
    "HandlerLike",
    "has_callbacks",
    "resolve_handler",
    "split_callbacks",
]

EVENTS = (
    "on_open",
    "on_message",
    "on_ping",
    "on_pong",
    "on_close",
    "on_error",
    "on_writable",
    "on_state",
)


class HandlerLike(Protocol):
    """What a connection calls: every method of :class:`Handler`. The
    asyncio and blocking front-ends implement it per connection."""

    def on_open(self, ws: WebSocket) -> None: ...

    def on_message(self, ws: WebSocket, data: str | bytes) -> None: ...

    def on_ping(self, ws: WebSocket, data: bytes) -> None: ...

    def on_pong(self, ws: WebSocket, data: bytes) -> None: ...

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None: ...

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None: ...

    def on_writable(self, ws: WebSocket) -> None: ...

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None: ...


class Handler:
    """No-op base class; override the events you care about."""

    def on_open(self, ws: WebSocket) -> None:
        """The handshake completed; ``ws`` can send."""

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        """A whole message: ``str`` for text, ``bytes`` for binary."""

    def on_ping(self, ws: WebSocket, data: bytes) -> None:
        """A ping arrived; the pong was already sent."""

    def on_pong(self, ws: WebSocket, data: bytes) -> None:
        """A pong arrived."""

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        """The connection is closed. ``clean`` is True when close frames
        were exchanged; 1006 means it ended without one."""

    def on_error(self, ws: WebSocket | None, error: BaseException) -> None:
        """Something failed: a connection attempt, the protocol, a callback.
        ``ws`` is None when no connection exists (e.g. DNS failure)."""

    def on_writable(self, ws: WebSocket) -> None:
        """The send buffer drained below its low watermark: send more."""

    def on_state(self, client: Client, state: str, detail: dict[str, Any]) -> None:
        """A client's state changed: ``connecting``, ``open``, ``waiting``
        (``detail['delay']`` seconds before the next attempt), ``closed`` or
        ``gave_up``."""


class _Combined(Handler):
    def __init__(self, base: Any, overrides: dict[str, Any]) -> None:
        for name in EVENTS:
            fn = overrides.get(name) or getattr(base, name, None)
            if fn is not None:
                setattr(self, name, fn)


def split_callbacks(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``on_*`` keyword arguments (callbacks) apart from the rest (options)."""
    callbacks = {k: v for k, v in kwargs.items() if k.startswith("on_")}
    options = {k: v for k, v in kwargs.items() if not k.startswith("on_")}
    return callbacks, options


def has_callbacks(obj: Any) -> bool:
    """Whether ``obj`` has any of the :data:`EVENTS` methods."""
    return any(callable(getattr(obj, name, None)) for name in EVENTS)


def resolve_handler(handler: Any, callbacks: dict[str, Any]) -> Handler:
    """A :class:`Handler` from an object and/or ``on_*`` functions."""
    for name, fn in callbacks.items():
        if name not in EVENTS:
            raise TypeError(f"unknown callback {name!r}: use one of {', '.join(EVENTS)}")
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable, not {type(fn).__name__}")
    if handler is None and not callbacks:
        return Handler()
    if isinstance(handler, Handler) and not callbacks:
        return handler
    if handler is not None and not has_callbacks(handler):
        raise TypeError(
            f"handler {handler!r} has none of the methods {', '.join(EVENTS)}; "
            "subclass wsloop.Handler or pass on_message=... functions"
        )
    return _Combined(handler, callbacks)
