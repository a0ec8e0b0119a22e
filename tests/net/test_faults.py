"""The fault suite: a wsloop client and server talking through a TCP proxy
that delays, fragments into 1-byte writes, stalls and resets (real sockets,
tests/faultproxy.py), and, where the test may (root, ``ip netns``, the
netem qdisc), through a network namespace whose loopback loses and delays
packets with ``tc netem``. Under each: nothing the protocol promises is
lost (every message of an open connection arrives, whole and in order),
keepalive tells a frozen peer from a slow one, the client reconnects, and
the server's handshake timeout drops what the stall left half-open.

On the builtin and libev loops (those of issue 17's adversarial run); the
proxy's faults do not depend on the loop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsloop
from faultproxy import FaultProxy
from loopkit import drive, free_native, make_loop, require
from netkit import Echo
from wsloop.loops import Loop

HERE = Path(__file__).resolve().parent


class Backend:
    """A loop wsloop owns, run by the test until a condition holds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: Loop
        self.loop, self.native = make_loop(name, False)

    def run_until(self, done: Any, timeout: float = 10.0) -> bool:
        return drive(self.loop, self.native, self.name, done, timeout)

    def close(self) -> None:
        self.loop.close()
        free_native(self.name, self.native)


@pytest.fixture(params=["builtin", "libev"])
def loop(request: pytest.FixtureRequest) -> Iterator[Backend]:
    require(request.param)
    b = Backend(request.param)
    yield b
    b.close()


class Peer(wsloop.Handler):
    """The client's handler: records messages, opens, closes and states."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.opens = 0
        self.closes: list[tuple[int, bool]] = []
        self.states: list[str] = []
        self.pongs = 0
        self.opened_at = 0.0
        self.ws: wsloop.WebSocket | None = None

    def on_open(self, ws: wsloop.WebSocket) -> None:
        self.opens += 1
        self.opened_at = time.monotonic()
        self.ws = ws

    def on_message(self, ws: wsloop.WebSocket, data: Any) -> None:
        self.messages.append(data)

    def on_close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        self.closes.append((code, clean))

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        self.states.append(state)

    def on_pong(self, ws: wsloop.WebSocket, data: bytes) -> None:
        self.pongs += 1


def messages(n: int) -> list[str | bytes]:
    """Text and binary, small and compressible-large, each numbered."""
    out: list[str | bytes] = []
    for i in range(n):
        if i % 3 == 0:
            out.append(f"text {i} " + "\u00e9" * (i * 7))
        elif i % 3 == 1:
            out.append(i.to_bytes(4, "big") + os.urandom(i * 11))
        else:
            out.append(f"{i}:" + "compress me " * (i * 5))
    return out


class CountingEcho(Echo):
    """The server's handler: echoes, and counts the pongs its keepalive gets."""

    def __init__(self) -> None:
        self.pongs = 0

    def on_pong(self, ws: wsloop.WebSocket, data: bytes) -> None:
        self.pongs += 1


#: The server's keepalive pings often, but a pong or a handshake gets
#: seconds to arrive: the machine running the suite may be loaded, and what
#: these tests wait for must not lose a race with a short timer. A test
#: whose point is a timeout that fires passes its own (serve_proxied).
GENEROUS = {"ping_interval": 0.2, "ping_timeout": 5.0, "handshake_timeout": 5.0}


@pytest.fixture
def serve_proxied(loop: Backend) -> Iterator[Any]:
    """``serve_proxied(**server_options)``: an echo server behind a new
    FaultProxy, as (backend, server, proxy); both closed after the test."""
    made: list[tuple[wsloop.Server, FaultProxy]] = []

    def serve(
        handler: wsloop.Handler | None = None, **options: Any
    ) -> tuple[Backend, wsloop.Server, FaultProxy]:
        server = wsloop.serve(handler or CountingEcho(), loop=loop.loop, **{**GENEROUS, **options})
        proxy = FaultProxy(server.port)
        made.append((server, proxy))
        return loop, server, proxy

    yield serve
    for server, proxy in made:
        proxy.close()
        server.close()
        loop.run_until(lambda s=server: s.closed, timeout=10)


@pytest.fixture
def proxied(serve_proxied: Any) -> tuple[Backend, wsloop.Server, FaultProxy]:
    return serve_proxied()  # type: ignore[no-any-return]


def exchange(b: Backend, peer: Peer, sent: list[str | bytes], timeout: float = 30) -> None:
    assert peer.ws is not None
    start = len(peer.messages)
    for m in sent:
        peer.ws.send(m)
    assert b.run_until(lambda: len(peer.messages) >= start + len(sent), timeout=timeout)
    assert peer.messages[start:] == sent  # whole, in order, nothing lost or doubled


def test_one_byte_writes_both_ways_lose_nothing(proxied: Any) -> None:
    """Every TCP segment one byte long, both ways, handshake included:
    frames and compressed messages are reassembled exactly."""
    b, _server, proxy = proxied
    proxy.fragment = True
    peer = Peer()
    client = wsloop.connect(proxy.url, peer, loop=b.loop, ping_interval=0.2, ping_timeout=5.0)
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    exchange(b, peer, messages(24))
    assert peer.ws is not None and peer.ws.extensions  # compressed, through it all
    client.close()
    assert b.run_until(lambda: client.closed, timeout=10)
    assert peer.closes == [(1000, True)]


def test_a_slow_link_is_not_taken_for_a_dead_one(serve_proxied: Any) -> None:
    """150 ms each way (a round trip of 300 to 600 ms: the proxy forwards a
    chunk at a time), pings every 200 ms: keepalive measures the round trip
    and never fails the connection, and every message arrives. The pong
    timeout (2 s) leaves a loaded machine seconds to spare, and the test
    outlasts the first ping's: had its pong not settled it, the connection
    would have failed by then."""
    server_side = CountingEcho()
    b, server, proxy = serve_proxied(server_side, ping_timeout=2.0)
    proxy.delay = 0.15
    peer = Peer()
    client = wsloop.connect(proxy.url, peer, loop=b.loop, ping_interval=0.2, ping_timeout=2.0)
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    exchange(b, peer, messages(12))
    assert b.run_until(lambda: peer.ws is not None and peer.ws.latency is not None, timeout=5)
    assert peer.ws is not None and peer.ws.latency is not None and peer.ws.latency >= 0.29
    # Bounded negative wait, until past the first ping's timeout (its ping
    # went out 200 ms after the open), for several keepalive rounds.
    past_first_timeout = peer.opened_at + 0.2 + 2.0 + 0.3
    left = max(0.0, past_first_timeout - time.monotonic())
    assert not b.run_until(lambda: bool(peer.closes), timeout=left), peer.closes
    # Keepalive rounds (each over 300 ms) went on at both ends all along.
    assert b.run_until(
        lambda: bool(peer.closes) or (peer.pongs >= 3 and server_side.pongs >= 3), timeout=10
    ), (peer.pongs, server_side.pongs)
    assert not peer.closes, peer.closes
    assert peer.ws.open and server.connections[0].open
    client.close()
    assert b.run_until(lambda: client.closed, timeout=10)


def test_a_stalled_link_is_detected_and_the_client_reconnects(serve_proxied: Any) -> None:
    """The link freezes (nothing passes, nothing closes): both ends'
    keepalive fail the connection (1011); the client's attempts through
    the frozen link time out (open_timeout) and the server drops their
    half-done handshakes (handshake_timeout); once the link flows again
    the client is back, and messages go through.

    Short timeouts, as they must fire here; the pong timeout is a second
    at both ends (the test waits for the server's anyway), so that an
    unfrozen link's pong is never late, even on a loaded machine. An
    attempt that the short open or handshake timeout cuts is retried."""
    b, server, proxy = serve_proxied(ping_timeout=1.0, handshake_timeout=0.5)
    peer = Peer()
    client = wsloop.connect(
        proxy.url,
        peer,
        loop=b.loop,
        ping_interval=0.2,
        ping_timeout=1.0,
        open_timeout=0.5,
        close_timeout=0.3,
        reconnect=wsloop.Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0),
    )
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    exchange(b, peer, ["before"])
    proxy.stall()
    assert b.run_until(lambda: bool(peer.closes), timeout=5)
    assert peer.closes[0] == (1011, False)  # keepalive, not clean
    assert b.run_until(lambda: not server.connections, timeout=5)  # the server's keepalive
    attempts = proxy.accepted
    assert b.run_until(lambda: proxy.accepted >= attempts + 2, timeout=10)  # retrying
    assert peer.opens == 1
    proxy.flow()
    assert b.run_until(lambda: peer.opens == 2, timeout=10)
    exchange(b, peer, ["after"])
    # The attempts made while frozen were dropped by the server's
    # handshake timeout: only the new connection is left.
    assert b.run_until(lambda: len(server.connections) == 1, timeout=5)
    client.close()
    assert b.run_until(lambda: client.closed, timeout=10)


def test_a_reset_link_is_reported_and_the_client_reconnects(proxied: Any) -> None:
    """The connection is reset mid-stream: the client sees 1006 (not
    clean), reconnects, and what it sends on the new connection arrives;
    what arrived before the reset arrived whole and in order."""
    b, server, proxy = proxied
    peer = Peer()
    client = wsloop.connect(
        proxy.url,
        peer,
        loop=b.loop,
        reconnect=wsloop.Reconnect(initial_delay=0.05, jitter=0),
    )
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    first = messages(9)
    exchange(b, peer, first)
    proxy.reset()
    assert b.run_until(lambda: peer.opens == 2, timeout=10)
    assert peer.closes == [(1006, False)]
    assert "waiting" in peer.states
    second = messages(6)
    exchange(b, peer, second)
    assert peer.messages == first + second
    assert b.run_until(lambda: len(server.connections) == 1, timeout=5)
    client.close()
    assert b.run_until(lambda: client.closed, timeout=10)


def test_closing_over_a_stalled_link_ends_at_close_timeout(proxied: Any) -> None:
    """The close handshake cannot finish over a frozen link: the client
    drops TCP at close_timeout and reports 1006 rather than waiting."""
    b, _server, proxy = proxied
    peer = Peer()
    client = wsloop.connect(proxy.url, peer, loop=b.loop, close_timeout=0.3, ping_interval=None)
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    proxy.stall()
    client.close()
    assert b.run_until(lambda: client.closed, timeout=3)
    assert peer.closes == [(1006, False)]


# -- tc netem in a network namespace -------------------------------------------


def qdisc_unavailable(kind: str, probe_args: list[str]) -> str | None:
    """Why a namespace with this qdisc cannot be made here, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (ip netns, tc netem)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    name = f"wsloop-probe-{uuid.uuid4().hex[:8]}"
    try:
        made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                name,
                "tc",
                "qdisc",
                "add",
                "dev",
                "lo",
                "root",
                kind,
                *probe_args,
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0:
            return f"tc {kind} unavailable in this kernel (sch_{kind}): {probe.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


NETEM_PEER = r"""
import json, sys, wsloop
sent = [f"message {i} " + "x" * (i * 97) for i in range(60)]
got, opened, closes = [], [], []
loop = wsloop.get_loop(sys.argv[1])
class Echo(wsloop.Handler):
    def on_message(self, ws, data): ws.send(data)
class Peer(wsloop.Handler):
    def on_open(self, ws):
        opened.append(1)
        for m in sent: ws.send(m)
    def on_message(self, ws, data):
        got.append(data)
        if len(got) == len(sent): ws.close()
    def on_close(self, ws, code, reason, clean):
        closes.append(code); loop.stop()
server = wsloop.serve(Echo(), loop=loop, ping_interval=0.2, ping_timeout=3)
wsloop.connect(server.url, Peer(), loop=loop, ping_interval=0.2, ping_timeout=3)
loop.call_later(40, loop.stop)
loop.run()
print(json.dumps({"ok": got == sent, "got": len(got), "opened": len(opened), "closes": closes}))
"""


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("netem", "delay 30ms 10ms loss 5%"),
        ("netem", "delay 5ms reorder 25% 50%"),
        ("tbf", "rate 2mbit burst 16kbit latency 100ms"),
    ],
    ids=["netem-loss", "netem-reorder", "tbf-slow"],
)
def test_lossy_reordering_and_slow_links_in_a_namespace_lose_nothing(kind: str, spec: str) -> None:
    """A namespace of its own (unique name, deleted after), whose loopback
    delays, loses and reorders packets (netem) or is a 2 Mbit/s link (tbf):
    TCP recovers, and the client gets every echo whole and in order with
    keepalive on (builtin loop)."""
    why = qdisc_unavailable(kind, spec.split())
    if why is not None:
        pytest.skip(why)
    name = f"wsloop-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            [*run, "tc", "qdisc", "add", "dev", "lo", "root", kind, *spec.split()], check=True
        )
        env = dict(os.environ)
        done = subprocess.run(
            [*run, sys.executable, "-c", NETEM_PEER, "builtin"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result == {"ok": True, "got": 60, "opened": 1, "closes": [1000]}, result
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_the_proxy_threads_end(proxied: Any) -> None:
    """The proxy's own hygiene: resetting and closing it ends its threads."""
    b, _server, proxy = proxied
    peer = Peer()
    client = wsloop.connect(proxy.url, peer, loop=b.loop)
    assert b.run_until(lambda: peer.opens == 1, timeout=10)
    proxy.close()
    assert b.run_until(lambda: client.closed, timeout=10)

    def pipes() -> int:
        return sum(t.name == "test-proxy-pipe" for t in threading.enumerate())

    assert b.run_until(lambda: pipes() == 0, timeout=10), pipes()
