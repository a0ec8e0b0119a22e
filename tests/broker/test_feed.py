"""Publish, subscribe and resume through each broker on each backend, with
real sockets and a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from feedkit import Reader, channel_name, feed_server, settled

from conftest import Backend
from wsloop.broker import Broker, Position, open_broker


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker(kind: str, backend: Backend, request: pytest.FixtureRequest) -> Iterator[Broker]:
    url = None
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
    b = open_broker(url, loop=backend.loop, envelope=True, history=100)
    yield b
    b.close()
    backend.run_until(lambda: b.state == "down", 5)


def publish_all(backend: Backend, broker: Broker, channel: str, items: list[str]) -> list[Any]:
    """Publish in order from the loop, each after the previous one's reply."""
    positions: list[Any] = []

    def next_one(position: Any = None, error: Any = None) -> None:
        if error is not None:
            positions.append(error)
            return
        if position is not None:
            positions.append(position)
        if len(positions) < len(items):
            broker.publish(channel, items[len(positions)], next_one)

    backend.loop.call_soon(next_one)
    assert backend.run_until(lambda: len(positions) == len(items))
    assert all(isinstance(p, Position) for p in positions), positions
    return positions


def test_publish_subscribe_resume(backend: Backend, broker: Broker) -> None:
    assert backend.run_until(lambda: broker.state == "connected")
    channel = channel_name()
    server = feed_server(broker, backend.loop)
    live = Reader(f"{server.url}{channel}", backend.loop)
    other = Reader(f"{server.url}other-{channel}", backend.loop)
    assert backend.run_until(lambda: live.opened and other.opened)
    assert backend.run_until(lambda: settled(broker, server, 2))
    positions = publish_all(backend, broker, channel, [f"m{i}" for i in range(1, 6)])
    assert backend.run_until(lambda: len(live.data) == 5)
    assert live.data == ["m1", "m2", "m3", "m4", "m5"]
    assert [m.offset for m in live.messages] == [p.offset for p in positions]
    assert other.messages == []  # another channel

    # A client resuming after the second message gets the rest, then live.
    epoch, offset = positions[1]
    resumed = Reader(f"{server.url}{channel}?since={epoch}:{offset}", backend.loop)
    assert backend.run_until(lambda: len(resumed.data) == 3)
    publish_all(backend, broker, channel, ["m6"])
    assert backend.run_until(lambda: len(resumed.data) == 4 and len(live.data) == 6)
    assert resumed.data == ["m3", "m4", "m5", "m6"]
    assert [m.offset for m in resumed.messages] == [offset + 1, offset + 2, offset + 3, offset + 4]
    assert resumed.gaps == [] and live.gaps == []

    # A position from another epoch cannot be served: a gap notice, then live.
    lost = Reader(f"{server.url}{channel}?since=0123456789ab:3", backend.loop)
    assert backend.run_until(lambda: len(lost.gaps) == 1)
    publish_all(backend, broker, channel, ["m7"])
    assert backend.run_until(lambda: lost.data == ["m7"])
    assert "epoch" in (lost.gaps[0].gap or "")
    for reader in (live, other, resumed, lost):
        reader.close()
    server.close()
    assert backend.run_until(lambda: server.closed)
