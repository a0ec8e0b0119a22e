"""permessage-deflate (RFC 7692): negotiation and the per-message codec.

Window bits: zlib cannot compress raw deflate with an 8-bit window. RFC 7692
lets an endpoint decline an offer it cannot honour and lets it send any
message uncompressed, so wsloop (a) as a server declines offers that demand
``server_max_window_bits=8``, (b) never offers or asks for 8 itself, and (c) as
a client told ``client_max_window_bits=8`` keeps the extension for receiving
but sends its own messages uncompressed. Decompressing with a larger window
than the peer compressed with is always correct, so inflaters use at least 9.

zlib objects are made on first use: an idle connection costs no zlib memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import HandshakeError, ProtocolError
from .handshake import ExtensionOffer, format_extension

__all__ = ["Deflate", "DeflateOptions"]

NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"
_PARAMS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)


@dataclass(frozen=True)
class DeflateOptions:
    """How an endpoint configures permessage-deflate.

    ``server_*``/``client_*`` name the parameters of RFC 7692 from the point of
    view of the wire, whichever side this endpoint plays: a client asks for
    them in its offer, a server imposes them in its answer. Window bits are
    9..15 (8 cannot be honoured by zlib; see the module docstring).
    ``level`` and ``mem_level`` tune this endpoint's compressor; the defaults
    trade a little ratio for a quarter of zlib's default memory.
    ``min_size`` is the smallest message worth compressing.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    level: int = 6
    mem_level: int = 5
    min_size: int = 32

    def __post_init__(self) -> None:
        for name in ("server_max_window_bits", "client_max_window_bits"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or not 9 <= v <= 15):
                raise ValueError(f"{name} must be None or an int from 9 to 15, not {v!r}")
        if not -1 <= self.level <= 9:
            raise ValueError(f"level must be -1..9, not {self.level!r}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be 1..9, not {self.mem_level!r}")

    # -- client side ------------------------------------------------------

    def client_offer(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value a client offers with these settings."""
        params: list[tuple[str, str | None]] = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        bits = self.client_max_window_bits
        params.append(("client_max_window_bits", None if bits is None else str(bits)))
        return format_extension(NAME, params)

    def client_accept(self, params: Sequence[tuple[str, str | None]]) -> Deflate:
        """Validate the server's answer to :meth:`client_offer`."""
        p = _parse_params(params, response=True)
        if p is None:
            raise HandshakeError(101, "server sent invalid permessage-deflate parameters")
        snct, cnct, sbits, cbits = p
        if self.server_no_context_takeover and not snct:
            raise HandshakeError(101, "server ignored server_no_context_takeover")
        if self.server_max_window_bits is not None and (
            sbits is None or sbits > self.server_max_window_bits
        ):
            raise HandshakeError(101, "server did not honour server_max_window_bits")
        limit = self.client_max_window_bits
        if cbits is not None and limit is not None and cbits > limit:
            raise HandshakeError(101, "server raised client_max_window_bits")
        return Deflate(
            self,
            local_no_takeover=cnct or self.client_no_context_takeover,
            local_bits=cbits if cbits is not None else self.client_max_window_bits or 15,
            remote_no_takeover=snct,
            remote_bits=sbits or 15,
        )

    # -- server side ------------------------------------------------------

    def server_negotiate(self, offers: Sequence[ExtensionOffer]) -> tuple[str, Deflate] | None:
        """Pick the first acceptable permessage-deflate offer, or None."""
        for name, params in offers:
            if name != NAME:
                continue
            p = _parse_params(params, response=False)
            if p is None:
                continue  # RFC 7692 5: decline malformed offers
            snct, cnct, sbits, cbits = p
            if sbits == 8:
                continue  # zlib cannot compress with a 256-byte window
            out: list[tuple[str, str | None]] = []
            snct = snct or self.server_no_context_takeover
            if snct:
                out.append(("server_no_context_takeover", None))
            cnct = cnct or self.client_no_context_takeover
            if cnct:
                out.append(("client_no_context_takeover", None))
            local_bits = min(sbits or 15, self.server_max_window_bits or 15)
            if local_bits != 15 or sbits is not None:
                out.append(("server_max_window_bits", str(local_bits)))
            client_supports_bits = any(k == "client_max_window_bits" for k, _ in params)
            remote_bits = cbits or 15
            if self.client_max_window_bits is not None:
                if not client_supports_bits:
                    continue  # we need a smaller client window than the client can promise
                remote_bits = min(remote_bits, self.client_max_window_bits)
                out.append(("client_max_window_bits", str(remote_bits)))
            codec = Deflate(
                self,
                local_no_takeover=snct,
                local_bits=local_bits,
                remote_no_takeover=cnct,
                remote_bits=remote_bits,
            )
            return format_extension(NAME, out), codec
        return None


def _parse_params(
    params: Sequence[tuple[str, str | None]], *, response: bool
) -> tuple[bool, bool, int | None, int | None] | None:
    """(server_nct, client_nct, server_bits, client_bits), or None if invalid."""
    seen: set[str] = set()
    snct = cnct = False
    sbits: int | None = None
    cbits: int | None = None
    for key, value in params:
        if key not in _PARAMS or key in seen:
            return None
        seen.add(key)
        if key.endswith("no_context_takeover"):
            if value is not None:
                return None
            if key.startswith("server"):
                snct = True
            else:
                cnct = True
            continue
        if value is None:
            if key == "client_max_window_bits" and not response:
                continue  # the client merely says it supports the parameter
            return None
        if (
            not (value.isascii() and value.isdigit())
            or value != str(int(value))
            or not 8 <= int(value) <= 15
        ):
            return None
        if key == "server_max_window_bits":
            sbits = int(value)
        else:
            cbits = int(value)
    return snct, cnct, sbits, cbits


class Deflate:
    """The negotiated codec of one connection.

    ``local_*`` govern what this endpoint sends, ``remote_*`` what it receives.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "can_compress",
        "local_bits",
        "local_no_takeover",
        "options",
        "remote_bits",
        "remote_no_takeover",
    )

    def __init__(
        self,
        options: DeflateOptions,
        *,
        local_no_takeover: bool,
        local_bits: int,
        remote_no_takeover: bool,
        remote_bits: int,
    ) -> None:
        self.options = options
        self.local_no_takeover = local_no_takeover
        self.local_bits = local_bits
        self.remote_no_takeover = remote_no_takeover
        self.remote_bits = max(9, remote_bits)
        self.can_compress = local_bits >= 9
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def compress(self, data: bytes) -> bytes:
        """One whole message, compressed, its trailing 00 00 ff ff removed."""
        c = self._compressor
        if c is None:
            c = zlib.compressobj(
                self.options.level, zlib.DEFLATED, -self.local_bits, self.options.mem_level
            )
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        self._compressor = None if self.local_no_takeover else c
        return out[:-4] if out.endswith(_TAIL) else out

    def decompress(self, data: bytes, limit: int | None) -> bytes:
        """Inflate part of a message, producing at most ``limit + 1`` bytes.

        A result longer than ``limit`` means the message is over the size
        limit; the caller fails the connection without ever inflating more.
        """
        d = self._decompressor
        if d is None:
            d = self._decompressor = zlib.decompressobj(-self.remote_bits)
        try:
            out = d.decompress(data, 0 if limit is None else limit + 1)
        except zlib.error as exc:
            raise ProtocolError(1007, f"invalid compressed data: {exc}") from None
        return out

    def end_message(self, limit: int | None) -> bytes:
        """Feed the implicit tail that ends a message; returns the last bytes."""
        out = self.decompress(_TAIL, limit)
        if self.remote_no_takeover:
            self._decompressor = None
        return out
