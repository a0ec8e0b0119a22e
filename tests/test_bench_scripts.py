"""The benchmark scripts run (smoke tests with tiny counts; no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("loops.py", ["--rounds", "2000"], "us/round trip"),
        ("core.py", ["--mib", "1"], "MB/s"),
        (
            "instructions.py",
            ["--count", "20", "--clients", "wsloop-aio,wsloop-aio-cb,bare", "--server", "wsloop"],
            "asyncio API, handler",
        ),
        # Starts its own redis-server; 200 subscribers, every server kind.
        ("fanout.py", ["--quick"], "ws+bc/proc"),
    ],
)
def test_bench_script_runs(script: str, args: list[str], expect: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert expect in result.stdout
    assert "nan" not in result.stdout.lower()
    assert "not measured" not in result.stdout
