"""Positions in a feed, and the JSON envelope a subscriber may receive.

Every message a broker publishes gets a :class:`Position`: the channel's
``epoch`` (a random string chosen when the channel's history was created)
and its ``offset`` (1, 2, 3... within that epoch). A subscriber that kept
the position of the last message it saw resumes from it; a different epoch
means the history it refers to is gone.

The envelope (``envelope=True`` on a broker) is one JSON text message per
published message::

    {"channel": "feed", "epoch": "6f1c0a2e9b3d", "offset": 42, "data": "hello"}

``data`` is the message as published when it was text; a binary message is
sent as ``"data": "<base64>", "binary": true``. When a subscription's
``since`` position could not be served (or the channel's history was lost
while it was subscribed) the subscriber first receives a gap notice::

    {"channel": "feed", "epoch": "...", "offset": 41, "gap": "epoch changed: history lost"}

whose ``epoch``/``offset`` are the position live delivery continues after.
"""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

__all__ = ["FeedMessage", "Position", "decode_envelope", "encode_envelope", "parse_position"]


class Position(NamedTuple):
    """Where a message stands in its channel's feed."""

    epoch: str
    offset: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"


class FeedMessage(NamedTuple):
    """One envelope, decoded (:func:`decode_envelope`). ``data`` is None
    and ``gap`` the reason for a gap notice."""

    channel: str
    epoch: str
    offset: int
    data: str | bytes | None
    gap: str | None = None

    @property
    def position(self) -> Position:
        """``(epoch, offset)``: what to resume from (``since=``)."""
        return Position(self.epoch, self.offset)


def parse_position(value: Any) -> Position:
    """A :class:`Position` from ``(epoch, offset)``, a Position, or the text
    ``"EPOCH:OFFSET"`` (as a ``?since=`` query parameter carries it)."""
    if isinstance(value, str):
        epoch, sep, offset = value.rpartition(":")
        if not sep or not epoch or not offset.isdigit():
            raise ValueError(f"a position is 'EPOCH:OFFSET', not {value!r}")
        return Position(epoch, int(offset))
    if isinstance(value, tuple) and len(value) == 2:
        epoch, offset = value
        if (
            isinstance(epoch, str)
            and epoch
            and isinstance(offset, int)
            and not isinstance(offset, bool)
            and offset >= 0
        ):
            return Position(epoch, offset)
    raise TypeError(
        f"since must be None, (epoch: str, offset: int >= 0) or 'EPOCH:OFFSET', not {value!r}"
    )


def encode_envelope(
    channel: str, position: Position, data: str | bytes | None, gap: str | None = None
) -> str:
    """The envelope of one message (or, with ``gap``, of a gap notice): one
    JSON text, ``{"channel": ..., "epoch": ..., "offset": ..., "data": ...}``;
    binary ``data`` is base64 with ``"binary": true``, and a gap notice has
    ``"gap": reason`` instead of ``data`` (docs/scaling-out.md, "The envelope")."""
    out: dict[str, Any] = {"channel": channel, "epoch": position.epoch, "offset": position.offset}
    if gap is not None:
        out["gap"] = gap
    elif isinstance(data, str):
        out["data"] = data
    elif data is not None:
        out["data"] = base64.b64encode(data).decode("ascii")
        out["binary"] = True
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def decode_envelope(text: str | bytes) -> FeedMessage:
    """Decode an envelope; ValueError if ``text`` is not one."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a feed envelope (invalid JSON): {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a feed envelope: not a JSON object")
    channel, epoch, offset = obj.get("channel"), obj.get("epoch"), obj.get("offset")
    if not isinstance(channel, str) or not isinstance(epoch, str) or not isinstance(offset, int):
        raise ValueError("not a feed envelope: needs channel (str), epoch (str), offset (int)")
    gap = obj.get("gap")
    if gap is not None:
        return FeedMessage(channel, epoch, offset, None, str(gap))
    data = obj.get("data")
    if obj.get("binary"):
        if not isinstance(data, str):
            raise ValueError("not a feed envelope: binary data must be base64 text")
        return FeedMessage(channel, epoch, offset, base64.b64decode(data))
    if not isinstance(data, str):
        raise ValueError("not a feed envelope: data must be a string")
    return FeedMessage(channel, epoch, offset, data)
