"""Options are typed keyword arguments: the TypedDicts that type them name
exactly the options the dataclasses accept (so the two cannot drift), and a
type checker refuses a misspelt option or a wrong type in every front-end,
and knows what ``async with wsloop.aio.connect(url) as ws`` gives."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from wsloop import handler, options


@pytest.mark.parametrize(
    ("typed", "cls"),
    [
        (options.ClientOptionArgs, options.ClientOptions),
        (options.ServerOptionArgs, options.ServerOptions),
    ],
)
def test_the_typed_keywords_are_exactly_the_options(typed: type, cls: type) -> None:
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(typed.__optional_keys__) == fields  # type: ignore[attr-defined]


def test_the_typed_callbacks_are_exactly_the_events() -> None:
    assert set(options.CallbackArgs.__optional_keys__) == set(handler.EVENTS)


CHECKED = """
import asyncio
import wsloop, wsloop.aio, wsloop.sync

def cb(ws: wsloop.WebSocket, data: str | bytes) -> None: ...

wsloop.connect("ws://h/", ping_interval=3, on_message=cb)
wsloop.connect("ws://h/", ping_intervall=3)  # E1
wsloop.serve(None, max_connections="many")  # E2
wsloop.sync.connect("ws://h/", write_limt=1)  # E3
wsloop.sync.serve(print, handshake_timeout=None)  # E4

async def main() -> None:
    async with wsloop.aio.connect("ws://h/", max_queue=4) as ws:
        reveal_type(ws)  # R1
        await ws.send("x")
    await wsloop.aio.connect("ws://h/", max_queu=4)  # E5
    async with wsloop.aio.serve(None, compresion=False):  # E6
        pass
"""


def test_a_type_checker_refuses_misspelt_options(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "uses_wsloop.py"
    source.write_text(textwrap.dedent(CHECKED))
    out, err, _ = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    lines = source.read_text().splitlines()
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if line.startswith(str(source))}
    for marker in ("E1", "E2", "E3", "E4", "E5", "E6"):
        number = next(i for i, text in enumerate(lines, 1) if text.endswith(f"# {marker}"))
        assert number in flagged, f"{marker} not flagged:\n{out}{err}"
    assert 'Revealed type is "wsloop._aiows.AioWebSocket"' in out, out
    unexpected = [
        line
        for line in out.splitlines()
        if line.startswith(str(source))
        and "error" in line
        and not lines[int(line.split(":")[1]) - 1]
        .rstrip()
        .endswith(("E1", "E2", "E3", "E4", "E5", "E6"))
    ]
    assert unexpected == [], unexpected
