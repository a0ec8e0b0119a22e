"""A real redis-server for the broker tests, on a free 127.0.0.1 port, with
persistence off; stopped after. ``restart()`` brings it back on the same
port (empty: no persistence), as a Redis restart in production would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rediskit import Backend, RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for a test module (tests use channels of their own)."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop and restart."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(params=__import__("loopkit").backend_params())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend, on a loop wsloop owns."""
    from loopkit import require

    require(request.param)
    b = Backend(request.param)
    yield b
    b.close()
