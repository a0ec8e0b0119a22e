"""The HTTP/1.1 opening handshake of RFC 6455 section 4.

Parsing is bounded: a header line may hold at most ``MAX_LINE`` bytes, a head
at most ``MAX_HEADERS`` header lines and ``MAX_HEAD`` bytes in all. Past those
limits the head is refused (431 on a server; 414 when it is the request line
that is too long) before any more memory is spent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .errors import HandshakeError

__all__ = [
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE",
    "Headers",
    "OriginRule",
    "Request",
    "Response",
    "WebSocketURL",
    "accept_key",
    "check_origin",
    "parse_url",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_LINE = 8192
MAX_HEADERS = 128
MAX_HEAD = 65536

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# The origin-form request target (RFC 7230 5.3.1, RFC 3986 3.3/3.4): an
# absolute path of pchars and "/", then optionally "?" and a query of
# pchars, "/" and "?"; a "%" must start a valid escape. Used with fullmatch.
_ORIGIN_FORM = re.compile(
    r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
    r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?"
)
_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    414: "URI Too Long",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


class Headers:
    """HTTP header fields in arrival order, looked up case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header; ``ValueError`` for a name or value HTTP cannot carry."""
        if not _TOKEN.match(name.encode("latin-1", "replace")):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} has a line break in its value")
        self._items.append((name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (case-insensitive), else ``default``."""
        name = name.lower()
        for k, v in self._items:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive), in order."""
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        """The header lines as sent, each ending in CRLF."""
        return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in self._items)


def token_list(values: Iterable[str]) -> list[str]:
    """Comma-separated tokens of one or more header values, lower-cased."""
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


@dataclass(frozen=True)
class Request:
    """A parsed HTTP request head."""

    method: str
    target: str
    version: str
    headers: Headers

    @property
    def path(self) -> str:
        """The request target (path and query): ``target``."""
        return self.target

    def serialize(self) -> bytes:
        """The request as sent: request line, headers, blank line."""
        line = f"{self.method} {self.target} {self.version}\r\n".encode("latin-1")
        return line + self.headers.serialize() + b"\r\n"


@dataclass(frozen=True)
class Response:
    """A parsed (client side) or composed (server side) HTTP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """The response as sent: status line, headers, blank line, body."""
        line = f"HTTP/1.1 {self.status} {self.reason}\r\n".encode("latin-1")
        return line + self.headers.serialize() + b"\r\n" + self.body


def error_response(status: int, message: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    """A short plain-text response that says why the handshake was refused."""
    body = (message + "\n").encode("utf-8")
    headers = Headers(extra)
    headers.add("Content-Type", "text/plain; charset=utf-8")
    headers.add("Content-Length", str(len(body)))
    headers.add("Connection", "close")
    return Response(status, _REASONS.get(status, "Error"), headers, body)


class HeadParser:
    """Accumulates bytes until a complete HTTP head, enforcing the limits.

    ``feed`` returns None while the head is incomplete, else ``(start_line,
    headers, rest)`` where ``rest`` is the bytes that followed the head.
    Limits violated raise :class:`HandshakeError` with status 431, 414 (the
    start line, i.e. the request target, is too long) or 400.
    """

    __slots__ = ("_buf", "_line_start", "_lines", "_scanned")

    def __init__(self) -> None:
        self._buf = bytearray()
        # Line bookkeeping for the incomplete head, kept as bytes arrive:
        # rescanning the whole buffer on every feed would make a client that
        # dribbles its head a byte at a time cost quadratic CPU.
        self._scanned = 0  # CRLFs starting before this index are counted
        self._lines = 0
        self._line_start = 0

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[str, Headers, bytes] | None:
        start = max(0, len(self._buf) - 3)
        self._buf += data
        end = self._buf.find(b"\r\n\r\n", start)
        if end < 0:
            self._check_partial()
            return None
        if end + 4 > MAX_HEAD:
            raise HandshakeError(431, f"HTTP head is larger than {MAX_HEAD} bytes")
        head = bytes(self._buf[:end])
        rest = bytes(self._buf[end + 4 :])
        self._buf = bytearray()
        lines = head.split(b"\r\n")
        if len(lines) - 1 > MAX_HEADERS:
            raise HandshakeError(431, f"more than {MAX_HEADERS} header lines")
        headers = Headers()
        for line in lines[1:]:
            if len(line) > MAX_LINE:
                raise HandshakeError(431, f"a header line is longer than {MAX_LINE} bytes")
            if line[:1] in (b" ", b"\t"):
                raise HandshakeError(400, "obsolete line folding in HTTP headers")
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise HandshakeError(400, f"malformed header line {line[:60]!r}")
            if b"\r" in value or b"\n" in value or b"\0" in value:
                raise HandshakeError(400, "invalid character in a header value")
            headers._items.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
        if len(lines[0]) > MAX_LINE:
            raise _start_line_too_long()
        return lines[0].decode("latin-1"), headers, rest

    def _check_partial(self) -> None:
        buf = self._buf
        if len(buf) > MAX_HEAD:
            raise HandshakeError(431, f"HTTP head is larger than {MAX_HEAD} bytes")
        i = buf.find(b"\r\n", self._scanned)
        while i >= 0:
            self._lines += 1
            self._line_start = i + 2
            i = buf.find(b"\r\n", i + 2)
        self._scanned = max(self._line_start, len(buf) - 1)
        if len(buf) - self._line_start > MAX_LINE:
            if not self._lines:  # still in the start line
                raise _start_line_too_long()
            raise HandshakeError(431, f"a header line is longer than {MAX_LINE} bytes")
        if self._lines > MAX_HEADERS + 1:
            raise HandshakeError(431, f"more than {MAX_HEADERS} header lines")


def _start_line_too_long() -> HandshakeError:
    # RFC 7230 3.1.1: a request line longer than the server accepts is 414.
    return HandshakeError(414, f"the start line is longer than {MAX_LINE} bytes: use a shorter URI")


def parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HandshakeError(400, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if not version.startswith("HTTP/"):
        raise HandshakeError(400, f"malformed request line {line[:80]!r}")
    return method, target, version


def parse_status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    # isdigit() alone takes "\u00b3" (a header byte 0xB3 read as Latin-1), which int() refuses.
    if (
        not version.startswith("HTTP/1.")
        or len(code) != 3
        or not (code.isascii() and code.isdigit())
    ):
        raise HandshakeError(0, f"malformed HTTP status line {line[:80]!r}")
    return int(code), reason


def validate_request(request: Request) -> str:
    """Check a client's opening handshake; returns its ``Sec-WebSocket-Key``.

    Raises :class:`HandshakeError` whose status and headers make the answer.
    """
    h = request.headers
    if request.method != "GET":
        raise HandshakeError(
            405, "a WebSocket handshake uses GET", headers=Headers([("Allow", "GET")])
        )
    if request.version != "HTTP/1.1":
        raise HandshakeError(505, "a WebSocket handshake needs HTTP/1.1")
    if not _ORIGIN_FORM.fullmatch(request.target):
        raise HandshakeError(
            400,
            "the request target must be a path such as /chat?room=1, "
            "of URI characters (RFC 3986; escape others as %XX)",
        )
    hosts = h.get_all("Host")
    if not hosts or not hosts[0]:
        raise HandshakeError(400, "missing Host header")
    if len(hosts) > 1:
        # RFC 7230 5.4: a request with more than one Host is answered 400.
        raise HandshakeError(400, "more than one Host header: send exactly one")
    if "websocket" not in token_list(h.get_all("Upgrade")):
        raise HandshakeError(
            426,
            "this is a WebSocket endpoint: send Upgrade: websocket",
            headers=Headers([("Upgrade", "websocket"), ("Connection", "Upgrade")]),
        )
    if "upgrade" not in token_list(h.get_all("Connection")):
        raise HandshakeError(400, "Connection header must include Upgrade")
    versions = h.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise HandshakeError(
            426,
            "unsupported Sec-WebSocket-Version; this server speaks 13",
            headers=Headers([("Sec-WebSocket-Version", "13")]),
        )
    keys = h.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise HandshakeError(400, "need exactly one Sec-WebSocket-Key header")
    try:
        raw = base64.b64decode(keys[0].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes in base64")
    return keys[0]


#: One entry of a server's allowed origins: an exact ``Origin`` value, a
#: pattern the whole value must match, or None for "no Origin header".
OriginRule = str | re.Pattern[str] | None


def check_origin(request: Request, origins: Iterable[OriginRule]) -> None:
    """Refuse (403) a request whose ``Origin`` is not one of ``origins``.

    Browsers send ``Origin`` with every WebSocket handshake and the server
    is the only one who can check it: this is the defence against
    cross-site WebSocket hijacking. A str must equal the header, a
    ``re.Pattern`` must fullmatch it, and None allows requests without
    one (non-browser clients). More than one ``Origin`` header is a 400.
    """
    values = request.headers.get_all("Origin")
    if len(values) > 1:
        raise HandshakeError(400, "more than one Origin header: send exactly one")
    origin = values[0] if values else None
    for rule in origins:
        if rule is None or isinstance(rule, str):
            if origin == rule:
                return
        elif origin is not None and rule.fullmatch(origin):
            return
    if origin is None:
        raise HandshakeError(403, "this server needs an Origin header")
    raise HandshakeError(403, f"origin {origin[:100]!r} is not allowed here")


# Extension header grammar (RFC 6455 9.1, RFC 7230 3.2.6).
ExtensionOffer = tuple[str, list[tuple[str, "str | None"]]]
_EXT_ITEM = re.compile(
    r"""\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*(?:([!#$%&'*+\-.^_`|~0-9A-Za-z]+)|"((?:[^"\\]|\\.)*)"))?\s*"""
)


def parse_extensions(values: Iterable[str]) -> list[ExtensionOffer]:
    """Parse ``Sec-WebSocket-Extensions`` values into (name, [(param, value)])."""
    result: list[ExtensionOffer] = []
    for value in values:
        pos = 0
        n = len(value)
        while pos < n:
            m = _EXT_ITEM.match(value, pos)
            if not m or m.group(2) is not None or m.group(3) is not None:
                raise HandshakeError(400, f"malformed Sec-WebSocket-Extensions {value!r}")
            name = m.group(1).lower()
            params: list[tuple[str, str | None]] = []
            pos = m.end()
            while pos < n and value[pos] == ";":
                m = _EXT_ITEM.match(value, pos + 1)
                if not m:
                    raise HandshakeError(400, f"malformed Sec-WebSocket-Extensions {value!r}")
                pv = m.group(2)
                if m.group(3) is not None:
                    pv = re.sub(r"\\(.)", r"\1", m.group(3))
                params.append((m.group(1).lower(), pv))
                pos = m.end()
            if pos < n:
                if value[pos] != ",":
                    raise HandshakeError(400, f"malformed Sec-WebSocket-Extensions {value!r}")
                pos += 1
            result.append((name, params))
    return result


def format_extension(name: str, params: Sequence[tuple[str, str | None]]) -> str:
    return "; ".join([name] + [k if v is None else f"{k}={v}" for k, v in params])


@dataclass(frozen=True)
class WebSocketURL:
    """A parsed ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    resource: str
    user_info: tuple[str, str] | None = field(default=None)

    @property
    def host_header(self) -> str:
        """The ``Host`` header for this URL (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` value for the URL's user-info, if any."""
        if self.user_info is None:
            return None
        cred = ":".join(self.user_info).encode("utf-8")
        return "Basic " + base64.b64encode(cred).decode("ascii")


def parse_url(url: str) -> WebSocketURL:
    """Parse a WebSocket URL; raises ValueError that says what is wrong."""
    if not isinstance(url, str):
        raise TypeError(
            f"url must be a str such as 'ws://host:port/path', not {type(url).__name__}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"{url!r} is not a WebSocket URL: it must start with ws:// or wss://")
    if parts.fragment:
        raise ValueError(f"{url!r}: a WebSocket URL cannot have a #fragment")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    secure = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    user_info = None
    if parts.username is not None:
        user_info = (unquote(parts.username), unquote(parts.password or ""))
    return WebSocketURL(
        secure, parts.hostname, port or (443 if secure else 80), resource, user_info
    )


def new_key() -> str:
    """A fresh random ``Sec-WebSocket-Key`` (16 bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")
