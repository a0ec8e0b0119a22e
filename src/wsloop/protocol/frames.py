"""Frame-level pieces of RFC 6455 section 5: opcodes, close codes, masking.

Masking is the per-byte cost of every client frame and every frame a server
receives, so it must not be a Python loop over bytes. With the optional C
accelerator (``wsloop._speedups``, built when a compiler is available)
:func:`apply_mask` XORs eight bytes at a time at memory speed. The
pure-Python fallback XORs through ``bytes.translate`` on the four byte lanes
(``data[i::4]``), about 500 MB/s on this project's reference machine against
~15 MB/s for a byte loop; small payloads take the ``int`` XOR path, whose
constant cost is lower.

The accelerator also carries the per-message hot paths: :func:`build_frame`
(a whole frame in one allocation), :data:`read_frame` (a whole
unfragmented data frame, decoded; it declines anything else, which the
Python parser in reader.py handles as the reference) and
:class:`PayloadBuffer` (a large message that arrives in pieces, each copied
once). This module is the one place that chooses between the accelerator
and the Python twins defined here; nothing else imports ``_speedups`` for
framing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum
from types import ModuleType
from typing import Protocol

__all__ = [
    "CloseCode",
    "Opcode",
    "apply_mask",
    "build_frame",
    "encode_close_payload",
    "encode_frame",
    "frame_header",
    "is_valid_close_code",
]


class Opcode(IntEnum):
    """The frame opcodes of RFC 6455 (section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({0x0, 0x1, 0x2})
CONTROL_OPCODES = frozenset({0x8, 0x9, 0xA})
KNOWN_OPCODES = DATA_OPCODES | CONTROL_OPCODES


class CloseCode(IntEnum):
    """Close status codes of RFC 6455 section 7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire.

    1004-1006 and 1015 are reserved for local use, 1016-2999 are unassigned
    protocol codes, 3000-4999 belong to libraries and applications.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


#: What payload arguments accept (annotations are enforced where compiled).
BytesLike = bytes | bytearray | memoryview

_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]
_SMALL = 64


def _apply_mask_python(data: BytesLike, key: bytes, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key``, starting ``offset`` bytes
    into the key stream (so a frame's payload can be unmasked in chunks)."""
    n = len(data)
    if n == 0:
        return b""
    if offset & 3:
        o = offset & 3
        key = key[o:] + key[:o]
    if n <= _SMALL:
        q, r = divmod(n, 4)
        k = int.from_bytes(key * q + key[:r], "little")
        return (int.from_bytes(data, "little") ^ k).to_bytes(n, "little")
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_TABLES[key[i]])
    return bytes(out)


class _PayloadBufferPython:
    """The twin of the accelerator's ``PayloadBuffer``: a ``bytearray``,
    copied into ``bytes`` once complete."""

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("PayloadBuffer() is for messages of 2 bytes or more")
        self._data: bytearray | None = bytearray(size)
        self.filled = 0

    def fill(self, src: BytesLike, start: int, n: int, key: bytes | None, key_offset: int) -> None:
        data = self._data
        if data is None:
            raise ValueError("PayloadBuffer.fill() after take()")
        if key is not None and len(key) != 4:
            raise ValueError("the masking key must be 4 bytes or None")
        if start < 0 or n < 0 or start + n > len(src) or self.filled + n > len(data):
            raise ValueError("PayloadBuffer.fill() range out of bounds")
        with memoryview(src) as view:
            piece = view[start : start + n]
            at = self.filled
            data[at : at + n] = piece if key is None else apply_mask(piece, key, key_offset)
        self.filled += n

    def take(self) -> bytes:
        data = self._data
        if data is None:
            raise ValueError("PayloadBuffer.take() twice")
        if self.filled != len(data):
            raise ValueError("PayloadBuffer.take() before every byte is filled")
        self._data = None
        return bytes(data)


class PayloadBufferLike(Protocol):
    """What the connection needs of a :data:`PayloadBuffer`."""

    filled: int

    def fill(
        self, src: BytesLike, start: int, n: int, key: bytes | None, key_offset: int, /
    ) -> None: ...

    def take(self) -> bytes: ...


# The accelerator or the Python twins: chosen here, once, for every frame
# function below. Without a C compiler wsloop installs without it.
_c: ModuleType | None
try:
    from .. import _speedups as _c
except ImportError:
    _c = None

#: Whether the optional C accelerator (wsloop._speedups) is in use.
SPEEDUPS = _c is not None
apply_mask: Callable[..., bytes] = _c.apply_mask if _c is not None else _apply_mask_python
#: ``read_frame(buf, pos, end, is_client, limit)``: the C parser's fast path
#: for a whole unfragmented text/binary frame in ``buf[pos:end]`` (``(data,
#: frame_end)``), or None where it declines; None altogether without the
#: accelerator. See _speedups.c.
read_frame: (
    Callable[[bytes | bytearray | memoryview, int, int, bool, int], tuple[str | bytes, int] | None]
    | None
) = _c.read_frame if _c is not None else None
#: ``PayloadBuffer(size)``: a message of ``size`` (>= 2) bytes assembled as
#: its pieces arrive: ``fill(src, start, n, key, key_offset)`` appends
#: ``src[start:start + n]`` unmasked with ``key`` (None: as is), ``take()``
#: returns the ``bytes`` once every byte is filled. The accelerator's copies
#: each byte once; the twin once more at the end.
PayloadBuffer: Callable[[int], PayloadBufferLike] = (
    _c.PayloadBuffer if _c is not None else _PayloadBufferPython
)


_pack_b = struct.Struct("!BB").pack
_pack_h = struct.Struct("!BBH").pack
_pack_q = struct.Struct("!BBQ").pack


def frame_header(first_byte: int, length: int, masked: bool = False) -> bytes:
    """The header of a frame whose payload is ``length`` bytes (without
    the masking key that follows it when ``masked``)."""
    m = 0x80 if masked else 0
    if length < 126:
        return _pack_b(first_byte, m | length)
    if length < 65536:
        return _pack_h(first_byte, m | 126, length)
    return _pack_q(first_byte, m | 127, length)


def _build_frame_python(first_byte: int, payload: BytesLike, mask_key: bytes | None) -> bytes:
    head = frame_header(first_byte, len(payload), mask_key is not None)
    if mask_key is not None:
        return head + mask_key + apply_mask(payload, mask_key)
    return head + payload


#: ``build_frame(first_byte, payload, mask_key)``: one whole frame as bytes,
#: given its first byte (FIN, RSV1-3, opcode); the hot path of every send.
build_frame: Callable[[int, BytesLike, bytes | None], bytes] = (
    _c.encode_frame if _c is not None else _build_frame_python
)


def encode_frame(
    opcode: int,
    payload: BytesLike,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """Serialise one frame.

    ``mask_key`` is the fresh 4-byte key a client must use; servers pass None.
    Lengths always use the shortest encoding (RFC 6455 5.2).
    """
    return build_frame((0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode, payload, mask_key)


def encode_close_payload(code: int | None, reason: str) -> bytes:
    """The payload of a close frame: empty, or a 2-byte code and a UTF-8 reason.

    Raises ValueError, saying what to pass, for a code that may not be sent
    or a reason that does not fit; the one check behind every ``close()``.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if isinstance(code, bool) or not isinstance(code, int) or not is_valid_close_code(code):
        raise ValueError(
            f"close code {code!r} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError(f"close reason is {len(data)} bytes in UTF-8; at most 123 fit in a frame")
    return code.to_bytes(2, "big") + data
