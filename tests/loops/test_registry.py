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
    with pytest.raises(ValueError, match="builtin, asyncio, uvloop, libev, libuv, glib, qt, tk"):
        get_loop("tornado")
    with pytest.raises(TypeError, match="asyncio loop"):
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


def test_a_qt_object_that_is_not_an_application_is_refused() -> None:
    from loopkit import qt_app, require

    require("qt")
    qt_app()
    from PySide6.QtCore import QObject

    with pytest.raises(TypeError, match="QCoreApplication or QApplication"):
        get_loop(QObject())
