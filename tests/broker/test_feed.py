"""Publish, subscribe and resume through each broker on each backend, with
real sockets and a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from feedkit import Reader, channel_name, feed_server, settled
from rediskit import Backend

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


def test_resume_while_the_feed_runs(
    backend: Backend, kind: str, request: pytest.FixtureRequest
) -> None:
    """Clients join with a position while messages keep coming: each ends
    with every offset after its position exactly once, in order (the live
    messages that arrive during its replay are held and de-duplicated).
    History holds the whole feed, however late a client's subscribe runs."""
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    broker = open_broker(url, loop=backend.loop, envelope=True, history=1000)
    assert backend.run_until(lambda: broker.state == "connected")
    channel = channel_name()
    server = feed_server(broker, backend.loop)
    total = 300
    positions: list[Position] = []
    joined: list[tuple[Position, Reader]] = []

    def next_one(position: Any = None, error: Any = None) -> None:
        assert error is None, error
        if position is not None:
            positions.append(position)
            if len(positions) % 60 == 0:  # a client joins from 20 messages back
                since = positions[-20]
                joined.append((since, Reader(f"{server.url}{channel}?since={since}", backend.loop)))
        if len(positions) < total:
            broker.publish(channel, f"m{len(positions) + 1}", next_one)

    backend.loop.call_soon(next_one)
    assert backend.run_until(lambda: len(positions) == total, 20)
    assert len(joined) == 5
    assert backend.run_until(
        lambda: all(r.messages and r.messages[-1].offset == total for _, r in joined), 10
    )
    for since, reader in joined:
        assert reader.gaps == []
        assert [m.offset for m in reader.messages] == list(range(since.offset + 1, total + 1))
        assert reader.data == [f"m{i}" for i in range(since.offset + 1, total + 1)]
        reader.close()
    server.close()
    assert backend.run_until(lambda: server.closed)
    broker.close()
    assert backend.run_until(lambda: broker.state == "down", 5)
