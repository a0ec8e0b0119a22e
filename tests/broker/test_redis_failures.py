"""Redis going away and coming back, slow subscribers, publishing from
other threads and from a plain script: on the builtin loop (the engine is
the same code on every backend; test_feed runs each of them)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from feedkit import Reader, channel_name, feed_server, settled, stalled_client
from rediskit import Backend, RedisServer

from wsloop.broker import (
    Broker,
    BrokerUnavailable,
    Position,
    RedisBroker,
    Subscription,
    open_broker,
    publish,
)
from wsloop.options import Reconnect

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.3)


@pytest.fixture
def loop() -> Iterator[Backend]:
    b = Backend("builtin")
    yield b
    b.close()


def await_in_thread(backend: Backend, fn: Any) -> Any:
    """Run blocking ``fn`` in a thread while the loop runs; its result."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert backend.run_until(lambda: bool(out))
    thread.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def closing(backend: Backend, broker: Broker) -> None:
    broker.close()
    assert backend.run_until(lambda: broker.state == "down", 5)


def test_redis_restart_mid_feed(backend: Backend, own_redis: RedisServer) -> None:
    """On every backend: the engine's reconnect runs on the loop's timers."""
    loop = backend
    gaps: list[tuple[Subscription, str]] = []
    states: list[str] = []
    broker = open_broker(
        own_redis.url,
        loop=loop.loop,
        envelope=True,
        reconnect=FAST,
        on_gap=lambda sub, reason: gaps.append((sub, reason)),
        on_state=lambda b, state, detail: states.append(state),
        timeout=2.0,
    )
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 1))
    for i in range(3):
        broker.publish(channel, f"before-{i}")
    assert loop.run_until(lambda: len(reader.data) == 3)
    epoch = reader.messages[-1].epoch

    own_redis.stop()
    assert loop.run_until(lambda: broker.state == "reconnecting")
    # While Redis is down: publishing fails at once, clearly; nothing hangs.
    with pytest.raises(BrokerUnavailable, match="reconnecting"):
        broker.publish(channel, "while-down")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        publish(own_redis.url, channel, "from a script", timeout=2.0)
    assert time.monotonic() - started < 2.5
    assert reader.client.ws is not None and reader.client.ws.state == "open"  # still connected

    own_redis.start()
    # Back by itself: subscribed again, the lost history reported.
    assert loop.run_until(lambda: broker.state == "connected" and len(gaps) == 1, 10)
    assert "history lost" in gaps[0][1]
    assert loop.run_until(lambda: settled(broker, server, 1))
    for i in range(3):
        broker.publish(channel, f"after-{i}")
    assert loop.run_until(lambda: len(reader.data) == 6)
    assert reader.data[3:] == ["after-0", "after-1", "after-2"]
    assert reader.messages[-1].epoch != epoch
    assert len(reader.gaps) == 1  # the client saw the gap notice too
    assert states[:2] == ["connected", "reconnecting"] and states[-1] == "connected"
    reader.close()
    closing(loop, broker)


def test_messages_published_while_disconnected_are_recovered(
    loop: Backend, redis_server: RedisServer
) -> None:
    """The subscriber's connection drops (Redis itself stays up): what was
    published meanwhile is replayed from history, in order, once."""
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True, reconnect=FAST)
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 1))
    broker.publish(channel, "one")
    assert loop.run_until(lambda: reader.data == ["one"])
    # Redis drops our connection (as a network blip would) ...
    assert isinstance(broker, RedisBroker)
    redis_server.command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "pubsub")
    assert loop.run_until(lambda: broker.state != "connected")
    # ... and others publish meanwhile.
    publish(redis_server.url, channel, "two")
    publish(redis_server.url, channel, "three")
    assert loop.run_until(lambda: reader.data == ["one", "two", "three"], 10)
    assert reader.gaps == []
    assert [m.offset for m in reader.messages] == [1, 2, 3]
    reader.close()
    closing(loop, broker)


def test_redis_down_from_the_start(loop: Backend) -> None:
    from rediskit import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    broker = open_broker(url, loop=loop.loop, reconnect=FAST, timeout=1.0)
    assert loop.run_until(lambda: broker.state == "reconnecting")
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1"):
        broker.publish("feed", "x")
    with pytest.raises(BrokerUnavailable):
        publish(url, "feed", "x", timeout=1.0)
    closing(loop, broker)


def test_subscribes_in_redis_only_while_it_has_subscribers(
    loop: Backend, redis_server: RedisServer
) -> None:
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True)
    channel = channel_name()
    pubsub = f"wsloop:{{{channel}}}"
    server = feed_server(broker, loop.loop)

    def numsub() -> int:
        reply: Any = redis_server.command("PUBSUB", "NUMSUB", pubsub)
        return int(reply[1])

    assert numsub() == 0
    readers = [Reader(f"{server.url}{channel}", loop.loop) for _ in range(3)]
    assert loop.run_until(lambda: settled(broker, server, 3))
    assert numsub() == 1  # one Redis subscription for three local subscribers
    for r in readers[:2]:
        r.close()
    assert loop.run_until(lambda: len(server.connections) == 1)
    assert numsub() == 1
    readers[2].close()
    assert loop.run_until(lambda: not server.connections)
    assert loop.run_until(lambda: numsub() == 0)
    closing(loop, broker)


def test_publish_from_threads_and_a_plain_script(loop: Backend, redis_server: RedisServer) -> None:
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True)
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 1))
    results: list[Any] = []

    def from_thread() -> None:
        try:
            results.append(broker.publish_wait(channel, "thread"))
        except Exception as exc:
            results.append(exc)

    thread = threading.Thread(target=from_thread)
    thread.start()
    assert loop.run_until(lambda: bool(results))
    thread.join()
    assert isinstance(results[0], Position)
    script = (
        "import sys, wsloop.broker as b;"
        "print(b.publish(sys.argv[1], sys.argv[2], 'script'));"
        "p = b.Publisher(sys.argv[1]);"
        "[p.publish(sys.argv[2], bytes([i])) for i in range(3)]; p.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, redis_server.url, channel],
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert loop.run_until(lambda: len(reader.data) == 5)
    assert reader.data == ["thread", "script", b"\x00", b"\x01", b"\x02"]
    assert done.stdout.strip() == f"{results[0].epoch}:{results[0].offset + 1}"
    reader.close()
    closing(loop, broker)


@pytest.mark.parametrize("policy", ["skip", "close"])
@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_subscriber_that_stops_reading(
    loop: Backend, redis_server: RedisServer, policy: str, kind: str
) -> None:
    """It is skipped or closed (1008) by policy; the others get everything;
    what is buffered for it stays bounded."""
    url = redis_server.url if kind == "redis" else None
    broker = open_broker(url, loop=loop.loop, policy=policy, envelope=True)
    channel = channel_name()
    limit = 64 * 1024
    server = feed_server(broker, loop.loop, write_limit=limit)

    stalled = await_in_thread(loop, lambda: stalled_client(server.port, f"/{channel}"))
    assert loop.run_until(lambda: settled(broker, server, 1))
    stalled_ws = server.connections[0]
    fast = [Reader(f"{server.url}{channel}", loop.loop, max_message_size=None) for _ in range(2)]
    assert loop.run_until(lambda: settled(broker, server, 3))
    payload = "x" * 8192
    # Publish until the stalled one is over its limit (the kernel's buffers
    # take megabytes first), then 500 more: bounded in count either way.
    over = [0]
    published: list[Any] = []
    peak = [0]

    def next_one(position: Any = None, error: Any = None) -> None:
        if position is not None:
            published.append(position)
        peak[0] = max(peak[0], stalled_ws.buffered_amount)
        if stalled_ws.buffered_amount > limit and not over[0]:
            over[0] = len(published)
        if (
            error is None
            and len(published) < 20_000
            and (not over[0] or len(published) < over[0] + 500)
        ):
            broker.publish(channel, payload, next_one)

    loop.loop.call_soon(next_one)
    assert loop.run_until(lambda: over[0] and len(published) == over[0] + 500, 60)
    total = len(published)
    assert loop.run_until(lambda: all(len(r.messages) == total for r in fast), 20)
    for r in fast:
        assert [m.offset for m in r.messages] == [p.offset for p in published]
    # Bounded: never much more than the limit plus one message and a flush.
    assert peak[0] < limit + 16 * 1024
    still_open = [ws for ws in server.connections if ws.state == "open"]
    if policy == "close":
        # Closed with 1008 (the client, not reading, sees it once it reads).
        assert len(still_open) == 2
        assert stalled_ws.state in ("closing", "closed")
    else:
        assert len(still_open) == 3
    for r in fast:
        r.close()
    stalled.close()
    closing(loop, broker)


def test_rediss_with_a_password_and_a_database(loop: Backend, tmp_path: Any) -> None:
    """TLS through wsloop's MemoryBIO transport, AUTH in HELLO, SELECT."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    server = RedisServer(
        extra=["--requirepass", "s3cret"],
        url="rediss://:s3cret@127.0.0.1:{port}/3",
        tls=(str(cert_file), str(key_file)),
    )
    try:
        import ssl

        context = ssl.create_default_context()
        ca.configure_trust(context)
        broker = open_broker(server.url, loop=loop.loop, envelope=True, ssl=context)
        channel = channel_name()
        ws_server = feed_server(broker, loop.loop)
        reader = Reader(f"{ws_server.url}{channel}", loop.loop)
        assert loop.run_until(lambda: settled(broker, ws_server, 1))
        broker.publish(channel, "over tls")
        publish(server.url, channel, "from a script", ssl=context)
        assert loop.run_until(lambda: len(reader.data) == 2)
        assert sorted(reader.data) == ["from a script", "over tls"]  # two publishers
        # Both in database 3: database 0 holds another history of the channel.
        db0 = server.url.replace("/3", "/0")
        assert publish(db0, channel, "elsewhere", ssl=context).offset == 1
        assert publish(server.url, channel, "third", ssl=context).offset == 3
        assert loop.run_until(lambda: len(reader.data) == 4)  # pub/sub spans databases
        # A wrong password: a clear error, retried (the state says so).
        bad = open_broker(
            server.url.replace("s3cret", "wrong"), loop=loop.loop, ssl=context, reconnect=FAST
        )
        assert loop.run_until(lambda: bad.state == "reconnecting")
        with pytest.raises(BrokerUnavailable, match=r"WRONGPASS|invalid"):
            bad.publish(channel, "x")
        closing(loop, bad)
        reader.close()
        closing(loop, broker)
    finally:
        server.close()


def test_two_servers_share_a_channel(loop: Backend, redis_server: RedisServer, peer: Any) -> None:
    """Two servers on two loops (as two processes would be), each with its
    own broker: a message published on either reaches the subscribers of
    both, once each, in order."""
    channel = channel_name()
    here = open_broker(redis_server.url, loop=loop.loop, envelope=True)
    there = peer.call(lambda: open_broker(redis_server.url, loop=peer.loop, envelope=True))
    server_here = feed_server(here, loop.loop)
    server_there = peer.call(lambda: feed_server(there, peer.loop))
    readers = [
        Reader(f"{server_here.url}{channel}", loop.loop),
        Reader(f"{server_there.url}{channel}", loop.loop),
    ]
    assert loop.run_until(lambda: settled(here, server_here, 1))
    assert loop.run_until(lambda: peer.call(lambda: settled(there, server_there, 1)))
    sent = []
    for i in range(20):
        (here if i % 2 else there).publish(channel, f"m{i}")
        sent.append(f"m{i}")
        # Two publishers are ordered by Redis as they arrive: wait for each.
        assert loop.run_until(lambda: all(len(r.data) == len(sent) for r in readers))
    assert loop.run_until(lambda: all(len(r.data) == 20 for r in readers))
    for r in readers:
        assert r.data == sent
        assert [m.offset for m in r.messages] == list(range(1, 21))
        r.close()
    peer.call(server_there.close)
    peer.call(there.close)
    closing(loop, here)


def test_subscribed_while_redis_is_down(loop: Backend, own_redis: RedisServer) -> None:
    own_redis.stop()
    broker = open_broker(own_redis.url, loop=loop.loop, envelope=True, reconnect=FAST)
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: reader.opened and broker.state == "reconnecting")
    subs = broker.subscriptions(server.connections[0])
    assert len(subs) == 1 and subs[0].syncing  # waiting for Redis
    own_redis.start()
    assert loop.run_until(lambda: settled(broker, server, 1), 10)
    broker.publish(channel, "at last")
    assert loop.run_until(lambda: reader.data == ["at last"])
    reader.close()
    closing(loop, broker)


def test_a_host_name(loop: Backend, redis_server: RedisServer) -> None:
    """``localhost`` is resolved off the loop, and each of its addresses
    tried in turn (Redis listens on 127.0.0.1 only, localhost may be ::1 first)."""
    broker = open_broker(f"redis://localhost:{redis_server.port}/1", loop=loop.loop)
    assert loop.run_until(lambda: broker.state == "connected")
    got: list[Any] = []
    broker.publish(channel_name(), "x", lambda position, error: got.append((position, error)))
    assert loop.run_until(lambda: bool(got))
    assert isinstance(got[0][0], Position) and got[0][1] is None
    closing(loop, broker)


def test_a_channel_that_redis_refuses(loop: Backend, own_redis: RedisServer) -> None:
    """An ACL that forbids one channel: Redis answers that SUBSCRIBE with an
    error reply, not pushes. Its subscribers are told (a gap); the other
    channels, subscribed in the same batch after a reconnect, and every
    later command's reply, are unaffected."""
    allowed, forbidden = channel_name(), channel_name()
    own_redis.command("ACL", "SETUSER", "feeds", "on", ">pw", "+@all", "~*", "resetchannels")
    own_redis.command("ACL", "SETUSER", "feeds", f"&wsloop:{{{allowed}}}")
    url = own_redis.url.replace("redis://", "redis://feeds:pw@")
    gaps: list[tuple[str, str]] = []
    broker = open_broker(
        url,
        loop=loop.loop,
        envelope=True,
        reconnect=FAST,
        on_gap=lambda sub, reason: gaps.append((sub.channel, reason)),
    )
    server = feed_server(broker, loop.loop)
    ok = Reader(f"{server.url}{allowed}", loop.loop)
    refused = Reader(f"{server.url}{forbidden}", loop.loop)
    assert loop.run_until(lambda: len(refused.gaps) == 1 and settled(broker, server, 1))
    assert gaps == [(forbidden, refused.gaps[0].gap)] and "NOPERM" in gaps[0][1]
    replies: list[Any] = []
    broker.publish(allowed, "one", lambda position, error: replies.append((position, error)))
    assert loop.run_until(lambda: ok.data == ["one"] and bool(replies))
    assert replies == [(ok.messages[0].position, None)]  # replies still match their commands
    # Both resubscribed in one batch after a reconnect: the batch is refused,
    # then each channel is tried alone.
    own_redis.command("CLIENT", "KILL", "USER", "feeds")
    assert loop.run_until(lambda: len(refused.gaps) == 2, 10)
    assert loop.run_until(lambda: settled(broker, server, 1))
    broker.publish(allowed, "two")
    assert loop.run_until(lambda: ok.data == ["one", "two"])
    assert ok.gaps == [] and refused.data == []
    ok.close()
    refused.close()
    closing(loop, broker)


def test_subscribing_again_replaces_the_subscription(
    loop: Backend, redis_server: RedisServer
) -> None:
    """The same connection subscribes to the same channel again: the first
    subscription ends, the channel stays subscribed in Redis (no
    UNSUBSCRIBE and SUBSCRIBE again), and each message arrives once."""
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True)
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 1))
    ws = server.connections[0]
    (first,) = broker.subscriptions(ws)
    remote = broker._channels[channel]
    broker.publish(channel, "one")
    assert loop.run_until(lambda: reader.data == ["one"])
    second = broker.subscribe(ws, channel, since=first.position)
    assert loop.run_until(lambda: second.live)
    assert not first.active and broker.subscriptions(ws) == [second]
    assert broker._channels[channel] is remote and remote.remote == "subscribed"
    broker.publish(channel, "two")
    assert loop.run_until(lambda: reader.data == ["one", "two"])
    assert [m.offset for m in reader.messages] == [1, 2]
    reader.close()
    closing(loop, broker)


def test_a_long_fan_out_is_not_a_redis_timeout(loop: Backend, redis_server: RedisServer) -> None:
    """Handling one read from Redis (its messages fanned out to every local
    subscriber) may take longer than the reply timeout: that time is this
    process's, and a reply waiting behind it is not late. Here the fan-out
    of one message is made to take one and a half timeouts (a busy loop
    standing in for tens of thousands of subscribers), with a PING in
    flight. The timeout is a second, so that no reply of a loaded Redis is
    late either."""
    from wsloop.broker.resp import pack

    states: list[str] = []
    broker = open_broker(
        redis_server.url,
        loop=loop.loop,
        envelope=True,
        timeout=1.0,
        on_state=lambda _broker, state, _detail: states.append(state),
    )
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 1), 10)
    conn = broker._conn  # type: ignore[attr-defined]
    live = broker._fanout.live

    def slow_live(*args: Any) -> int:
        broker._fanout.live = live  # type: ignore[method-assign]  # the next one is quick
        conn._send(pack("PING"), None)  # answered while this runs, read after
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            pass
        return live(*args)

    broker._fanout.live = slow_live  # type: ignore[method-assign]
    broker.publish(channel, "slow")
    broker.publish(channel, "after")
    assert loop.run_until(lambda: reader.data == ["slow", "after"], 10)
    assert states.count("connected") == 1 and "reconnecting" not in states
    reader.close()
    closing(loop, broker)
