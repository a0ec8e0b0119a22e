"""Feeds across real processes: ``wsloop serve --workers 3 --broker redis://``,
``wsloop publish``, ``wsloop connect --resume``, a real redis-server.

Each test first publishes one message so that the channel has an epoch, and
clients subscribe from that position (``?since=EPOCH:1``): what is published
while a server's subscription is still being set up is replayed from
history, so no wait for "subscribed" is needed. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

import wsloop.broker
import wsloop.sync
from prockit import WSLOOP, Lines, supervised
from wsloop.broker import decode_envelope
from wsloop.cli.workers import WORKER_HEADER
from wsloop.options import reuse_port_option

pytestmark = pytest.mark.skipif(
    reuse_port_option() is None or not os.path.exists("/proc/self/task"),
    reason="--workers needs SO_REUSEPORT and /proc (Linux)",
)


def first_position(url: str, channel: str) -> str:
    return str(wsloop.broker.publish(url, channel, "start"))


def test_three_servers_deliver_every_message_exactly_once_in_order(redis_server: Any) -> None:
    channel = "three-servers"
    with supervised(3, "--broker", redis_server.url, "--channel", channel) as sup:
        since = first_position(redis_server.url, channel)
        clients = [wsloop.sync.connect(f"{sup.url}?since={since}") for _ in range(12)]
        workers = {ws.response.headers.get(WORKER_HEADER) for ws in clients if ws.response}
        assert len(workers) >= 2, workers  # 12 all on one of 3: 1 in 3**11
        sent: list[str] = []
        # From a plain script in another process: no loop.
        script = (
            "import sys, wsloop.broker\n"
            "for m in sys.argv[3:]: wsloop.broker.publish(sys.argv[1], sys.argv[2], m)\n"
        )
        batch = [f"script {i}" for i in range(5)]
        subprocess.run(
            [sys.executable, "-c", script, redis_server.url, channel, *batch],
            check=True,
            timeout=60,
        )
        sent += batch
        # From this process, and from the command line (one per stdin line).
        for i in range(5):
            wsloop.broker.publish(redis_server.url, channel, f"test {i}")
            sent.append(f"test {i}")
        batch = [f"cli {i}" for i in range(5)]
        result = subprocess.run(
            [*WSLOOP, "publish", "--broker", redis_server.url, "--channel", channel],
            input="\n".join(batch) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.split()) == 5  # the position of each
        sent += batch
        # From a server process: what a client sends is published.
        clients[0].send("from a client")
        sent.append("from a client")
        for ws in clients:
            got = [decode_envelope(ws.recv(timeout=20)) for _ in sent]
            assert [m.data for m in got] == sent
            assert [m.offset for m in got] == list(range(2, len(sent) + 2))
            assert len({m.epoch for m in got}) == 1 and got[0].epoch == since.split(":")[0]
        for ws in clients:
            ws.close()


def test_kill_9_a_server_mid_feed_and_its_clients_resume_exactly_once(
    redis_server: Any,
) -> None:
    channel = "kill-9"
    count = 150
    with supervised(3, "--broker", redis_server.url, "--channel", channel) as sup:
        pids = sup.workers()
        since = first_position(redis_server.url, channel)
        clients = []
        for _ in range(9):
            proc = subprocess.Popen(
                [
                    *WSLOOP,
                    "connect",
                    f"{sup.url}?since={since}",
                    "--resume",
                    "--json",
                    "--no-input",
                    "--count",
                    str(count),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            clients.append((proc, Lines(proc.stdout), Lines(proc.stderr)))
        worker_of = []
        for _, out, _ in clients:
            opened = json.loads(out.wait_for('"type": "open"'))
            worker_of.append(opened["headers"][WORKER_HEADER])
        # The busiest worker dies (the supervisor lists pids by worker number).
        victim = max(set(worker_of), key=worker_of.count)
        victim_pid = pids[int(victim) - 1]
        ticker = subprocess.Popen(
            [
                *WSLOOP,
                "publish",
                "--broker",
                redis_server.url,
                "--channel",
                channel,
                "--ticker",
                "--rate",
                "3000",
                "--count",
                str(count),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            clients[worker_of.index(victim)][1].wait_for('"offset": 31}')  # mid-feed
            os.kill(victim_pid, signal.SIGKILL)
            assert ticker.wait(60) == 0
            for proc, _, err in clients:
                assert proc.wait(60) == 0, err.text()
        finally:
            for proc, _, _ in clients:
                if proc.poll() is None:
                    proc.kill()
            if ticker.poll() is None:
                ticker.kill()
        sup.err.wait_for(f"(pid {victim_pid}) was killed by SIGKILL; restarting it")
        for (_, out, _), worker in zip(clients, worker_of, strict=True):
            events = [json.loads(line) for line in out.text().splitlines()]
            seqs = [json.loads(e["data"])["seq"] for e in events if e["type"] == "message"]
            assert seqs == list(range(1, count + 1))  # every seq exactly once, in order
            opens = [e for e in events if e["type"] == "open"]
            if worker == victim:
                assert len(opens) == 2  # resumed on another (or the restarted) worker
            else:
                assert len(opens) == 1, "a survivor's client noticed"
            assert not [e for e in events if e["type"] == "gap"]


def test_publish_says_when_redis_is_down_and_does_not_hang() -> None:
    from netkit import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [*WSLOOP, "publish", "--broker", url, "hello"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "wsloop: cannot publish" in result.stderr and "Redis" in result.stderr
    result = subprocess.run(
        [*WSLOOP, "publish", "--broker", "memory://", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "redis://" in result.stderr
    result = subprocess.run(
        [*WSLOOP, "serve", "--mode", "ticker", "--broker", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--broker serves --mode broadcast" in result.stderr


def test_serve_with_an_in_process_broker_and_channels_by_path() -> None:
    from prockit import Supervised

    proc = subprocess.Popen(
        [*WSLOOP, "serve", "--port", "0", "--broker", "memory://"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = Supervised(proc).url
        with (
            wsloop.sync.connect(url + "news") as a,
            wsloop.sync.connect(url + "news") as b,
            wsloop.sync.connect(url) as other,
        ):
            # Each subscribes as its handshake is answered, before a's
            # message reaches the server.
            a.send("hello")
            for ws in (a, b):
                message = decode_envelope(ws.recv(timeout=10))
                assert (message.channel, message.offset, message.data) == ("news", 1, "hello")
            other.send("feed")
            message = decode_envelope(other.recv(timeout=10))
            assert (message.channel, message.data) == ("feed", "feed")
            b.send("again")  # published after "feed": a gets it next, never "feed"
            message = decode_envelope(a.recv(timeout=10))
            assert (message.channel, message.offset, message.data) == ("news", 2, "again")
    finally:
        proc.terminate()
        proc.wait(10)
