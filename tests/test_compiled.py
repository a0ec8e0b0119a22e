"""The mypyc-compiled modules: built, used, and never used stale.

hatch_build.py compiles the per-message modules; wsloop/_accel.py decides
at import whether to run them or their sources. The whole suite runs both
ways (scripts/test runs it again with WSLOOP_NO_SPEEDUPS=1); this file
checks the choice itself, in fresh interpreters over a copy of the package.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wsloop
from wsloop import _accel

DISABLED = bool(os.environ.get("WSLOOP_NO_SPEEDUPS") or os.environ.get("WSLOOP_NO_EXTENSIONS"))
PACKAGE = Path(wsloop.__file__).parent

REPORT = """
import importlib, json, wsloop
from wsloop import _accel
names = sorted(json.loads(_accel._MANIFEST.read_text()))
print(json.dumps({"compiled": wsloop.COMPILED,
                  "files": {n: importlib.import_module(n).__spec__.origin for n in names}}))
"""


def report(root: Path, **env: str) -> tuple[dict[str, object], str]:
    environment = {k: v for k, v in os.environ.items() if k != "WSLOOP_NO_SPEEDUPS"}
    environment.update(env, PYTHONPATH=str(root))
    # -I would drop PYTHONPATH; -s keeps the user's site out, the cwd is root.
    result = subprocess.run(
        [sys.executable, "-s", "-c", REPORT],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "wsloop", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.skipif(DISABLED, reason="speedups disabled on purpose")
def test_compiled_modules_are_built_and_used() -> None:
    # scripts/setup compiles them (the machine has a C compiler): a silent
    # fallback to the interpreter would cost a third of every message's CPU.
    assert wsloop.COMPILED
    names = json.loads(_accel._MANIFEST.read_text())
    assert "wsloop.websocket" in names and "wsloop.protocol.connection" in names
    for name in names:
        origin = importlib.import_module(name).__spec__.origin  # type: ignore[union-attr]
        assert origin is not None and not origin.endswith(".py"), name


@pytest.mark.skipif(DISABLED or not wsloop.COMPILED, reason="no compiled modules to choose")
def test_the_choice_compiled_pure_or_stale(package_copy: Path) -> None:
    got, _ = report(package_copy)
    assert got["compiled"] is True
    assert not any(str(f).endswith(".py") for f in got["files"].values())  # type: ignore[union-attr]

    got, _ = report(package_copy, WSLOOP_NO_SPEEDUPS="1")
    assert got["compiled"] is False
    assert all(str(f).endswith(".py") for f in got["files"].values())  # type: ignore[union-attr]

    # An edited source: its compiled module is stale, so every compiled
    # module gives way to its source (they call each other directly).
    edited = package_copy / "wsloop" / "websocket.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    got, stderr = report(package_copy)
    assert got["compiled"] is False
    assert all(str(f).endswith(".py") for f in got["files"].values())  # type: ignore[union-attr]
    assert "wsloop.websocket changed since compiled" in stderr

    # No sources at all to fall back to (a frozen application): compiled.
    for name in json.loads(_accel._MANIFEST.read_text()):
        package_copy.joinpath(*name.split(".")).with_suffix(".py").unlink()
    got, _ = report(package_copy)
    assert got["compiled"] is True
