from __future__ import annotations

from collections.abc import Iterator

import pytest

from netkit import LoopThread


@pytest.fixture
def peer() -> Iterator[LoopThread]:
    """A builtin wsloop loop in a thread, for servers the test talks to."""
    lt = LoopThread()
    yield lt
    lt.close()
