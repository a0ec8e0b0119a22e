"""RESP, Redis' wire format, through ``hiredis`` (the ``wsloop[redis]`` extra),
and the ``redis://`` / ``rediss://`` URLs that say where Redis is.

``hiredis.Reader`` is sans-I/O: it is fed the bytes a transport received
and hands back whole replies (RESP3 push frames as
``hiredis.PushNotification``), and ``hiredis.pack_command`` encodes a
command. Nothing here touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["RedisURL", "hiredis", "pack", "parse_redis_url"]


def _import_hiredis() -> Any:
    try:
        import hiredis as module
    except ImportError as exc:
        raise ImportError("the Redis broker needs hiredis: pip install 'wsloop[redis]'") from exc
    if not hasattr(module, "PushNotification"):
        # Before 3.2 a RESP3 push comes back as a plain list, which would be
        # taken for a command's reply.
        raise ImportError(
            f"the Redis broker needs hiredis >= 3.2 (RESP3 pushes), not "
            f"{getattr(module, '__version__', '?')}: pip install -U 'wsloop[redis]'"
        )
    return module


class _Lazy:
    """``hiredis``, imported on first use, so that importing
    :mod:`wsloop.broker` (and using the in-process broker) does not need it."""

    _module: Any = None

    def __getattr__(self, name: str) -> Any:
        if _Lazy._module is None:
            _Lazy._module = _import_hiredis()
        return getattr(_Lazy._module, name)


hiredis: Any = _Lazy()


def require_hiredis() -> None:
    """Raise the ImportError naming the extra now, if hiredis is missing."""
    if _Lazy._module is None:
        _Lazy._module = _import_hiredis()


def pack(*args: str | bytes | int) -> bytes:
    """One command, RESP-encoded."""
    data: bytes = hiredis.pack_command(args)
    return data


@dataclass(frozen=True)
class RedisURL:
    """Where Redis is and how to log in."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool

    def __str__(self) -> str:  # never the password
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisURL:
    """Parse ``redis://[user:password@]host[:port][/db]`` (``rediss://`` for
    TLS); ValueError says what is wrong."""
    if not isinstance(url, str):
        raise TypeError(f"a Redis URL is a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"a Redis URL starts with redis:// or rediss://, not {url!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"invalid port in Redis URL {url!r}") from None
    host = parts.hostname or "127.0.0.1"
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the path of a Redis URL is a database number, not {parts.path!r}")
    if parts.query:
        raise ValueError(f"a Redis URL takes no query, not {parts.query!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and username is not None:
        # redis://secret@host: a bare user-info is the password (AUTH pass)
        username, password = None, username
    return RedisURL(host, port, int(path or 0), username, password, parts.scheme == "rediss")
