"""The multi-host harness: hosts as network namespaces (tests/netns.py).

A plain wsloop server on one simulated host, a client on another; the Redis
multi-host test of the broker uses the same harness.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from netns import NetHosts, net_hosts_for

WSLOOP = [sys.executable, "-m", "wsloop"]


@pytest.fixture
def net_hosts() -> Iterator[NetHosts]:
    """Hosts ``a``, ``b`` and ``redis`` on one switch (tests/netns.py);
    skipped, saying why, where namespaces cannot be made. (Here, not in a
    conftest.py: tests elsewhere import their directory's ``conftest``.)"""
    yield from net_hosts_for(["a", "b", "redis"])


def test_a_client_on_one_host_gets_the_feed_of_a_server_on_another(net_hosts: NetHosts) -> None:
    server = net_hosts.popen(
        "a",
        [
            *WSLOOP,
            "serve",
            "--host",
            net_hosts.addr["a"],
            "--port",
            "8765",
            "--mode",
            "ticker",
            "--rate",
            "6000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()  # bounded: the process is stopped at teardown
    assert url == f"ws://{net_hosts.addr['a']}:8765/", server.stderr and server.stderr.read()
    result = net_hosts.run(
        "b",
        [*WSLOOP, "connect", url, "--count", "5", "--json", "--no-input"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    seqs = [json.loads(e["data"])["seq"] for e in events if e["type"] == "message"]
    assert seqs == [1, 2, 3, 4, 5]
    # The server really is on host a: the address is not the machine's own.
    own = subprocess.run(["ip", "-brief", "address"], capture_output=True, text=True, timeout=30)
    assert net_hosts.addr["a"] not in own.stdout


def test_hosts_reach_redis_on_its_own_host(net_hosts: NetHosts) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are installed by scripts/setup")
    redis = net_hosts.popen(
        "redis",
        [  # protected mode would refuse clients from other hosts without a password
            "redis-server",
            "--protected-mode",
            "no",
            "--bind",
            net_hosts.addr["redis"],
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for host in ("a", "b"):
        ping = ["redis-cli", "-h", net_hosts.addr["redis"], "-p", "6379", "PING"]
        # Retried while redis-server starts (a command, not a sleep, each
        # time), bounded in time: a try refused at once takes milliseconds,
        # and a loaded machine may take longer than a hundred of them.
        deadline = time.monotonic() + 30
        while True:
            result = net_hosts.run(host, ping, capture_output=True, text=True)
            if result.stdout.strip() == "PONG" or time.monotonic() > deadline:
                break
            assert redis.poll() is None, "redis-server exited"
        assert result.stdout.strip() == "PONG", result.stderr


def test_teardown_leaves_no_namespace_and_no_process() -> None:
    from netns import require_netns

    require_netns()
    with NetHosts(["x", "y"]) as net:
        names = [net.switch, *net.ns.values()]
        proc = net.popen("x", ["sleep", "60"])
        assert set(names) <= set(_namespaces())
    assert proc.poll() is not None
    assert not set(names) & set(_namespaces())


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
