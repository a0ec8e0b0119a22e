"""A Qt window that shows a live feed, on wsloop's Qt backend.

Start a feed, then the window::

    wsloop serve --mode ticker --rate 600
    python examples/qt_ticker.py ws://127.0.0.1:8765/

wsloop runs inside the application's own Qt loop (``app.exec()``): its
callbacks are called on the GUI thread and update the widgets directly.
There is no second thread and no timer polling a queue. The connection
reconnects by itself when the server goes away, and the status line says so.
Needs ``pip install 'wsloop[qt]'`` (PySide6; PyQt6 works too).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import wsloop

try:
    from PySide6.QtWidgets import QApplication, QLabel, QPlainTextEdit, QVBoxLayout, QWidget
except ImportError:  # an application on PyQt6
    from PyQt6.QtWidgets import (  # type: ignore[no-redef]
        QApplication,
        QLabel,
        QPlainTextEdit,
        QVBoxLayout,
        QWidget,
    )


class TickerWindow(QWidget):  # type: ignore[misc]
    """A status line over the feed, one line per message."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.setWindowTitle("wsloop ticker (Qt)")
        self.url = url
        self.count = 0
        self.status = QLabel(f"connecting to {url}")
        self.feed = QPlainTextEdit()
        self.feed.setReadOnly(True)
        self.feed.setMaximumBlockCount(500)  # a feed runs forever: keep the last 500
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.feed)
        # The application's QApplication is the loop: the callbacks run on it.
        self.client = wsloop.connect(
            url,
            loop=QApplication.instance(),
            reconnect=True,
            on_state=self.on_state,
            on_message=self.on_message,
        )

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        if state == "open":
            self.status.setText(f"connected to {self.url}")
        elif state == "waiting":
            self.status.setText(f"disconnected; retrying in {detail['delay']:.1f}s")
        elif state == "connecting":
            self.status.setText(f"connecting to {self.url} (attempt {detail['attempt']})")
        else:
            self.status.setText(state)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.count += 1
        tick = json.loads(data)
        sent = time.strftime("%H:%M:%S", time.localtime(tick.get("time", time.time())))
        self.feed.appendPlainText(f"tick #{tick['seq']} sent {sent}")
        self.status.setText(f"connected to {self.url}: {self.count} messages")

    def closeEvent(self, event: Any) -> None:  # Qt's name
        self.client.close()
        super().closeEvent(event)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "ws://127.0.0.1:8765/"
    app = QApplication(argv)
    window = TickerWindow(url)
    window.resize(420, 320)
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
