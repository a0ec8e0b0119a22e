"""The writing half of a connection: messages and control frames out.

A :class:`FrameWriter` turns what this end sends into frames (masked with a
fresh key when this end is a client, compressed when permessage-deflate was
negotiated) and queues them, with the handshake's bytes, until the I/O
layer takes them. Whether sending is allowed at all is the connection's
state machine's decision (:mod:`.connection`), not the writer's.
"""

from __future__ import annotations

import os
from typing import Final

from .deflate import Deflate
from .frames import build_frame, encode_frame, frame_header

__all__ = ["FrameWriter"]

# Final: compiled code keeps it in a C static, not a module-dict lookup per send.
_build_frame: Final = build_frame
#: Frames this large are taken on their own by take_chunk(), not joined.
LARGE_FRAME: Final = 64 * 1024
#: Pongs queued at most until the I/O layer takes them (per batch of input).
MAX_PONGS: Final = 32


class FrameWriter:
    """Frames out, queued until :meth:`take` hands them to the I/O layer."""

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        #: The negotiated permessage-deflate codec, once open (None: off).
        self.codec: Deflate | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._pongs = 0  # pongs queued and not yet taken...
        self._pong_at = -1  # ...and where in _out the last of them is
        self._mask_pool = b""
        self._mask_i = 0

    @property
    def size(self) -> int:
        """How many bytes :meth:`take` would return now."""
        return self._out_size

    def take(self) -> bytes:
        """Everything queued, as one bytes."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        self._pongs = 0
        self._pong_at = -1
        return data

    def take_chunk(self) -> bytes:
        """The next chunk of what is queued (b"" when nothing is): small
        frames joined, a large one (:data:`LARGE_FRAME` bytes or more) on
        its own, so that a large frame is never copied into a join; take
        chunks until b"" to take everything."""
        out = self._out
        if len(out) <= 1 or self._out_size < LARGE_FRAME:
            return self.take()
        end = 0
        while end < len(out) and len(out[end]) < LARGE_FRAME:
            end += 1
        if end == 0:
            end = 1  # the large frame at the head, alone
        data = out[0] if end == 1 else b"".join(out[:end])
        del out[:end]
        self._out_size -= len(data)
        # What remains was queued after these; pongs count from here afresh.
        self._pongs = 0
        self._pong_at = -1
        return data

    def queue(self, data: bytes) -> None:
        """Queue bytes as they are (a handshake, or a prepared frame)."""
        self._out.append(data)
        self._out_size += len(data)

    def message(self, opcode: int, data: bytes, compress: bool) -> None:
        """Queue a whole text or binary message as one frame."""
        first_byte = 0x80 | opcode
        codec = self.codec
        if (
            codec is not None
            and compress
            and codec.can_compress
            and len(data) >= codec.options.min_size
        ):
            data = codec.compress(data)
            first_byte |= 0x40  # RSV1: compressed
        if not self.is_client and len(data) >= LARGE_FRAME and type(data) is bytes:
            # A server's large frame is queued as its header and the payload
            # itself, never copied into one buffer with it: take_chunk()
            # joins the header to the small frames before it and hands the
            # payload on alone. (A client's payload is masked into a new
            # buffer anyway; anything but bytes, which no caller may change,
            # is copied into the frame.)
            self.queue(frame_header(first_byte, len(data)))
            self.queue(data)
            return
        self.queue(_build_frame(first_byte, data, self.mask_key() if self.is_client else None))

    def control(self, opcode: int, payload: bytes) -> None:
        """Queue a ping, pong or close frame (its payload already checked)."""
        self.queue(encode_frame(opcode, payload, mask_key=self.mask_key()))

    def answer_ping(self, payload: bytes) -> None:
        """Queue the pong for a ping. Past :data:`MAX_PONGS` pongs queued
        and not yet taken, the last one is replaced instead: only the latest
        ping is answered (RFC 6455 5.5.3 allows it), so a peer that floods
        pings and reads nothing cannot fill this end's buffers with pongs,
        while a burst of a few pings still gets every pong."""
        frame = encode_frame(0xA, payload, mask_key=self.mask_key())
        at = self._pong_at
        if self._pongs >= MAX_PONGS:
            self._out_size += len(frame) - len(self._out[at])
            self._out[at] = frame
            return
        self._pongs += 1
        self._pong_at = len(self._out)
        self.queue(frame)

    def mask_key(self) -> bytes | None:
        """A fresh masking key for a client's frame (RFC 6455 5.3), None for
        a server's; drawn 4 bytes at a time from a pool of random bytes."""
        if not self.is_client:
            return None
        i = self._mask_i
        if i >= len(self._mask_pool):
            self._mask_pool = os.urandom(256)
            i = 0
        self._mask_i = i + 4
        return self._mask_pool[i : i + 4]
