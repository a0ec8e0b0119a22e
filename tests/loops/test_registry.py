"""Choosing a backend: names, native loops, and missing extras."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from wsloop.loops import BuiltinLoop, Loop, get_loop


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("libev", "gevent", "libev"),
        ("libuv", "gevent", "libuv"),
        ("uvloop", "uvloop", "uvloop"),
        ("glib", "gi", "glib"),
        ("qt", "PySide6", "qt"),
        ("twisted", "twisted", "twisted"),
        ("trio", "trio", "trio"),
    ],
)
def test_missing_extra_names_what_to_install(name: str, module: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None; sys.modules['PyQt6'] = None\n"
        "from wsloop.loops import get_loop\n"
        f"try:\n    get_loop({name!r})\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert f"pip install 'wsloop[{extra}]'" in out.stdout, out.stdout + out.stderr


def test_unknown_name_and_wrong_type() -> None:
    with pytest.raises(
        ValueError, match="builtin, asyncio, uvloop, libev, libuv, glib, qt, twisted, trio, tk"
    ):
        get_loop("tornado")
    with pytest.raises(TypeError, match=r"asyncio loop.*Twisted reactor.*open_loop"):
        get_loop(42)


def test_defaults_and_identity() -> None:
    loop = get_loop()
    assert isinstance(loop, BuiltinLoop) and loop.owned
    assert get_loop(loop) is loop
    loop.close()
    native = asyncio.new_event_loop()
    try:
        adapter = get_loop(native)
        assert isinstance(adapter, Loop) and not adapter.owned and adapter.native is native
        assert get_loop(native) is adapter
        adapter.close()
        assert get_loop(native) is not adapter, "a closed adapter is replaced"
        get_loop(native).close()
        assert not native.is_closed(), "a foreign loop is never closed by wsloop"
    finally:
        native.close()


def test_a_twisted_reactor_is_adapted_once() -> None:
    from loopkit import free_reactor
    from wsloop.loops.twisted import TwistedLoop, new_reactor

    reactor = new_reactor()
    try:
        adapter = get_loop(reactor)
        assert isinstance(adapter, TwistedLoop) and not adapter.owned
        assert adapter.native is reactor and get_loop(reactor) is adapter
        adapter.close()
        assert reactor.waker is not None, "an application's reactor is never freed by wsloop"
    finally:
        free_reactor(reactor)
    with pytest.raises(TypeError, match="Twisted reactor"):
        TwistedLoop(object())


def test_trio_open_loop_takes_only_a_trio_loop() -> None:
    import trio

    from wsloop.loops.trio import open_loop

    builtin = get_loop("builtin")

    async def main() -> None:
        async with open_loop(builtin):  # type: ignore[arg-type]
            pass

    with pytest.raises(TypeError, match="TrioLoop"):
        trio.run(main)
    builtin.close()


def test_a_qt_object_that_is_not_an_application_is_refused() -> None:
    from loopkit import qt_app, require

    require("qt")
    qt_app()
    from PySide6.QtCore import QObject

    with pytest.raises(TypeError, match="QCoreApplication or QApplication"):
        get_loop(QObject())
