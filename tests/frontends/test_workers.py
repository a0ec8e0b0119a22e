"""``wsloop serve --workers N``: real processes on one port, real signals.

Which worker answered a client is in the handshake response
(``X-Wsloop-Worker``); the workers' pids are the supervisor's children, read
from /proc. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest

import wsloop
import wsloop.sync
from prockit import WSLOOP, supervised, wait_gone
from wsloop.cli.workers import GRACE, WORKER_HEADER
from wsloop.options import reuse_port_option

pytestmark = [
    pytest.mark.skipif(reuse_port_option() is None, reason="this platform has no SO_REUSEPORT"),
    pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc (Linux)"),
]


def connect_many(url: str, count: int) -> list[wsloop.sync.SyncWebSocket]:
    clients = [wsloop.sync.connect(url) for _ in range(count)]
    for i, ws in enumerate(clients):
        ws.send(f"hello {i}")
        assert ws.recv(timeout=10) == f"hello {i}"
    return clients


def worker_of(ws: wsloop.sync.SyncWebSocket) -> str:
    assert ws.response is not None
    name = ws.response.headers.get(WORKER_HEADER)
    assert name is not None
    return name


def test_clients_are_spread_over_workers_and_sigterm_stops_them_all() -> None:
    # A long shutdown timeout: closing at once, as the clients answer, is
    # told from waiting for it with seconds to spare for a loaded machine.
    with supervised(3, "--shutdown-timeout", "10") as sup:
        pids = sup.workers()
        clients = connect_many(sup.url, 24)
        served = {worker_of(ws) for ws in clients}
        # The kernel hashes each connection to one of the 3 listening
        # sockets: 24 all on one would be a 1-in-3**23 chance.
        assert len(served) >= 2, served
        assert served <= {"1", "2", "3"}
        started = time.monotonic()
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(10 + GRACE + 5) == 0, sup.err.text()
        # Graceful: every client was closed with 1001 (going away), at once.
        assert time.monotonic() - started < 10
        for ws in clients:
            assert ws.wait_closed(10)
            assert ws.close_code == 1001
        assert wait_gone(pids, 5) == []


def test_ctrl_c_stops_every_worker() -> None:
    with supervised(2) as sup:
        pids = sup.workers()
        (ws,) = connect_many(sup.url, 1)
        sup.proc.send_signal(signal.SIGINT)
        assert sup.proc.wait(10 + GRACE + 5) == 0, sup.err.text()
        assert ws.wait_closed(10) and ws.close_code == 1001
        assert wait_gone(pids, 5) == []


def test_a_worker_that_dies_is_reported_and_restarted() -> None:
    # The clients answer the close at once: the workers stop long before
    # the shutdown timeout and GRACE (status 0), however loaded the machine.
    with supervised(2, "--shutdown-timeout", "10") as sup:
        first, second = sup.workers()
        os.kill(first, signal.SIGKILL)
        sup.err.wait_for(f"(pid {first}) was killed by SIGKILL; restarting it")
        sup.err.wait_for("restarted (pid ")
        now = sup.workers()
        assert len(now) == 2 and first not in now and second in now
        clients = connect_many(sup.url, 12)  # served, by both again
        assert len({worker_of(ws) for ws in clients}) == 2
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(10 + GRACE + 5) == 0, sup.err.text()
        assert wait_gone(now, 5) == []


def test_shutdown_is_bounded() -> None:
    """Clients that never answer the close are dropped after
    --shutdown-timeout; a worker that cannot even handle SIGTERM (stopped
    here with SIGSTOP) is killed GRACE seconds after that."""
    with supervised(2, "--shutdown-timeout", "0.5") as sup:
        pids = sup.workers()
        mute = []
        for _ in range(8):  # a handshake, then nothing read, nothing sent
            s = socket.create_connection(("127.0.0.1", urlsplit(sup.url).port or 0))
            s.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 101")
            mute.append(s)
        sup.proc.send_signal(signal.SIGTERM)
        # 0: every worker stopped by itself, dropping the mute clients after
        # 0.5 s (one still running 0.5 + GRACE s after SIGTERM is killed: 1).
        assert sup.proc.wait(0.5 + GRACE + 5) == 0, sup.err.text()
        assert wait_gone(pids, 5) == []
        for s in mute:
            s.close()

    with supervised(2, "--shutdown-timeout", "0.5") as sup:
        pids = sup.workers()
        os.kill(pids[0], signal.SIGSTOP)
        started = time.monotonic()
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(0.5 + GRACE + 5) == 1
        assert 0.5 + GRACE - 0.2 < time.monotonic() - started < 0.5 + GRACE + 5
        sup.err.wait_for(f"(pid {pids[0]}) did not stop within 2.5s: killed")
        assert wait_gone(pids, 5) == []


def test_no_worker_outlives_a_killed_supervisor() -> None:
    with supervised(2, "--mode", "ticker") as sup:
        pids = sup.workers()
        ws = wsloop.sync.connect(sup.url)
        assert ws.recv(timeout=10)
        sup.proc.kill()
        sup.proc.wait(10)
        # Each worker finds its lifeline closed and shuts down gracefully.
        assert wait_gone(pids, 10 + 5) == [], "workers left running"
        assert ws.wait_closed(10) and ws.close_code == 1001


def test_workers_usage_errors() -> None:
    result = subprocess.run(
        [*WSLOOP, "serve", "--workers", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--workers must be 1 or more" in result.stderr
    with socket.socket() as busy:  # held without SO_REUSEPORT: nobody may share it
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*WSLOOP, "serve", "--workers", "2", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_worker_that_cannot_start_stops_the_others() -> None:
    result = subprocess.run(
        [*WSLOOP, "serve", "--workers", "2", "--port", "0", "--origin", "https://x/y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "can never match" in result.stderr  # the worker's own error
    assert "exited with code 2 before it listened; stopping" in result.stderr
