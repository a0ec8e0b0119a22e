"""docs/security.md names, for every limit, the tests that hold it: each
test named there exists (a renamed or deleted test fails here, not
silently in the docs)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
# `tests/x.py::test_a`, and `::test_b` after it in the same cell: same file.
REF = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)`")


def references() -> list[tuple[str, str]]:
    found = []
    for line in DOC.read_text().splitlines():
        current = None
        for match in REF.finditer(line):
            current = match.group(1) or current
            assert current is not None, f"{match.group(0)} names no file: {line[:80]}"
            found.append((current, match.group(2)))
    return found


def test_every_test_security_md_names_exists() -> None:
    refs = references()
    assert len(refs) >= 40
    missing = [
        f"{path}::{name}"
        for path, name in refs
        if not (ROOT / path).exists()
        or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert not missing, missing


def test_every_limit_row_names_a_test() -> None:
    rows = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| limit")
    ]
    assert rows
    untested = [row[:60] for row in rows if not REF.search(row)]
    assert not untested, untested
