"""Which build is running: compiled (a wheel built with mypyc and the C
accelerator) or pure Python (an editable install).

scripts/test runs the suite twice and says which build each pass must be
running (``WSLOOP_TEST_BUILD``): a silent fallback to the interpreter would
cost a third of every message's CPU, and a compiled file beside the sources
would hide an edit. Run by hand without it, only what holds for every
build is checked.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

import wsloop
from wsloop.protocol import frames

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = os.environ.get("WSLOOP_TEST_BUILD")


def compiled_modules() -> list[str]:
    """The modules hatch_build.py compiles, as module names."""
    spec = importlib.util.spec_from_file_location("hatch_build_list", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    # Reading the list needs hatchling, a build requirement installed with [dev].
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return [name[: -len(".py")].replace("/", ".") for name in hook.COMPILED]


def is_extension(name: str) -> bool:
    origin = importlib.import_module(name).__spec__.origin  # type: ignore[union-attr]
    return origin is not None and not origin.endswith(".py")


def test_compiled_says_what_runs() -> None:
    names = compiled_modules()
    assert "wsloop.websocket" in names and "wsloop.transport" in names
    # The whole sans-I/O core but its exception classes: a module split off
    # (or added) there and left out of the list would run interpreted.
    core = Path(wsloop.__file__).parent / "protocol"
    for source in core.glob("*.py"):
        if source.stem not in ("__init__", "errors"):
            assert f"wsloop.protocol.{source.stem}" in names, source.name
    kinds = {is_extension(name) for name in names}
    assert kinds == {wsloop.COMPILED}  # compiled modules call each other: all or none


@pytest.mark.skipif(EXPECTED != "compiled", reason="not the compiled pass of scripts/test")
def test_the_compiled_build_runs_compiled_and_documents_itself() -> None:
    assert wsloop.COMPILED and frames.SPEEDUPS
    assert "src" not in Path(wsloop.__file__).parts  # the wheel, not the checkout
    # mypyc keeps only signatures; the build adds the docstrings back.
    assert wsloop.WebSocket.__doc__ and "WebSocket connection" in wsloop.WebSocket.__doc__
    send = wsloop.WebSocket.send
    assert send.__doc__ and send.__doc__.startswith("Send a message")
    assert send.__text_signature__ == "($self, data, *, compress=True)"
    assert wsloop.Client.close.__doc__
    assert frames.encode_frame.__doc__ and "Serialise one frame" in frames.encode_frame.__doc__
    # Classes whose signature mypyc cannot write (it leaves their doc NULL).
    from wsloop.protocol import ClientConnection, Connection, ServerConnection

    for cls in (Connection, ClientConnection, ServerConnection):
        assert (cls.__doc__ or "").strip(), cls
    # Properties, and coroutines (which mypyc wraps apart from the methods).
    assert wsloop.WebSocket.closed.__doc__ == "True once the connection is closed."
    assert wsloop.WebSocket.handler.__doc__ == "The handler this connection's events go to."
    if sys.version_info >= (3, 12):  # a coroutine's wrapper takes a __doc__ from 3.12 on
        from wsloop.aio import AioWebSocket, HandlerForm  # type: ignore[attr-defined]

        assert (AioWebSocket.recv.__doc__ or "").startswith("The next message")
        assert (HandlerForm.recv.__doc__ or "").startswith("Refuses")
        assert (AioWebSocket.wait_closed.__doc__ or "").startswith("Wait until")


@pytest.mark.skipif(EXPECTED != "pure", reason="not the pure-Python pass of scripts/test")
def test_the_editable_install_is_pure_python() -> None:
    assert not wsloop.COMPILED and not frames.SPEEDUPS
    assert "_speedups" not in sys.modules
    # Nothing compiled beside the sources: an edit must run as written.
    package = Path(wsloop.__file__).parent
    assert package == ROOT / "src" / "wsloop"
    assert not [p for p in package.rglob("*") if p.suffix in (".so", ".pyd")]
