"""The package as pip sees it: its metadata, who may install it, and how the
wheel is built (in a scratch copy, with ``$CC``, failing loudly rather than
falling back to pure Python without a word).

The wheel builds take a while (mypyc), so they run in the pure pass of
scripts/test only: they test the build, not the build under test.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
builds = pytest.mark.skipif(
    os.environ.get("WSLOOP_TEST_BUILD") == "compiled",
    reason="wheel builds run in the pure pass",
)


def test_classifiers_name_each_supported_python_os_and_status() -> None:
    project = PYPROJECT["project"]
    classifiers = set(project["classifiers"])
    assert project["requires-python"] == ">=3.10"
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Programming Language :: Python :: 3.9" not in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Operating System :: ") for c in classifiers)
    urls = project["urls"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_the_dev_extra_has_the_doc_tool() -> None:
    assert any(
        req.lower().startswith("sphinx")
        for req in PYPROJECT["project"]["optional-dependencies"]["dev"]
    )


def source_copy(tmp_path: Path) -> Path:
    """The checkout as a fresh clone has it (no venv, build or caches)."""
    copy = tmp_path / "wsloop"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", ".build", "__pycache__", "*.so", "build"),
    )
    return copy


@pytest.mark.skipif(not PYTHON39.exists(), reason="no Python 3.9 on this machine")
def test_pip_on_python_39_says_the_python_is_not_supported(tmp_path: Path) -> None:
    # pip installs the build requirements before it reads requires-python:
    # they must install on 3.9 for the user to hear the reason that matters.
    result = subprocess.run(
        [
            str(PYTHON39),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            str(source_copy(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "requires a different Python: 3.9.18 not in '>=3.10'" in output, output[-3000:]


def build_wheel(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pip wheel`` of the checkout itself, as a user runs it: no ``-v``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )


def source_state() -> tuple[str, list[str]]:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Caches of the interpreter that imported the sources are not the build's.
    status = "\n".join(line for line in status.splitlines() if "__pycache__" not in line)
    built = sorted(str(p) for p in (ROOT / "src").rglob("*") if p.suffix in (".so", ".pyd", ".o"))
    return status, built


@builds
def test_the_build_uses_cc_and_never_writes_into_the_sources(tmp_path: Path) -> None:
    calls = tmp_path / "cc-calls"
    wrapper = tmp_path / "cc"
    real = shutil.which("cc") or shutil.which("gcc")
    assert real is not None
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    before = source_state()
    assert before[1] == [], f"compiled files in src/ before the build: {before[1]}"

    result = build_wheel(tmp_path / "out", {"CC": str(wrapper)})

    assert result.returncode == 0, result.stdout + result.stderr
    assert source_state() == before
    logged = calls.read_text()
    assert "_speedups.c" in logged  # the C accelerator
    assert "__mypyc.c" in logged or "build/" in logged  # and mypyc's C, through setuptools
    (wheel,) = (tmp_path / "out").glob("wsloop-*.whl")
    assert "none-any" not in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("wsloop/_speedups.") and n.endswith(".so") for n in names)
    assert any(n.startswith("wsloop/websocket.") and n.endswith(".so") for n in names)


@builds
def test_a_failed_compile_fails_the_build_saying_how_to_get_pure_python(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = build_wheel(tmp_path / "out", {"CC": "false", "TMPDIR": str(scratch)})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "wsloop: could not build the C speedups" in output, output[-3000:]
    assert "WSLOOP_NO_EXTENSIONS=1" in output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert source_state()[1] == []
    assert not list(scratch.glob("wsloop-build-*")), "the build's scratch copy was left"


@builds
def test_wsloop_no_extensions_builds_a_pure_wheel(tmp_path: Path) -> None:
    result = build_wheel(tmp_path / "out", {"WSLOOP_NO_EXTENSIONS": "1", "CC": "false"})
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "out").glob("wsloop-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith((".so", ".pyd"))]
