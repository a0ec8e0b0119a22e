"""The reading half of a connection, first step: bytes in, frames out.

A :class:`FrameReader` buffers what arrived and parses frame headers,
checking what RFC 6455 5.2 asks of a single frame (known opcodes, reserved
bits, masking by role, control frame sizes, minimal length encodings). It
hands data frames' payload on in pieces, unmasked, as they arrive (to
:mod:`.assembler`, which makes messages of them) and control frames
whole. It raises :class:`~.errors.ProtocolError` with the close code for
a frame that breaks the protocol.

With the C accelerator, :meth:`FrameReader.read_whole` decodes a whole
unfragmented data frame in one call; whatever it declines goes through the
Python parser below, which stays the reference.
"""

from __future__ import annotations

from typing import Final

from .errors import ProtocolError
from .frames import CONTROL_OPCODES, KNOWN_OPCODES, PayloadBufferLike, apply_mask, read_frame

__all__ = ["CONTROL", "DATA", "NEED_MORE", "FrameReader"]

#: What :meth:`FrameReader.read_header` found.
NEED_MORE: Final = 0  # not a whole header yet (or, for a control frame, its payload)
DATA: Final = 1  # a data frame's header: its payload follows (FrameReader.left bytes)
CONTROL: Final = 2  # a whole control frame (FrameReader.control_payload)

# Final: compiled code keeps it in a C static, not a module-dict lookup per frame.
_read_frame: Final = read_frame


class FrameReader:
    """Frames in, from the bytes given to :meth:`feed`."""

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        self._in = bytearray()
        self._pos = 0
        #: The frame being read: payload bytes still to come, or -1 between frames.
        self.left = -1
        self.fin = False
        self.opcode = 0
        self.rsv1 = False
        #: Its masking key (None: not masked) and how far into it the payload is.
        self.mask: bytes | None = None
        self.offset = 0
        #: The payload of the control frame :meth:`read_header` returned.
        self.control_payload = b""

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self._in) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._in += data

    def clear(self) -> None:
        """Drop everything (the connection is closed)."""
        self._in = bytearray()
        self._pos = 0
        self.left = -1

    # -- whole frames -----------------------------------------------------

    def read_whole(self, limit: int | None) -> str | bytes | None:
        """With the C accelerator, a whole unfragmented text or binary frame
        at the head of the buffer, decoded (None where it declines, or
        without the accelerator). Only between frames."""
        if _read_frame is None:
            return None
        buf = self._in
        got = _read_frame(buf, self._pos, len(buf), self.is_client, -1 if limit is None else limit)
        if got is None:
            return None
        self._consume(got[1] - self._pos)
        return got[0]

    # -- headers ----------------------------------------------------------

    def read_header(self, deflate: bool) -> int:
        """Parse the next frame's header (between frames only); see
        :data:`NEED_MORE`, :data:`DATA`, :data:`CONTROL`. ``deflate``:
        whether permessage-deflate was negotiated (RSV1 is allowed)."""
        buf = self._in
        pos = self._pos
        avail = len(buf) - pos
        if avail < 2:
            return NEED_MORE
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        masked = b1 & 0x80
        length = b1 & 0x7F
        if opcode not in KNOWN_OPCODES:
            raise ProtocolError(1002, f"unknown opcode {opcode:#x}")
        if b0 & 0x30:
            raise ProtocolError(1002, "RSV2/RSV3 set without a negotiated extension")
        rsv1 = bool(b0 & 0x40)
        fin = bool(b0 & 0x80)
        if bool(masked) == self.is_client:
            which = "masked" if masked else "unmasked"
            raise ProtocolError(1002, f"{which} frame from the {'server' if masked else 'client'}")
        if opcode in CONTROL_OPCODES:
            if not fin:
                raise ProtocolError(1002, "fragmented control frame")
            if length > 125:
                raise ProtocolError(1002, "control frame payload over 125 bytes")
            if rsv1:
                raise ProtocolError(1002, "RSV1 set on a control frame")
        elif rsv1 and (not deflate or opcode == 0):
            raise ProtocolError(1002, "RSV1 set without permessage-deflate on a first frame")
        head = 2
        if length == 126:
            if avail < 4:
                return NEED_MORE
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
            if length < 126:
                raise ProtocolError(1002, "frame length not minimally encoded")
        elif length == 127:
            if avail < 10:
                return NEED_MORE
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            head = 10
            if length < 65536 or length >> 63:
                raise ProtocolError(1002, "frame length not minimally encoded")
        if masked:
            head += 4
        if avail < head:
            return NEED_MORE
        key = bytes(buf[pos + head - 4 : pos + head]) if masked else None
        self.opcode = opcode
        if opcode >= 8:
            if avail < head + length:
                return NEED_MORE
            payload = bytes(buf[pos + head : pos + head + length])
            self._consume(head + length)
            self.control_payload = payload if key is None else apply_mask(payload, key)
            return CONTROL
        self._consume(head)
        self.left = length
        self.fin = fin
        self.rsv1 = rsv1
        self.mask = key
        self.offset = 0
        return DATA

    # -- a data frame's payload ---------------------------------------------

    def available(self) -> int:
        """How much of the current data frame's payload has arrived."""
        return min(self.left, len(self._in) - self._pos)

    def take(self, n: int) -> bytes:
        """The next ``n`` (<= :meth:`available`) payload bytes, unmasked."""
        buf = self._in
        pos = self._pos
        if pos == 0 and n == len(buf):
            chunk = bytes(buf)  # the common case: one whole frame, one copy
        else:
            with memoryview(buf) as view:
                chunk = bytes(view[pos : pos + n])  # one copy, not two
        self._consume(n)
        key = self.mask
        if key is not None and chunk:
            chunk = apply_mask(chunk, key, self.offset)
            self.offset += n
        self.left -= n
        return chunk

    def take_into(self, dest: PayloadBufferLike, n: int) -> None:
        """Copy the next ``n`` (<= :meth:`available`) payload bytes into
        ``dest``, unmasked."""
        self.fill_from(dest, self._in, self._pos, n)
        self._consume(n)

    def fill_from(
        self, dest: PayloadBufferLike, src: bytes | bytearray | memoryview, start: int, n: int
    ) -> None:
        """``n`` payload bytes that arrived in ``src[start:]`` rather than
        through :meth:`feed`, copied into ``dest`` unmasked: the rest of a
        message being assembled goes straight there."""
        key = self.mask
        dest.fill(src, start, n, key, self.offset)
        if key is not None:
            self.offset += n
        self.left -= n

    def _consume(self, n: int) -> None:
        pos = self._pos + n
        if pos >= len(self._in):
            self._in.clear()
            pos = 0
        elif pos > 65536 and pos * 2 > len(self._in):
            del self._in[:pos]
            pos = 0
        self._pos = pos
