"""The reading half of a connection, second step: data frames in, messages out.

A :class:`MessageAssembler` takes each data frame's payload as it arrives
(unmasked by :mod:`.reader`) and makes messages of it: fragments joined,
permessage-deflate inflated, text checked as UTF-8 piece by piece (an
invalid byte fails the connection the moment it arrives, RFC 6455 8.1),
and the size limit kept, after inflating. It raises
:class:`~.errors.ProtocolError` with the close code for a message that
breaks the protocol.

A fragmented message's pieces are kept as they are up to
:data:`MAX_PIECES` of them (joined once at the end), and past that appended
to one growing buffer: a message sent as a million one-byte frames costs
about its size, not a million objects (issue 17). Text is checked piece by
piece as it arrives and decoded once, whole, at the end.

The last frame of an uncompressed binary message goes one better once an
eighth of the message has arrived: the whole message is allocated once (a
:data:`~.frames.PayloadBuffer`) and every later piece is copied straight
into it as it arrives, instead of being buffered, copied out and joined.
The eighth bounds what a peer can make this end reserve ahead of what it
has sent.
"""

from __future__ import annotations

import codecs
from typing import Final

from .deflate import Deflate
from .errors import ProtocolError
from .frames import PayloadBuffer, PayloadBufferLike

__all__ = ["MessageAssembler"]

_TEXT: Final = 1
_BINARY: Final = 2
# Assemble a message in place once this share of it has arrived (1/8).
_FILL_RATIO: Final = 8
#: Pieces of a message kept as separate objects at most; past this many,
#: they go into one growing buffer.
MAX_PIECES: Final = 64
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class MessageAssembler:
    """Messages from data frames' payloads."""

    def __init__(self, max_message_size: int | None) -> None:
        self.max_message_size = max_message_size
        #: The negotiated permessage-deflate codec, once open (None: off).
        self.codec: Deflate | None = None
        #: The message being read: its opcode, or 0 when none is in progress.
        self.opcode = 0
        self._deflated = False
        self._size = 0
        # The message so far (its bytes after inflating): its pieces, or,
        # past MAX_PIECES of them, one growing buffer.
        self._parts: list[bytes] = []
        self._buf: bytearray | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        #: The message being assembled in place, if any (its bytes so far: _size).
        self.filling: PayloadBufferLike | None = None

    def clear(self) -> None:
        """Drop the message in progress (the connection is closed)."""
        self.opcode = 0
        self._parts = []
        self._buf = None
        self._decoder = None
        self.filling = None

    def start_frame(self, opcode: int, rsv1: bool, length: int) -> None:
        """A data frame's header: does it start or continue a message as
        the protocol allows, within the size limit?"""
        if opcode == 0:
            if not self.opcode:
                raise ProtocolError(1002, "continuation frame without a message to continue")
        else:
            if self.opcode:
                raise ProtocolError(1002, "new message started before the last one finished")
            self.opcode = opcode
            self._deflated = rsv1
            self._size = 0
            self._parts = []
            self._buf = None
            self._decoder = None
        limit = self.max_message_size
        if not self._deflated and limit is not None and self._size + length > limit:
            raise ProtocolError(1009, f"message over the {limit}-byte limit")

    # -- in place -----------------------------------------------------------

    def fill_worth(self, take: int, left: int, fin: bool) -> bool:
        """Whether to assemble the rest of this message in place, given
        ``take`` more of its ``left`` bytes now: the last frame of an
        uncompressed binary message, an eighth of it received."""
        return (
            fin
            and self.opcode == _BINARY
            and not self._deflated
            and left - take <= _FILL_RATIO * (self._size + take)
        )

    def start_fill(self, left: int) -> PayloadBufferLike:
        """Room for the whole message (``left`` bytes still to come), with
        what earlier frames brought copied in."""
        dest = PayloadBuffer(self._size + left)
        for part in self._parts:
            dest.fill(part, 0, len(part), None, 0)
        buf = self._buf
        if buf is not None:
            dest.fill(buf, 0, len(buf), None, 0)
        self._parts = []
        self._buf = None
        self.filling = dest
        return dest

    def filled(self, n: int, done: bool) -> bytes | None:
        """``n`` more bytes were copied into :attr:`filling`; the message
        once ``done``."""
        self._size += n
        if not done:
            return None
        dest = self.filling
        assert dest is not None
        self.filling = None
        self.opcode = 0
        return dest.take()

    # -- piece by piece -------------------------------------------------------

    def payload(self, chunk: bytes, done: bool) -> str | bytes | None:
        """A piece of the current data frame; the message once ``done``
        (this frame's payload is complete and it had FIN)."""
        limit = self.max_message_size
        if self._deflated:
            codec = self.codec
            assert codec is not None
            budget = None if limit is None else limit - self._size
            data = codec.decompress(chunk, budget) if chunk else b""
            if done and (budget is None or len(data) <= budget):
                data += codec.end_message(None if budget is None else budget - len(data))
            self._size += len(data)
            if limit is not None and self._size > limit:
                raise ProtocolError(
                    1009, f"message over the {limit}-byte limit after decompression"
                )
        else:
            data = chunk
            self._size += len(data)
        if self.opcode == _TEXT:
            decoder = self._decoder
            if done and decoder is None:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "invalid UTF-8 in a text message") from None
                self.opcode = 0
                return text
            if decoder is None:
                decoder = self._decoder = _utf8_decoder()
            try:
                # Checked as it arrives (an invalid byte fails the
                # connection at once, RFC 6455 8.1); the text itself is
                # decoded once, whole, at the end.
                decoder.decode(data, done)
            except UnicodeDecodeError:
                raise ProtocolError(1007, "invalid UTF-8 in a text message") from None
            self._keep(data)
            if not done:
                return None
            self._decoder = None
            return self._joined().decode("utf-8")
        if done and self._buf is None and not self._parts:
            self.opcode = 0
            return data
        self._keep(data)
        if not done:
            return None
        joined = self._joined()
        return joined if type(joined) is bytes else bytes(joined)

    def _keep(self, data: bytes) -> None:
        buf = self._buf
        if buf is not None:
            buf += data
            return
        parts = self._parts
        if len(parts) < MAX_PIECES:
            if data:
                parts.append(data)
            return
        buf = self._buf = bytearray()
        for part in parts:
            buf += part
        buf += data
        self._parts = []

    def _joined(self) -> bytes | bytearray:
        """The message's bytes, and the message done."""
        self.opcode = 0
        buf = self._buf
        parts = self._parts
        self._buf = None
        self._parts = []
        if buf is not None:
            return buf
        return parts[0] if len(parts) == 1 else b"".join(parts)
