"""Every Python example in README.md and docs/ runs, against a live server;
docs/index.md links every page; CHANGELOG.md keeps its format."""

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
    assert len(examples()) >= 50
    # The pages a websockets user looks for, each with examples that run.
    for page in (
        "errors.md",
        "blocking.md",
        "logging.md",
        "authentication.md",
        "deployment.md",
        "from-websockets.md",
        "from-websocket-client.md",
    ):
        assert any(name.startswith(f"{page}#") for name, _ in examples()), page


def test_the_index_links_every_page() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+)", index))
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "index.md":
            assert page.name in linked, f"docs/index.md does not link docs/{page.name}"
    assert "../CHANGELOG.md" in linked and "../README.md" in linked


def test_migration_guides_show_both_libraries_side_by_side() -> None:
    for page, theirs in (
        ("from-websockets.md", "from websockets"),
        ("from-websocket-client.md", "import websocket\n"),
    ):
        blocks = [code for name, code in examples() if name.startswith(f"{page}#")]
        assert len(blocks) >= 6 and len(blocks) % 2 == 0, page
        for before, after in zip(blocks[::2], blocks[1::2], strict=True):
            assert theirs in before and "wsloop" not in before, (page, before)
            assert "import wsloop" in after and theirs not in after, (page, after)


def test_the_changelog_keeps_a_changelog() -> None:
    import tomllib

    text = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == wsloop.__version__
    heads = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    names = [name for name, _ in heads]
    assert names[0] == "Unreleased" and names[-1] == "0.1.0", names
    assert version in names
    released = [tuple(int(n) for n in name.split(".")) for name in names[1:]]
    assert released == sorted(released, reverse=True), "newest first"
    assert all(date for name, date in heads[1:]), "each release has its date"
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for name in names:  # each version has a link at the bottom
        assert re.search(rf"^\[{re.escape(name)}\]: https://", text, re.M), name


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
