"""Run a command under callgrind and return the user-space instructions it
executed: what bench/instructions.py and bench/fanout_cost.py count with."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def instructions(
    argv: list[str], out: Path, what: str, timeout: float, env: dict[str, str] | None = None
) -> int:
    """``argv`` run by ``valgrind --tool=callgrind`` (profile written to
    ``out``); its total instruction count. Raises RuntimeError naming
    ``what`` if it fails or the profile has no total."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed under valgrind: {result.stderr[-1500:]}")
    totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if totals is None:
        raise RuntimeError(f"no instruction count in {out}")
    return int(totals.group(1))
