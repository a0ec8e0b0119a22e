"""A wsloop server driven by a real browser: headless Chromium on 127.0.0.1."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import wsloop
from loopkit import require

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)

PAGE = """<!doctype html><meta charset="utf-8"><title>wsloop</title><script>
const ws = new WebSocket("%(url)s");
ws.binaryType = "arraybuffer";
const big = "compress me ".repeat(20000);
const expected = ["hello \u00e9\u20ac", "1,2,3,250", big];
const got = [];
ws.onopen = () => {
  ws.send(expected[0]);
  ws.send(new Uint8Array([1, 2, 3, 250]));
  ws.send(big);
};
ws.onmessage = (e) => {
  got.push(typeof e.data === "string" ? e.data : Array.from(new Uint8Array(e.data)).join(","));
  if (got.length === 3) {
    const ok = got.every((v, i) => v === expected[i]);
    ws.send("RESULT " + (ok ? "ok" : "mismatch") + " " + ws.extensions);
    ws.close(1000, "done");
  }
};
</script>"""


@pytest.fixture
def page_server() -> Iterator[Any]:
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd, pages
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (scripts/setup installs Debian's chromium)"
)
@pytest.mark.parametrize("backend", ["builtin", "libev"])
def test_browser_exchanges_text_binary_compressed_and_closes(
    backend: str, page_server: Any
) -> None:
    require(backend)
    httpd, pages = page_server
    loop = wsloop.get_loop(backend)
    received: list[Any] = []
    closes: list[tuple[int, bool]] = []
    extensions: list[list[str]] = []

    def on_open(ws: wsloop.WebSocket) -> None:
        extensions.append(ws.extensions)

    def on_message(ws: wsloop.WebSocket, data: Any) -> None:
        received.append(data)
        if not str(data).startswith("RESULT"):
            ws.send(data)

    server = wsloop.serve(
        loop=loop,
        on_open=on_open,
        on_message=on_message,
        on_close=lambda ws, code, reason, clean: closes.append((code, clean)),
    )
    pages["/"] = (PAGE % {"url": server.url}).encode()
    profile = tempfile.mkdtemp(prefix="wsloop-chromium-")
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={profile}",
            f"http://127.0.0.1:{httpd.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from loopkit import drive

        assert drive(loop, None, backend, lambda: bool(closes), timeout=60), received
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
    assert received[:3] == ["hello é€", bytes([1, 2, 3, 250]), "compress me " * 20000]
    assert received[3].startswith("RESULT ok")
    assert (
        "permessage-deflate" in received[3]
        and extensions[0]
        and "permessage-deflate" in extensions[0][0]
    )
    assert closes == [(1000, True)]
    server.close()
    from loopkit import drive

    assert drive(loop, None, backend, lambda: server.closed)
    loop.close()
