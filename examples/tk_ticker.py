"""A Tk window that shows a live feed, on wsloop's Tk backend.

Start a feed, then the window::

    wsloop serve --mode ticker --rate 600
    python examples/tk_ticker.py ws://127.0.0.1:8765/

wsloop runs inside the application's own Tk loop (``root.mainloop()``): its
callbacks are called on the Tk thread and update the widgets directly.
There is no second thread and no ``after()`` polling a queue. The
connection reconnects by itself when the server goes away, and the status
line says so. Needs nothing but the standard library's tkinter.
"""

from __future__ import annotations

import json
import sys
import time
import tkinter
from typing import Any

import wsloop


class TickerWindow:
    """A status line over the feed, one line per message."""

    MAX_LINES = 500  # a feed runs forever: keep the last 500

    def __init__(self, root: tkinter.Tk, url: str) -> None:
        self.root = root
        self.url = url
        self.count = 0
        root.title("wsloop ticker (Tk)")
        self.status = tkinter.StringVar(value=f"connecting to {url}")
        tkinter.Label(root, textvariable=self.status, anchor="w").pack(fill="x")
        self.feed = tkinter.Text(root, height=16, width=48)
        self.feed.pack(fill="both", expand=True)
        # The application's Tk root is the loop: the callbacks run on it.
        self.client = wsloop.connect(
            url, loop=root, reconnect=True, on_state=self.on_state, on_message=self.on_message
        )
        root.protocol("WM_DELETE_WINDOW", self.close)

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        if state == "open":
            self.status.set(f"connected to {self.url}")
        elif state == "waiting":
            self.status.set(f"disconnected; retrying in {detail['delay']:.1f}s")
        elif state == "connecting":
            self.status.set(f"connecting to {self.url} (attempt {detail['attempt']})")
        else:
            self.status.set(state)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.count += 1
        tick = json.loads(data)
        sent = time.strftime("%H:%M:%S", time.localtime(tick.get("time", time.time())))
        self.feed.insert("end", f"tick #{tick['seq']} sent {sent}\n")
        if int(self.feed.index("end-1c").split(".")[0]) > self.MAX_LINES:
            self.feed.delete("1.0", "2.0")
        self.feed.see("end")
        self.status.set(f"connected to {self.url}: {self.count} messages")

    def close(self) -> None:
        self.client.close()
        self.root.destroy()


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "ws://127.0.0.1:8765/"
    root = tkinter.Tk()
    TickerWindow(root, url)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
