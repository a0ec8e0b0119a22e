"""Local fan-out: a channel's subscribers in this process, and how one
message reaches all of them.

A message's frame is built once per distinct :attr:`share_key` of the
subscribers' connections (once for all that do not compress; once per set
of deflate parameters for those compressing each message on its own) and
the same bytes are written to each of them; connections whose frames
depend on their own state get their own. Nothing waits for a slow
subscriber: one whose send buffer is over its ``write_limit`` is skipped or
closed (1008), as :func:`wsloop.broadcast` does, so no queue grows.

Positions: a subscription remembers the position of the last message it
got; a message at or before it (same epoch) is a duplicate and is dropped,
one from another epoch means the history was lost in between (a gap,
reported). While a subscription replays history (``syncing``) the live
messages for it are held, at most :data:`MAX_HELD`, then delivered after
the replay with the same rule: no gap, no duplicate. Held messages that
the replay's read already covers (at or before the channel's position it
returned: Redis answers in order, so every message that arrived before the
read's reply ran before the read) are dropped, so holding fewer than
arrived loses nothing as long as the read covers the rest; only messages
past it that could not be held are a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..websocket import offer_shared_all
from .feed import Position, encode_envelope

if TYPE_CHECKING:
    from ..websocket import WebSocket

__all__ = ["MAX_HELD", "Channel", "Subscription", "replay_gap"]

logger = logging.getLogger("wsloop")

#: Live messages held for one subscription while it replays, at most;
#: past that the subscription reports a gap instead of holding more.
MAX_HELD: Final = 10_000

#: The epoch of a channel that has no history (never published to, expired,
#: or lost with a Redis restart).
NO_EPOCH: Final = ""


class Subscription:
    """One connection's subscription to one channel (what ``subscribe`` returns).

    ``position`` is the position of the last message delivered, or skipped
    because the connection was too slow (at first: ``since``, or the
    channel's position when it started live). ``gap`` is
    None, or why messages may be missing: ``since`` could not be served
    (history gone or trimmed) or the channel's history was lost while
    subscribed. ``resumed`` is True once a ``since`` position was served.
    ``active`` is False once unsubscribed (or its connection closed).
    """

    __slots__ = (
        "_held",
        "_live_callbacks",
        "_overflow",
        "_sync",
        "active",
        "channel",
        "gap",
        "position",
        "resumed",
        "since",
        "ws",
    )

    def __init__(self, ws: WebSocket, channel: str, since: Position | None) -> None:
        self.ws = ws
        self.channel = channel
        self.since = since
        self.position: Position | None = since
        self.gap: str | None = None
        self.resumed = False
        self.active = True
        self._held: list[tuple[Position, str | bytes]] | None = None
        #: The first live message that could not be held (MAX_HELD reached).
        self._overflow: Position | None = None
        self._sync = 0  # which replay a reply belongs to
        self._live_callbacks: list[Callable[[], object]] | None = None

    @property
    def live(self) -> bool:
        """True once it delivers live messages (its replay, if any, is done)."""
        return self.active and self._held is None and self.position is not None

    def add_live_callback(self, fn: Callable[[], object]) -> None:
        """Loop thread: call ``fn()`` once it is :attr:`live` (at once if it
        is), or once it ended without getting there."""
        if self.live or not self.active:
            fn()
        elif self._live_callbacks is None:
            self._live_callbacks = [fn]
        else:
            self._live_callbacks.append(fn)

    def wait_live(self, timeout: float | None = None) -> bool:
        """Block until :attr:`live` (not on the loop's thread); False if
        ``timeout`` passed first or it ended."""
        import threading

        done = threading.Event()
        self.ws.loop.call_in_loop(self.add_live_callback, done.set)
        return done.wait(timeout) and self.live

    def _went_live(self) -> None:
        callbacks, self._live_callbacks = self._live_callbacks, None
        for fn in callbacks or ():
            try:
                fn()
            except Exception:
                logger.exception("exception in a subscription's live callback")

    @property
    def syncing(self) -> bool:
        """True while it replays history (live messages are held meanwhile)."""
        return self._held is not None

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.channel!r} at {self.position} "
            f"{'syncing' if self.syncing else 'live' if self.active else 'ended'}>"
        )


def replay_gap(
    start: Position, head: Position, first: int | None, count: int, limit: int | None
) -> str | None:
    """Why history cannot take a subscriber from ``start`` to ``head`` (None
    if it can): ``first`` is the offset of the first entry found after
    ``start.offset`` (None: none), ``count`` how many were found, ``limit``
    the most that could have been returned."""
    if head.epoch == NO_EPOCH:
        if start.epoch == NO_EPOCH:
            return None
        return "history lost: the channel has no history now (expired, or the broker restarted)"
    if start.epoch not in (NO_EPOCH, head.epoch):
        return f"epoch changed ({start.epoch} -> {head.epoch}): history lost"
    offset = 0 if start.epoch == NO_EPOCH else start.offset
    if offset > head.offset:
        return f"offset {offset} is ahead of the channel ({head.offset})"
    if offset == head.offset:
        return None
    if first != offset + 1:
        return f"history no longer holds offset {offset + 1} (trimmed)"
    if offset + count < head.offset:
        if limit is not None and count >= limit:
            return f"more than {limit} messages to replay"
        # Entries are offsets in a row unless a publisher kept no history.
        return f"history lacks messages up to offset {head.offset} (a publisher with history=0?)"
    return None


def _covered(position: Position, head: Position) -> bool:
    """Whether the message at ``position``, which ran before the read that
    found the channel at ``head``, is already accounted for by that read:
    replayed (or reported as a gap), or before the start of a subscription
    without a position, or from an epoch that ``head``'s replaced."""
    if head.epoch == NO_EPOCH:
        return False  # nothing was read (no history, or the read failed)
    return position.epoch != head.epoch or position.offset <= head.offset


class Channel:
    """The subscribers of one channel in this process."""

    __slots__ = ("head", "name", "remote", "subs")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subs: dict[WebSocket, Subscription] = {}
        #: The position of the last message seen here (None until known).
        self.head: Position | None = None
        #: The Redis broker's subscription state: "", "subscribing", "subscribed".
        self.remote = ""


class Fanout:
    """Delivery to local subscribers; the broker's part that never talks to
    Redis."""

    def __init__(
        self,
        *,
        envelope: bool,
        policy: str | None,
        on_gap: Callable[[Subscription, str], object] | None,
    ) -> None:
        self.envelope = envelope
        self.policy = policy
        self.on_gap = on_gap
        #: Live messages held per replaying subscription, at most.
        self.max_held = MAX_HELD

    def payload(self, channel: str, position: Position, data: str | bytes) -> str | bytes:
        return encode_envelope(channel, position, data) if self.envelope else data

    def live(self, channel: Channel, position: Position, data: str | bytes) -> int:
        """Deliver one live message to every subscriber of ``channel``;
        returns how many got it."""
        # Run once per subscriber of every message: the one loop in the
        # broker whose cost counts (bench/fanout_cost.py). What can be is
        # done once per message (the payload, its frames, whether it follows
        # the channel's previous message); per subscriber, the usual case is
        # one identity test: a subscription in step with the channel holds
        # the very Position object of the previous message, and this one
        # comes after it. The connections' checks and sends are one
        # compiled call for all of them.
        previous = channel.head
        channel.head = position
        follows = (
            previous is not None
            and previous.epoch == position.epoch
            and previous.offset < position.offset
        )
        item = (position, data)  # one tuple, however many subscriptions hold it
        ready: list[WebSocket] = []
        add = ready.append
        for sub in list(channel.subs.values()):
            held = sub._held
            if held is not None:
                if len(held) < self.max_held:
                    held.append(item)
                elif sub._overflow is None:
                    sub._overflow = position
                continue
            if follows and sub.position is previous:
                sub.position = position  # what accept() does in this case
            elif not self.accept(sub, position):
                continue
            add(sub.ws)
        if not ready:
            return 0
        payload = self.payload(channel.name, position, data)
        sent, slow = offer_shared_all(ready, payload, {})
        for ws in slow or ():
            if self._policy(ws) == "close":
                ws.close(1008, "too slow to keep up")
        return sent

    def accept(self, sub: Subscription, position: Position) -> bool:
        """Whether ``sub`` is to get the message at ``position`` (and if so,
        it becomes its position): not a duplicate; a new epoch is a gap."""
        last = sub.position
        if last is not None and last.epoch != NO_EPOCH:
            if position.epoch == last.epoch:
                if position.offset <= last.offset:
                    return False
            else:
                sub.position = position
                self.report_gap(
                    sub,
                    f"epoch changed ({last.epoch} -> {position.epoch}): history lost",
                    Position(position.epoch, position.offset - 1),
                )
        sub.position = position
        return True

    def start_sync(self, sub: Subscription) -> int:
        """``sub`` starts replaying: hold its live messages. Returns the
        token its replay's result must carry."""
        if sub._held is None:
            sub._held = []
        sub._overflow = None
        sub._sync += 1
        return sub._sync

    def finish_sync(
        self,
        sub: Subscription,
        token: int,
        head: Position,
        entries: list[tuple[Position, str | bytes]],
        gap: str | None,
    ) -> None:
        """The replay of ``sub`` is done: ``head`` is the channel's position
        when history was read, ``entries`` what to replay up to it, or
        ``gap`` why that cannot be; then the live messages held meanwhile
        that came after ``head``. Without a position (no ``since``) it
        starts at ``head``."""
        if not sub.active or token != sub._sync or sub._held is None:
            return
        held, sub._held = sub._held, None
        overflow, sub._overflow = sub._overflow, None
        start = sub.position
        if start is None:
            sub.position = head
        elif gap is not None:
            sub.position = head
            self.report_gap(sub, gap, head)
        else:
            for position, data in entries:
                self.send_one(sub, position, data)
            if start == sub.since:
                sub.resumed = True
            if sub.position is None or sub.position.epoch == NO_EPOCH:
                sub.position = head
        for position, data in held:
            if not _covered(position, head):
                self.send_one(sub, position, data)
        if overflow is not None and not _covered(overflow, head):
            self.report_gap(
                sub, f"more than {self.max_held} live messages during the replay", sub.position
            )
        sub._went_live()

    def send_one(self, sub: Subscription, position: Position, data: str | bytes) -> None:
        if not self.accept(sub, position):
            return
        ws = sub.ws
        if ws.state == "open":
            try:
                ws.send(self.payload(sub.channel, position, data))
            except Exception as exc:
                logger.debug("replay to %r failed: %s", ws, exc)

    def report_gap(self, sub: Subscription, reason: str, position: Position) -> None:
        sub.gap = reason
        logger.info("wsloop: subscription %r of %r: %s", sub.channel, sub.ws, reason)
        if self.envelope and sub.ws.state == "open":
            try:
                sub.ws.send(encode_envelope(sub.channel, position, None, gap=reason))
            except Exception:
                pass
        if self.on_gap is not None:
            try:
                self.on_gap(sub, reason)
            except Exception:
                logger.exception("exception in a broker's on_gap")

    def _policy(self, ws: WebSocket) -> str:
        if self.policy is not None:
            return self.policy
        options = getattr(ws.owner, "options", None)
        return str(getattr(options, "broadcast_policy", "skip"))
