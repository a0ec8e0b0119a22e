"""Every Python example in README.md and docs/ runs, against a live server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wsloop
from netkit import LoopThread

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for i, match in enumerate(BLOCK.finditer(path.read_text())):
            found.append((f"{path.name}#{i + 1}", match.group(1)))
    return found


class DocsServer(wsloop.Handler):
    """The server the examples talk to: a fast feed at /, an echo at /echo."""

    def on_open(self, ws: wsloop.WebSocket) -> None:
        assert ws.request is not None
        if ws.request.path != "/echo":
            ws.data["seq"] = 0
            self.tick(ws)

    def tick(self, ws: wsloop.WebSocket) -> None:
        if ws.state == "open":
            ws.data["seq"] += 1
            ws.send(json.dumps({"seq": ws.data["seq"]}))
            ws.loop.call_later(0.02, self.tick, ws)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        assert ws.request is not None
        if ws.request.path == "/echo":
            ws.send(data)


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    peer = LoopThread()
    server = peer.call(lambda: wsloop.serve(DocsServer(), loop=peer.loop, max_message_size=None))
    yield server.port
    peer.call(server.close)
    peer.close()


def test_docs_have_examples() -> None:
    assert len(examples()) >= 12


@pytest.mark.parametrize(("name", "code"), examples(), ids=[n for n, _ in examples()])
def test_example_runs(name: str, code: str, server_port: int) -> None:
    code = code.replace("127.0.0.1:8765", f"127.0.0.1:{server_port}")
    if "import tkinter" in code:
        from loopkit import ensure_display

        ensure_display()  # sets DISPLAY for the example's process too
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
