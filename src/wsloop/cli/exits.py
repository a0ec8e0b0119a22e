"""The exit statuses of ``wsloop connect``: one table, read by the code
that exits, by ``--help`` and by the test that checks docs/cli.md.

A script can tell apart a normal end (0), its own mistake (2), a server it
could not reach (3), a TLS failure (4), a server that refused the handshake
(5), and each way a connection can end abnormally (10-19).
"""

from __future__ import annotations

import ssl
from typing import NamedTuple

from ..errors import ProxyError
from ..protocol import HandshakeError

__all__ = [
    "CLOSED",
    "EXIT_STATUSES",
    "FAILED",
    "INTERRUPTED",
    "OK",
    "OTHER_CLOSE",
    "REFUSED",
    "TLS",
    "UNREACHABLE",
    "USAGE",
    "ExitStatus",
    "for_close",
    "for_error",
    "help_text",
]


class ExitStatus(NamedTuple):
    status: int
    meaning: str


OK = ExitStatus(0, "closed normally: close code 1000 (or none) in a closing handshake")
FAILED = ExitStatus(1, "an unexpected error (a bug: --debug shows the traceback)")
USAGE = ExitStatus(2, "usage error: a bad option, URL, header or file")
UNREACHABLE = ExitStatus(
    3, "could not connect: DNS, refused, unreachable, timed out, or the proxy refused"
)
TLS = ExitStatus(4, "TLS failed: certificate not verified, or the TLS handshake failed")
REFUSED = ExitStatus(5, "the server refused the WebSocket handshake (HTTP status, printed)")
INTERRUPTED = ExitStatus(130, "interrupted by a second Ctrl-C")

#: Each abnormal close code's status; any other code is ``OTHER_CLOSE``.
CLOSED: dict[int, ExitStatus] = {
    1006: ExitStatus(10, "connection lost without a closing handshake (1006)"),
    1011: ExitStatus(11, "server error (1011), or no pong in time with --ping-interval"),
    1009: ExitStatus(12, "message too big (1009): see --max-size"),
    1002: ExitStatus(13, "protocol error (1002)"),
    1007: ExitStatus(14, "invalid data, such as text that is not UTF-8 (1007)"),
    1008: ExitStatus(15, "policy violation (1008)"),
    1003: ExitStatus(16, "unsupported data (1003)"),
    1001: ExitStatus(17, "the server is going away (1001): shutting down or restarting"),
    1012: ExitStatus(18, "service restart, try again later, bad gateway (1012-1014)"),
}
CLOSED[1013] = CLOSED[1014] = CLOSED[1012]
OTHER_CLOSE = ExitStatus(19, "closed with any other code (1010, 3000-4999...)")

#: Every status, in order, for --help and docs/cli.md.
EXIT_STATUSES: list[ExitStatus] = sorted(
    {OK, FAILED, USAGE, UNREACHABLE, TLS, REFUSED, INTERRUPTED, OTHER_CLOSE, *CLOSED.values()}
)

_NORMAL = (1000, 1005)  # 1005: a close frame with no code


def for_close(code: int, clean: bool) -> int:
    """The status for a connection that ended with ``code``."""
    if clean and code in _NORMAL:
        return OK.status
    return CLOSED.get(code, OTHER_CLOSE).status


# The first class an error is an instance of decides its status: order
# matters (a ProxyError is a HandshakeError, an SSLError an OSError).
_ERRORS: list[tuple[type[BaseException], ExitStatus]] = [
    (ProxyError, UNREACHABLE),
    (HandshakeError, REFUSED),
    (ssl.SSLError, TLS),
    (OSError, UNREACHABLE),  # ConnectionError and TimeoutError too
]


def for_error(error: BaseException) -> int:
    """The status for a connection that could not be opened."""
    if isinstance(error, HandshakeError) and error.status == 0:
        return UNREACHABLE.status  # the connection closed before any HTTP answer
    for kind, status in _ERRORS:
        if isinstance(error, kind):
            return status.status
    return FAILED.status


def help_text() -> str:
    """The table for ``wsloop connect --help``."""
    lines = ["exit status:"]
    lines += [f"  {status:<4} {meaning}" for status, meaning in EXIT_STATUSES]
    return "\n".join(lines)
