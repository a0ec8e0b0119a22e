"""The GUI examples, seen: each window, on a virtual screen, shows the live
feed of ``wsloop serve --mode ticker`` and a status line.

Each example runs in its own process, as a user runs it: a small driver
imports the example, builds its window on a fresh application, and once
messages have arrived saves a screenshot (the path is printed; open it) and
reports what the widgets say. The driver waits with a timer of its own;
the examples themselves have none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopkit import ensure_display, require
from screens import ROOT, dark_pixels, shot_path, write_png, xwd_to_rgb, xwd_window

EXAMPLES = ROOT / "examples"
WANT = 8  # messages on screen before the screenshot

QT_DRIVER = r"""
import importlib.util, json, os, sys, time
url, path, png, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = importlib.util.spec_from_file_location("qt_ticker", path)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(["qt_ticker"])
window = example.TickerWindow(url)
window.resize(420, 320)
window.show()
deadline = time.monotonic() + 20
result = {}

def check():
    if window.count < want and time.monotonic() < deadline:
        return
    image = window.grab().toImage()
    dark = sum(
        1
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
        if image.pixelColor(x, y).lightness() < 100
    )
    result.update(
        saved=image.save(png),
        dark=dark,
        count=window.count,
        status=window.status.text(),
        feed=window.feed.toPlainText(),
        title=window.windowTitle(),
    )
    app.quit()

timer = QTimer()
timer.timeout.connect(check)
timer.start(20)
app.exec()
window.client.close()
print(json.dumps(result))
"""

TK_DRIVER = r"""
import importlib.util, json, sys, time, tkinter
url, path, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = importlib.util.spec_from_file_location("tk_ticker", path)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

root = tkinter.Tk()
root.geometry("420x320+0+0")
window = example.TickerWindow(root, url)
deadline = time.monotonic() + 20
result = {}

def check():
    if window.count < want and time.monotonic() < deadline:
        root.after(20, check)
        return
    root.update()
    result.update(
        count=window.count,
        status=window.status.get(),
        feed=window.feed.get("1.0", "end-1c"),
        title=root.title(),
    )
    # Stay on screen until the test has taken its screenshot.
    print(json.dumps(result), flush=True)
    sys.stdin.readline()
    root.quit()

root.after(20, check)
root.mainloop()
window.client.close()
"""


@pytest.fixture(scope="module")
def ticker_url() -> Iterator[str]:
    """``wsloop serve --mode ticker``, the command a user starts."""
    server = subprocess.Popen(
        [sys.executable, "-m", "wsloop", "serve", "--mode", "ticker", "--rate=1200", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    try:
        assert url.startswith("ws://127.0.0.1:"), url + server.stderr.read()  # type: ignore[union-attr]
        yield url
    finally:
        server.terminate()
        server.communicate(timeout=10)


def check_feed(result: dict[str, object], url: str) -> None:
    lines = str(result["feed"]).splitlines()
    assert len(lines) >= WANT, result
    assert lines[0].startswith("tick #1 sent "), lines[:3]
    seqs = [int(line.split()[1][1:]) for line in lines]
    assert seqs == list(range(1, len(seqs) + 1)), "every tick, in order"
    assert result["status"] == f"connected to {url}: {result['count']} messages", result


def test_qt_window_shows_the_feed(ticker_url: str) -> None:
    require("qt")
    png = shot_path("qt_ticker.png")
    png.unlink(missing_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            QT_DRIVER,
            ticker_url,
            str(EXAMPLES / "qt_ticker.py"),
            str(png),
            str(WANT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"screenshot of the Qt example: {png}")
    assert result["title"] == "wsloop ticker (Qt)"
    check_feed(result, ticker_url)
    assert result["saved"] and png.stat().st_size > 1000
    assert int(result["dark"]) > 200, "the window is blank: no text was drawn"


def test_tk_window_shows_the_feed(ticker_url: str) -> None:
    display = ensure_display()
    png = shot_path("tk_ticker.png")
    png.unlink(missing_ok=True)
    driver = subprocess.Popen(
        [sys.executable, "-c", TK_DRIVER, ticker_url, str(EXAMPLES / "tk_ticker.py"), str(WANT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, DISPLAY=display),
    )
    assert driver.stdin is not None and driver.stdout is not None
    try:
        line = driver.stdout.readline()
        assert line, driver.stderr.read()  # type: ignore[union-attr]
        result = json.loads(line)
        # The window is on the screen, under its title, for anyone to find.
        found = subprocess.run(
            ["xdotool", "search", "--name", "^wsloop ticker \\(Tk\\)$"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ, DISPLAY=display),
        )
        (window,) = found.stdout.split()
        width, height, rgb = xwd_to_rgb(xwd_window(hex(int(window)), display))
        write_png(png, width, height, rgb)
    finally:
        driver.stdin.write("done\n")
        driver.stdin.flush()
        _, err = driver.communicate(timeout=30)
    assert driver.returncode == 0, err
    print(f"screenshot of the Tk example: {png}")
    assert result["title"] == "wsloop ticker (Tk)"
    check_feed(result, ticker_url)
    assert (width, height) == (420, 320)
    assert dark_pixels(rgb) > 200, "the window is blank: no text was drawn"


def test_examples_use_no_thread_and_no_polling_timer() -> None:
    for name in ("qt_ticker.py", "tk_ticker.py"):
        source = (EXAMPLES / name).read_text()
        code = "\n".join(
            line for line in source.splitlines() if not line.lstrip().startswith(("#", '"'))
        )
        for forbidden in ("threading", "Thread(", "QTimer", ".after(", "singleShot"):
            assert forbidden not in code, f"{name} uses {forbidden}"


def test_screenshots_go_under_build() -> None:
    assert shot_path("x.png").parent == Path(ROOT / ".build" / "screenshots")
