"""Autobahn|Testsuite, the CI subset: every group but 12/13 plus a sample of
them, wsloop as server and as client, on the builtin and libev loops. Any
case that is not OK or INFORMATIONAL fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY2 = os.environ.get("PYTHON2") or (
    str(Path.home() / ".pyenv/versions/2.7.18/bin/python")
    if (Path.home() / ".pyenv/versions/2.7.18/bin/python").exists()
    else shutil.which("python2.7")
)


@pytest.fixture(scope="module")
def wstest() -> None:
    if PY2 is None:
        pytest.skip("no Python 2.7 for Autobahn|Testsuite (set PYTHON2); compliance/setup explains")
    subprocess.run(
        [str(ROOT / "compliance" / "setup")],
        check=True,
        timeout=900,
        env={**os.environ, "PYTHON2": PY2, "PYTHON": sys.executable},
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("loop", ["builtin", "libev"])
def test_autobahn_ci_subset(wstest: None, loop: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "compliance" / "run.py"),
            "--cases",
            "ci",
            "--loop",
            loop,
            "--check",
            "--reports",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "not OK" not in result.stdout
    import re

    assert len(re.findall(r"^\d+ cases$", result.stdout, re.M)) == 2  # both modes ran
