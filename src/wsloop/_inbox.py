"""The bounded message queue behind the asyncio and blocking front-ends.

Messages arrive on the loop's thread; the application takes them from its
own task or thread. When the queue holds ``max_queue`` messages, reading
from the socket pauses (TCP backpressure reaches the peer) and resumes once
it is down to half. Each front-end adds only its way of waiting.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable

from .errors import ConnectionClosed
from .websocket import WebSocket


class Inbox:
    def __init__(
        self, ws: WebSocket, max_queue: int, wake: Callable[[], None], *, threaded: bool
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be a positive int, not {max_queue!r}")
        self.ws = ws
        self.max_queue = max_queue
        self.wake = wake
        self.messages: deque[str | bytes] = deque()
        self.closed: ConnectionClosed | None = None
        self._paused = False
        # The blocking API pops from other threads; asyncio pops on the loop.
        self._lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if threaded else contextlib.nullcontext()
        )

    # on the loop's thread
    def push(self, data: str | bytes) -> None:
        with self._lock:
            self.messages.append(data)
            full = len(self.messages) >= self.max_queue and not self._paused
            if full:
                self._paused = True
        if full:
            self.ws.pause_reading()
        self.wake()

    def close(self, code: int, reason: str, clean: bool) -> None:
        self.closed = ConnectionClosed.make(code, reason, clean)
        self.wake()

    # on the application's side
    def pop(self) -> str | bytes | None:
        """A message, or None if none is queued (check ``closed`` then)."""
        with self._lock:
            if not self.messages:
                return None
            data = self.messages.popleft()
            resume = self._paused and len(self.messages) <= self.max_queue // 2
            if resume:
                self._paused = False
        if resume:
            self.ws.resume_reading()
        return data
