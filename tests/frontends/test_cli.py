"""The ``wsloop`` command, driven as a subprocess."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

import wsloop
import wsloop.sync
from netkit import Echo, FloodClient, LoopThread, free_port, tls_contexts

WSLOOP = [sys.executable, "-m", "wsloop"]
URL = "URL"


def run(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WSLOOP, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``wsloop serve --port 0 ARGS`` running: its URL (the first line it
    prints) and the process; stopped with SIGTERM after."""
    proc = subprocess.Popen(
        [*WSLOOP, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), (url, proc.stderr and proc.stderr.read())
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode in (0, -15)


@pytest.fixture
def ticker() -> Iterator[str]:
    with serving("--mode", "ticker", "--rate", "6000") as (url, _):
        yield url


@pytest.mark.parametrize("loop", ["builtin", "libev", "qt", "twisted", "trio", "tk"])
def test_connect_count_json(ticker: str, loop: str) -> None:
    result = run("connect", ticker, "--count", "5", "--json", "--loop", loop)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == ["open"] + ["message"] * 5 + ["close"]
    assert [json.loads(e["data"])["seq"] for e in events if e["type"] == "message"] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert all(isinstance(e["time"], float) for e in events)
    assert events[-1]["code"] == 1000 and events[-1]["clean"] is True


def test_connect_sends_stdin_lines_and_closes_on_eof(peer: LoopThread) -> None:
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    result = run("connect", server.url, stdin="one\ntwo\nthree\n")
    assert result.returncode == 0, result.stderr
    # Messages print as they arrive; the close follows stdin's end.
    assert result.stdout.splitlines() == ["one", "two", "three"]
    peer.call(server.close)


class AfterTwoPings(wsloop.Handler):
    """Sends one message once a client's second ping came: the pong of its
    first went out before, whatever the machine's load."""

    def on_ping(self, ws: wsloop.WebSocket, data: bytes) -> None:
        ws.data["pings"] = ws.data.get("pings", 0) + 1
        if ws.data["pings"] == 2:
            ws.send("after two pings")


def test_ping_pong_shown(peer: LoopThread) -> None:
    # Not against a feed the client would read to its end before a pong
    # came, if the machine delayed its first ping.
    server = peer.call(lambda: wsloop.serve(AfterTwoPings(), loop=peer.loop))
    result = run(
        *("connect", server.url, "--count", "1", "--ping-interval", "0.05"),
        *("--show-ping-pong", "--json"),
    )
    peer.call(server.close)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    pongs = [e for e in events if e["type"] == "pong"]
    assert pongs and pongs[0]["rtt_ms"] >= 0, events
    assert [e["data"] for e in events if e["type"] == "message"] == ["after two pings"]


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("http://example.com/", 2, "ws:// or wss://"),
        ("ws://127.0.0.1:PORT/", 3, "connection refused"),
    ],
)
def test_errors_are_one_line(url: str, status: int, words: str) -> None:
    result = run("connect", url.replace("PORT", str(free_port())))
    assert result.returncode == status
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsloop: error:") and words in lines[0], (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_handshake_refused_403(peer: LoopThread) -> None:
    server = peer.call(
        lambda: wsloop.serve(Echo(), loop=peer.loop, process_request=lambda ws, r: (403, "go away"))
    )
    result = run("connect", server.url)
    assert result.returncode == 5
    assert (
        "403" in result.stderr
        and "go away" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )
    peer.call(server.close)


def test_tls_failure_and_insecure(peer: LoopThread) -> None:
    server_ctx, _ = tls_contexts()
    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop, ssl=server_ctx))
    url = server.url.replace("127.0.0.1", "localhost")
    result = run("connect", url)
    assert result.returncode == 4 and "certificate" in result.stderr
    result = run("connect", url, "--insecure", stdin="secret\n")
    assert result.returncode == 0 and result.stdout.strip() == "secret", result.stderr
    peer.call(server.close)


def test_debug_shows_tracebacks_for_bugs() -> None:
    for argv in (["--debug", "connect", URL], ["connect", URL, "--debug"]):
        result = run(*[a.replace(URL, f"ws://127.0.0.1:{free_port()}/") for a in argv])
        assert result.returncode == 3
        # The error's class and the log lines, which plain runs do not show.
        assert "ConnectionRefusedError" in result.stderr and " wsloop ERROR " in result.stderr


def test_serve_reports_busy_port() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        result = run("serve", "--port", str(s.getsockname()[1]))
    finally:
        s.close()
    assert result.returncode == 2 and "cannot listen" in result.stderr


def test_demo_runs_to_completion_with_a_short_flag() -> None:
    # 100 messages a second, of which 15 in the one second listened for:
    # a loaded machine may delay the ticker's timers, not stop the feed.
    result = run("demo", "--duration", "1", "--rate", "6000", "--all-backends", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    import re

    match = re.search(r"summary \(libev\): (\d+) messages.*in order, none missing", result.stdout)
    assert match and int(match.group(1)) >= 15, result.stdout
    from wsloop.loops import BACKENDS

    assert result.stdout.count(" OK ") == len(BACKENDS) - 1, result.stdout
    for name in ("qt", "twisted", "trio", "tk"):
        assert re.search(rf"^  {name} +OK ", result.stdout, re.M), result.stdout


def test_bench_prints_a_table() -> None:
    result = run("bench", "--count", "300", "--sizes", "64,4096", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "round trips/s" in result.stdout and len(result.stdout.splitlines()) == 4


def test_serve_broadcast_mode() -> None:
    with (
        serving("--mode", "broadcast") as (url, _),
        wsloop.sync.connect(url) as a,
        wsloop.sync.connect(url) as b,
    ):
        a.send("to everyone")
        assert a.recv(timeout=5) == "to everyone"
        assert b.recv(timeout=5) == "to everyone"


def test_serve_origin_refuses_other_sites() -> None:
    with serving("--origin", "https://a.example", "--origin", "https://b.example") as (url, _):
        for allowed in ("https://a.example", "https://b.example"):
            with wsloop.sync.connect(url, origin=allowed) as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
        for other in ("https://evil.example", None):
            with pytest.raises(wsloop.HandshakeError) as info:
                wsloop.sync.connect(url, origin=other)
            assert info.value.status == 403


def test_serve_origin_must_be_an_origin() -> None:
    result = run("serve", "--port", "0", "--origin", "https://a.example/")
    assert result.returncode == 2 and "no path or trailing slash" in result.stderr


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_serve_echo_memory_stays_bounded_for_a_client_that_does_not_read() -> None:
    """Defect 5: a client sends 32 MiB and reads nothing; the echo server
    stops reading it instead of holding the echoes, then sends them all."""
    with serving("--mode", "echo", "--max-size", str(1 << 20)) as (url, proc):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        flood = FloodClient(port, count=512, size=64 * 1024)
        try:
            assert flood.opened.wait(10)
            base = memory_kib(proc.pid, "VmRSS")
            # Bounded negative wait: 32 MiB cannot get into a server that
            # stopped reading (the kernel's buffers hold a few MiB).
            assert not flood.sent_all.wait(1.0)
            grown = memory_kib(proc.pid, "VmRSS") - base
            assert grown < 16 * 1024, f"the server grew by {grown} KiB"
            flood.start_reading()
            assert flood.done.wait(30), (flood.sent, flood.received)
            assert flood.sent_all.is_set() and flood.received == 512 and not flood.wrong
            assert flood.closes == [(1000, "")]
            peak = memory_kib(proc.pid, "VmHWM") - base
            assert peak < 16 * 1024, f"the server's peak was {peak} KiB over its start"
        finally:
            flood.close()


def test_publish_count_must_be_at_least_one() -> None:
    result = run("publish", "--broker", "redis://127.0.0.1:1/0", "--channel", "c", "--ticker",
                 "--count", "0")  # fmt: skip
    assert result.returncode == 2 and "must be at least 1" in result.stderr, result.stderr
