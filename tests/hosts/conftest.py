from __future__ import annotations

from collections.abc import Iterator

import pytest

from netns import NetHosts, net_hosts_for


@pytest.fixture
def net_hosts() -> Iterator[NetHosts]:
    """Hosts ``a`` and ``b``, and ``redis``, as network namespaces on one
    switch (tests/netns.py); the test is skipped, saying why, where
    namespaces cannot be made."""
    yield from net_hosts_for(["a", "b", "redis"])
