"""One feed across simulated hosts: a wsloop server on each of hosts ``a``
and ``b``, Redis on host ``redis`` (20 ms away where the kernel has netem),
clients on each host; all of them get the same feed, every message once,
in order."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from netns import NetHosts, net_hosts_for
from prockit import Lines

WSLOOP = [sys.executable, "-m", "wsloop"]


@pytest.fixture
def net_hosts() -> Iterator[NetHosts]:
    """Hosts ``a``, ``b`` and ``redis`` on one switch (tests/netns.py);
    skipped, saying why, where namespaces cannot be made. (Here, not in a
    conftest.py: tests elsewhere import their directory's ``conftest``.)"""
    yield from net_hosts_for(["a", "b", "redis"])


def start_redis(net: NetHosts) -> str:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are missing: run scripts/setup")
    addr = net.addr["redis"]
    net.popen(
        "redis",
        [  # protected mode would refuse clients from other hosts without a password
            *("redis-server", "--protected-mode", "no", "--bind", addr, "--port", "6379"),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    # Bounded in time, not in tries: a try refused at once takes
    # milliseconds, and a loaded machine may take longer than a hundred of
    # them to start Redis. Each try is a real PING, not a sleep.
    deadline = time.monotonic() + 30
    while True:
        ping = net.run("a", ["redis-cli", "-h", addr, "PING"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return f"redis://{addr}:6379/0"
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server on host redis did not answer: {ping.stderr}")


def test_clients_on_each_host_receive_the_same_feed(net_hosts: NetHosts) -> None:
    net = net_hosts
    # Redis is on another machine; where the kernel has no netem the hosts
    # are only as far apart as a bridge makes them (the feed is the same).
    net.netem("redis", "delay", "20ms")
    broker = start_redis(net)
    urls = {}
    for host in ("a", "b"):
        server = net.popen(
            host,
            [
                *WSLOOP,
                "serve",
                *("--host", net.addr[host], "--port", "8765", "--broker", broker),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        urls[host] = Lines(server.stdout).wait_for("ws://")
    start = net.run(
        "a",
        [*WSLOOP, "publish", "--broker", broker, "start"],
        capture_output=True,
        text=True,
    )
    assert start.returncode == 0, start.stderr
    since = start.stdout.strip()
    count = 40
    clients = []
    for host in ("a", "b", "a", "b"):
        proc = net.popen(
            host,
            [
                *WSLOOP,
                "connect",
                f"{urls[host]}?since={since}",
                *("--resume", "--json", "--no-input", "--count", str(count)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        clients.append((proc, Lines(proc.stdout)))
    for _, out in clients:
        out.wait_for('"type": "open"')
    ticker = net.run(
        "b",
        [
            *WSLOOP,
            "publish",
            "--broker",
            broker,
            "--ticker",
            "--rate",
            "6000",
            "--count",
            str(count),
        ],
        capture_output=True,
        text=True,
    )
    assert ticker.returncode == 0, ticker.stderr
    for proc, out in clients:
        assert proc.wait(60) == 0, out.text()
        events = [json.loads(line) for line in out.text().splitlines()]
        messages = [e for e in events if e["type"] == "message"]
        assert [json.loads(e["data"])["seq"] for e in messages] == list(range(1, count + 1))
        assert {e["epoch"] for e in messages} == {since.split(":")[0]}
