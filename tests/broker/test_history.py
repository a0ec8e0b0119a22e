"""History and positions: the envelope, what a position that cannot be
served looks like, and a Redis that stops answering."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from feedkit import Reader, channel_name, feed_server, settled
from rediskit import Backend, RedisServer

from wsloop.broker import (
    BrokerUnavailable,
    FeedMessage,
    Position,
    Publisher,
    Subscription,
    decode_envelope,
    encode_envelope,
    open_broker,
    parse_position,
)
from wsloop.broker.fanout import replay_gap
from wsloop.options import Reconnect


@pytest.fixture
def loop() -> Iterator[Backend]:
    b = Backend("builtin")
    yield b
    b.close()


def test_envelope_round_trip() -> None:
    at = Position("abc123", 7)
    assert decode_envelope(encode_envelope("feed", at, "hé")) == FeedMessage(
        "feed", "abc123", 7, "hé"
    )
    assert decode_envelope(encode_envelope("feed", at, b"\x00\xff")).data == b"\x00\xff"
    gap = decode_envelope(encode_envelope("feed", at, None, gap="lost"))
    assert gap.gap == "lost" and gap.data is None and gap.position == at
    assert str(at) == "abc123:7" and parse_position("abc123:7") == at
    assert parse_position(("abc123", 7)) == at
    for bad in ("abc", "abc:", ":3", "abc:-1"):
        with pytest.raises(ValueError):
            parse_position(bad)
    for wrong in (("abc", "7"), ("", 1), ("a", -1), 7, ("a", True)):
        with pytest.raises(TypeError):
            parse_position(wrong)
    for text in ("[]", "{}", "nope", '{"channel":"c","epoch":"e","offset":1,"data":3}'):
        with pytest.raises(ValueError):
            decode_envelope(text)


def test_replay_gap_rules() -> None:
    head = Position("e", 10)
    assert replay_gap(Position("e", 10), head, None, 0, None) is None
    assert replay_gap(Position("e", 7), head, 8, 3, None) is None
    assert "trimmed" in (replay_gap(Position("e", 2), head, 5, 6, None) or "")
    assert "epoch" in (replay_gap(Position("x", 2), head, None, 0, None) or "")
    assert "ahead" in (replay_gap(Position("e", 11), head, None, 0, None) or "")
    assert "history lost" in (replay_gap(Position("e", 3), Position("", 0), None, 0, None) or "")
    assert replay_gap(Position("", 0), head, 1, 10, None) is None  # knew nothing: all of it
    assert "more than" in (replay_gap(Position("e", 0), head, 1, 5, 5) or "")
    assert "lacks" in (replay_gap(Position("e", 7), head, 8, 2, None) or "")  # 10 missing


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_trimmed_history_is_a_gap(loop: Backend, kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    gaps: list[str] = []
    broker = open_broker(
        url, loop=loop.loop, envelope=True, history=5, on_gap=lambda sub, why: gaps.append(why)
    )
    channel = channel_name()
    done: list[Position] = []

    def next_one(position: Position | None = None, error: object = None) -> None:
        assert error is None
        if position is not None:
            done.append(position)
        if len(done) < 300:  # Redis trims "~": whole stream nodes (100 entries)
            broker.publish(channel, f"m{len(done) + 1}", next_one)

    loop.loop.call_soon(next_one)
    assert loop.run_until(lambda: len(done) == 300)
    server = feed_server(broker, loop.loop)
    recent = Reader(f"{server.url}{channel}?since={done[-3]}", loop.loop)
    old = Reader(f"{server.url}{channel}?since={done[0]}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 2))
    assert loop.run_until(lambda: len(recent.data) == 2 and len(old.gaps) == 1)
    assert recent.data == ["m299", "m300"] and recent.gaps == []
    assert old.data == [] and len(old.gaps) == 1 and "trimmed" in (old.gaps[0].gap or "")
    assert old.gaps[0].position == done[-1]  # where live delivery continues
    assert gaps == [old.gaps[0].gap]
    subs = {s.since: s for ws in server.connections for s in broker.subscriptions(ws)}
    assert subs[done[-3]].resumed and subs[done[-3]].gap is None
    assert not subs[done[0]].resumed and subs[done[0]].gap
    broker.publish(channel, "live")
    assert loop.run_until(lambda: old.data == ["live"] and recent.data[-1] == "live")
    recent.close()
    old.close()
    server.close()
    assert loop.run_until(lambda: not server.connections)
    assert broker._channels == {}  # closed connections took their subscriptions along
    broker.close()
    assert loop.run_until(lambda: broker.state == "down")


def test_a_redis_that_stops_answering(loop: Backend, own_redis: RedisServer) -> None:
    """Frozen (SIGSTOP), not gone: the keepalive and the reply timeout find
    out, publishes fail instead of hanging, and it reconnects once Redis
    answers again."""
    assert own_redis.proc is not None
    pid = own_redis.proc.pid
    broker = open_broker(
        own_redis.url,
        loop=loop.loop,
        ping_interval=0.2,
        timeout=0.5,
        reconnect=Reconnect(initial_delay=0.05, max_delay=0.2),
    )
    assert loop.run_until(lambda: broker.state == "connected")
    errors: list[BaseException | None] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(5):  # in flight together
            broker.publish("frozen", "x", lambda position, error: errors.append(error))
        assert loop.run_until(lambda: len(errors) == 5, 5)
        assert all(isinstance(error, BrokerUnavailable) for error in errors)
        assert loop.run_until(lambda: broker.state == "reconnecting", 5)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            Publisher(own_redis.url, timeout=1.0).publish("frozen", "x")
        # The timeout bounds the whole call: not three of them (and a
        # loaded machine has two seconds to spare).
        assert time.monotonic() - started < 3.0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert loop.run_until(lambda: broker.state == "connected", 10)
    assert len(errors) == 5  # each callback once
    # Idle (no command in flight): the keepalive PING finds out alone.
    os.kill(pid, signal.SIGSTOP)
    try:
        assert loop.run_until(lambda: broker.state == "reconnecting", 5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert loop.run_until(lambda: broker.state == "connected", 10)
    broker.close()
    assert loop.run_until(lambda: broker.state == "down")


def test_wrong_arguments_say_what_to_pass(loop: Backend) -> None:
    broker = open_broker(None, loop=loop.loop)
    with pytest.raises(TypeError, match="server connection"):
        broker.subscribe(object(), "feed")
    with pytest.raises(TypeError, match="str or bytes"):
        broker.publish("feed", 3)  # type: ignore[arg-type]
    for channel in ("", "a{b}", "x\n"):
        with pytest.raises(ValueError, match="channel name"):
            broker.publish(channel, "x")
    with pytest.raises(TypeError, match="channel name is a str"):
        broker.publish(b"feed", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history"):
        open_broker(None, loop=loop.loop, history=-1)
    with pytest.raises(ValueError, match="policy"):
        open_broker(None, loop=loop.loop, policy="drop")
    with pytest.raises(ValueError, match="redis://"):
        open_broker("http://127.0.0.1:6379", loop=loop.loop)
    with pytest.raises(ValueError, match="database number"):
        open_broker("redis://127.0.0.1:6379/zero", loop=loop.loop)
    with pytest.raises(ValueError, match="rediss://"):
        import ssl

        open_broker("redis://127.0.0.1:1/0", loop=loop.loop, ssl=ssl.create_default_context())
    with pytest.raises(TypeError, match="on_gap"):
        open_broker(None, loop=loop.loop, on_gap="print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SSLContext"):
        open_broker("rediss://127.0.0.1:1/0", loop=loop.loop, ssl=True)  # type: ignore[arg-type]
    bad: dict[str, object] = {"timeout": 0, "ping_interval": "5", "prefix": "a{b"}
    for option, value in bad.items():
        with pytest.raises(ValueError, match=option):
            open_broker("redis://127.0.0.1:1/0", loop=loop.loop, **{option: value})  # type: ignore[arg-type]
    for option in ("timeout", "prefix"):
        with pytest.raises(ValueError, match=option):
            Publisher("redis://127.0.0.1:1/0", **{option: bad[option]})  # type: ignore[arg-type]
    broker.close()


def test_without_hiredis_the_error_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['hiredis'] = None\n"
        "import wsloop, wsloop.broker as b\n"
        "b.open_broker(None, loop=wsloop.get_loop('builtin'))  # in-process: no hiredis needed\n"
        "try:\n"
        "    b.open_broker('redis://127.0.0.1:1/0', loop=wsloop.get_loop('builtin'))\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    # An old hiredis (no RESP3 push type before 3.2) is refused the same way.
    code += (
        "import types; old = types.ModuleType('hiredis'); old.__version__ = '2.0.0'\n"
        "sys.modules['hiredis'] = old\n"
        "try:\n"
        "    b.open_broker('redis://127.0.0.1:1/0', loop=wsloop.get_loop('builtin'))\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    missing, old = done.stdout.splitlines()
    assert "wsloop[redis]" in missing
    assert "wsloop[redis]" in old and ">= 3.2" in old and "2.0.0" in old


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_an_expired_history_is_a_new_epoch(
    loop: Backend, kind: str, request: pytest.FixtureRequest
) -> None:
    """``ttl`` seconds after a channel's last publish its history is gone:
    a resume from before is a gap, and the next publish starts an epoch."""
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    broker = open_broker(url, loop=loop.loop, envelope=True, ttl=1)
    channel = channel_name()
    first: list[Position] = []
    broker.publish(channel, "old", lambda position, error: first.append(position))
    assert loop.run_until(lambda: bool(first))
    expired = [False]
    loop.loop.call_later(1.1, lambda: expired.__setitem__(0, True))  # the TTL is the point
    assert loop.run_until(lambda: expired[0], 5)
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}?since={first[0]}", loop.loop)
    assert loop.run_until(lambda: len(reader.gaps) == 1)
    assert "history lost" in (reader.gaps[0].gap or "")
    assert loop.run_until(lambda: settled(broker, server, 1))
    broker.publish(channel, "new")
    assert loop.run_until(lambda: reader.data == ["new"])
    assert reader.messages[-1].epoch != first[0].epoch and reader.messages[-1].offset == 1
    reader.close()
    broker.close()
    assert loop.run_until(lambda: broker.state == "down")


def test_more_live_messages_during_a_replay_than_are_held(
    loop: Backend, redis_server: RedisServer
) -> None:
    """Over MAX_HELD live messages arrive while a subscription replays: the
    replay's read ran after all of them (Redis answers in order), so it
    covers them; the subscriber gets each once, in order, and no gap."""
    import socket

    import hiredis

    from wsloop.broker.fanout import MAX_HELD
    from wsloop.broker.scripts import PUBLISH, channel_keys

    total = MAX_HELD + 50
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True, history=2 * total)
    channel = channel_name()
    server = feed_server(broker, loop.loop)
    live = Reader(f"{server.url}{channel}", loop.loop)
    late = Reader(f"{server.url}other-{channel}", loop.loop)
    assert loop.run_until(lambda: settled(broker, server, 2))
    first: list[Position] = []
    broker.publish(channel, "m1", lambda position, error: first.append(position))
    assert loop.run_until(lambda: live.data == ["m1"] and bool(first))
    late_ws = next(ws for ws in server.connections if "other-" in (ws.request.path or ""))
    seen: list[tuple[bool, Position | None]] = []
    finish = broker._fanout.finish_sync

    def finish_sync(sub: Subscription, token: int, *args: object) -> None:
        if sub.channel == channel:
            seen.append((len(sub._held or ()) == MAX_HELD, sub._overflow))
        finish(sub, token, *args)  # type: ignore[arg-type]

    broker._fanout.finish_sync = finish_sync  # type: ignore[method-assign]
    subs: list[Subscription] = []

    def burst() -> None:
        """On the loop (which reads nothing meanwhile): publish ``total``
        messages, pipelined, then subscribe from the first: every one of
        them reaches this process as a live message before the replay's
        answer, and they are more than a subscription holds."""
        meta, stream, pubsub = channel_keys("wsloop", channel)
        with socket.create_connection(("127.0.0.1", redis_server.port), timeout=10) as s:
            commands = [hiredis.pack_command(("SCRIPT", "LOAD", PUBLISH))]
            for i in range(2, total + 2):
                args = (meta, stream, pubsub, "t", f"m{i}", 2 * total, 3600, "x")
                commands.append(hiredis.pack_command(("EVALSHA", _sha(PUBLISH), 2, *args)))
            s.sendall(b"".join(commands))
            reader, replies = hiredis.Reader(), 0
            while replies < len(commands):
                reply = reader.gets()
                if reply is False:
                    chunk = s.recv(1 << 16)
                    assert chunk
                    reader.feed(chunk)
                    continue
                assert not isinstance(reply, hiredis.ReplyError), reply
                replies += 1
        subs.append(broker.subscribe(late_ws, channel, since=first[0]))

    loop.loop.call_soon(burst)
    assert loop.run_until(lambda: len(late.data) == total and len(live.data) == total + 1, 20)
    assert seen and seen[-1][0] and seen[-1][1] is not None  # it did overflow
    expected = [f"m{i}" for i in range(2, total + 2)]
    assert late.data == expected and late.gaps == []
    assert [m.offset for m in late.messages] == list(range(2, total + 2))
    assert live.data == ["m1", *expected] and live.gaps == []
    assert subs[0].live and subs[0].gap is None and subs[0].resumed
    live.close()
    late.close()
    broker.close()
    assert loop.run_until(lambda: broker.state == "down")


def _sha(script: str) -> str:
    from wsloop.broker.scripts import sha1

    return sha1(script)


def test_publish_sets_the_ttl_of_both_keys(redis_server: RedisServer) -> None:
    """The publish script's EXPIRE covers the offset and the stream; with
    ttl=0 both are kept for good, even after a publish with a ttl."""
    from wsloop.broker.scripts import channel_keys

    channel = channel_name()
    meta, stream, _ = channel_keys("wsloop", channel)
    with Publisher(redis_server.url, ttl=100) as publisher:
        publisher.publish(channel, "a")
    ttls = [redis_server.command("TTL", key) for key in (meta, stream)]
    assert all(isinstance(t, int) and 0 < t <= 100 for t in ttls), ttls
    with Publisher(redis_server.url, ttl=0) as publisher:
        assert publisher.publish(channel, "b").offset == 2
    assert [redis_server.command("TTL", key) for key in (meta, stream)] == [-1, -1]
    assert redis_server.command("XLEN", stream) == 2


def test_a_publisher_without_history_leaves_a_gap(loop: Backend, redis_server: RedisServer) -> None:
    """Publishers and servers must agree on ``history``; one that keeps none
    makes offsets the stream lacks: a resume across them is a gap, not a
    silent skip."""
    broker = open_broker(redis_server.url, loop=loop.loop, envelope=True, history=100)
    channel = channel_name()
    first = Publisher(redis_server.url, history=100).publish(channel, "kept")
    Publisher(redis_server.url, history=0).publish(channel, "not kept")
    server = feed_server(broker, loop.loop)
    reader = Reader(f"{server.url}{channel}?since={first.epoch}:0", loop.loop)
    assert loop.run_until(lambda: len(reader.gaps) == 1)
    assert "lacks" in (reader.gaps[0].gap or "") and reader.gaps[0].offset == 2
    reader.close()
    broker.close()
    assert loop.run_until(lambda: broker.state == "down")


def test_a_publisher_whose_connection_redis_closed(redis_server: RedisServer) -> None:
    """A Publisher kept open while Redis closed its connection (its idle
    ``timeout``, a restart) opens another for the next publish instead of
    failing it."""
    channel = channel_name()
    with Publisher(redis_server.url) as publisher:
        first = publisher.publish(channel, "one")
        host, port = publisher._sock.getsockname()[:2]
        assert redis_server.command("CLIENT", "KILL", "ADDR", f"{host}:{port}") == 1
        assert publisher.publish(channel, "two") == Position(first.epoch, 2)
