"""The bounded message queue behind the asyncio and blocking front-ends.

Messages arrive on the loop's thread; the application takes them from its
own task or thread. When the queue holds ``max_queue`` messages, reading
from the socket pauses (TCP backpressure reaches the peer) and resumes once
it is down to half. Each front-end adds only its way of waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .errors import ConnectionClosed
from .websocket import WebSocket

__all__ = ["Inbox"]


class Inbox:
    def __init__(
        self, ws: WebSocket, max_queue: int, wake: Callable[[], None], *, threaded: bool
    ) -> None:
        self.ws = ws
        self.max_queue = max_queue
        self.wake = wake
        self.messages: deque[str | bytes] = deque()
        self.closed: ConnectionClosed | None = None
        self._paused = False
        # The blocking API pops from other threads and needs the lock;
        # asyncio pops on the loop's thread and goes without (once per message).
        self._lock = threading.Lock() if threaded else None

    # on the loop's thread
    def push(self, data: str | bytes) -> None:
        if self._lock is None:
            full = self._append(data)
        else:
            with self._lock:
                full = self._append(data)
        if full:
            self.ws.pause_reading()
        self.wake()

    def _append(self, data: str | bytes) -> bool:
        """Queue ``data``; True if reading must pause now."""
        self.messages.append(data)
        if len(self.messages) >= self.max_queue and not self._paused:
            self._paused = True
            return True
        return False

    def close(self, code: int, reason: str, clean: bool) -> None:
        self.closed = ConnectionClosed.make(code, reason, clean)
        self.wake()

    # on the application's side
    def pop(self) -> str | bytes | None:
        """A message, or None if none is queued (check ``closed`` then)."""
        if self._lock is None:
            got = self._take()
        else:
            with self._lock:
                got = self._take()
        if got is None:
            return None
        data, resume = got
        if resume:
            self.ws.resume_reading()
        return data

    def _take(self) -> tuple[str | bytes, bool] | None:
        """The oldest message and whether reading may resume now."""
        if not self.messages:
            return None
        data = self.messages.popleft()
        if self._paused and len(self.messages) <= self.max_queue // 2:
            self._paused = False
            return data, True
        return data, False
