"""The broker on the asyncio and blocking front-ends, with the same names,
and frames shared between connections that negotiated the same deflate
parameters."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from feedkit import channel_name

import wsloop
import wsloop.aio
import wsloop.sync
from wsloop.broker import Position, decode_envelope
from wsloop.protocol import DeflateOptions


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_aio(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    channel = channel_name()

    async def main() -> None:
        broker = wsloop.aio.open_broker(url, envelope=True)
        assert await broker.wait_ready(5)
        subscribed = asyncio.Event()

        async def handler(ws: wsloop.aio.AioWebSocket) -> None:
            since = ws.request.path.partition("?since=")[2] or None
            sub = broker.subscribe(ws, channel, since=since)
            if await broker.wait_live(sub, 5):
                subscribed.set()
            await ws.wait_closed()

        async with wsloop.aio.serve(handler) as server:
            async with wsloop.aio.connect(server.url) as client:
                await asyncio.wait_for(subscribed.wait(), 5)
                subscribed.clear()
                first = await broker.publish(channel, "one")
                got = decode_envelope(await asyncio.wait_for(client.recv(), 5))
                assert (got.data, got.position) == ("one", first)
                await broker.publish(channel, b"two")
                assert decode_envelope(await asyncio.wait_for(client.recv(), 5)).data == b"two"
            async with wsloop.aio.connect(f"{server.url}?since={first}") as late:
                got = decode_envelope(await asyncio.wait_for(late.recv(), 5))
                assert got.data == b"two" and got.offset == first.offset + 1
        broker.close()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_sync(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    channel = channel_name()
    with wsloop.sync.open_broker(url) as broker:
        assert broker.wait_ready(5)
        live = threading.Event()

        def handler(ws: wsloop.sync.SyncWebSocket) -> None:
            sub = broker.subscribe(ws, channel)
            if broker.wait_live(sub, 5):
                live.set()
            ws.wait_closed()

        with wsloop.sync.serve(handler) as server, wsloop.sync.connect(server.url) as client:
            assert live.wait(5)
            position = broker.publish(channel, "ping")
            assert isinstance(position, Position)
            assert client.recv(timeout=5) == "ping"
            broker.publish(channel, "pong")
            assert client.recv(timeout=5) == "pong"


def test_deflate_frames_are_shared(peer: Any) -> None:
    """Connections compressing each message on its own share one frame (and
    the plain ones another), in the broker's fan-out and the server's
    broadcast alike; every client decodes the same message."""
    server_deflate = DeflateOptions(server_no_context_takeover=True, min_size=16)
    loop = peer.loop
    broker = wsloop.broker.open_broker(None, loop=loop)
    channel = channel_name()
    subs: list[Any] = []
    server = wsloop.serve(
        on_open=lambda ws: subs.append(broker.subscribe(ws, channel)),
        loop=loop,
        compression=server_deflate,
    )
    clients = [wsloop.sync.connect(server.url, compression=True) for _ in range(3)]
    plain = wsloop.sync.connect(server.url, compression=None)
    assert all(sub.wait_live(5) for sub in peer.call(lambda: list(subs)))
    keys = peer.call(lambda: [ws.protocol.share_key for ws in server.connections])
    assert len(set(keys)) == 2 and None not in keys  # one deflate key, one plain
    text = "compressible " * 200
    broker.publish_wait(channel, text)
    assert peer.call(lambda: server.broadcast(text)) == 4  # the server's own broadcast
    # What both do, once per message: one dict of frames for all the
    # connections, one frame per share key (compiled code cannot be
    # counted from outside, so the dict is looked at).
    frames: dict[tuple[object, ...], bytes] = {}
    peer.call(lambda: [ws.send_shared(text, frames) for ws in server.connections])
    for client in [*clients, plain]:
        for _ in range(3):
            assert client.recv(timeout=5) == text
    assert clients[0].extensions and not plain.extensions
    assert set(frames) == set(keys)
    assert sorted(frame[0] & 0x40 for frame in frames.values()) == [0, 0x40]  # RSV1: compressed
    assert min(len(frame) for frame in frames.values()) < len(text) // 4
    for client in [*clients, plain]:
        client.close()
    server.close()
    broker.close()


def test_frames_of_their_own_are_not_shared() -> None:
    """A client (masked frames) or a connection that keeps its compression
    context has no share key; building or sending a shared frame there is
    refused rather than corrupting the stream."""
    from wshelpers import feed, open_pair
    from wsloop.protocol import Message

    client, server = open_pair()
    _, takeover = open_pair(client_deflate=DeflateOptions(), server_deflate=DeflateOptions())
    assert client.share_key is None and takeover.share_key is None
    assert server.share_key is not None
    frame = server.prepare_shared("hi")
    for own in (client, takeover):
        with pytest.raises(ValueError, match="share_key"):
            own.prepare_shared("hi")
        with pytest.raises(ValueError, match="share_key"):
            own.send_shared(frame)
    server.send_shared(frame)
    assert feed(client, server.data_to_send()) == [Message("hi")]
