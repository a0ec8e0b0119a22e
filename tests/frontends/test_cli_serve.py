"""``wsloop serve`` (issue 21): help with defaults, TLS file errors, the
stdio and exec modes, paths. Each test runs the real command in a
subprocess and talks to it with real clients."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import wsloop
import wsloop.sync
from loopkit import require
from netkit import FloodClient
from wsloop.loops import BACKENDS

WSLOOP = [sys.executable, "-m", "wsloop"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WSLOOP, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@contextlib.contextmanager
def serving(*args: str, stdin: int | None = subprocess.DEVNULL) -> Iterator[subprocess.Popen[str]]:
    """``wsloop serve --port 0 ARGS`` running; ``proc.url`` is its URL."""
    proc = subprocess.Popen(
        [*WSLOOP, "serve", "--port", "0", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = "ws://127.0.0.1:0/"
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), (url, proc.stderr and proc.stderr.read())
        proc.url = url  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(15)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition of another process (no event to wait on), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.02)
    return condition()


def wait_exited(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to end (a pidfd is readable then)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


# -- options --------------------------------------------------------------------


def test_every_serve_option_has_help_showing_its_default() -> None:
    from wsloop.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.choices["serve"]  # type: ignore[attr-defined]
    formatter = serve._get_formatter()
    shown = run("serve", "--help").stdout
    for action in serve._actions:
        if action.dest in ("help", "debug"):
            continue
        text = formatter._get_help_string(action)
        assert action.help, f"{action.option_strings} has no help"
        assert "(default: " in text, f"{action.option_strings} does not show its default"
        assert action.option_strings[-1] in shown
    assert "(default: 8765)" in shown and "(default: 127.0.0.1)" in shown


def test_tls_file_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_only = tmp_path / "cert.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_only))
    missing = str(tmp_path / "missing.pem")
    cases = [
        (["--tls-cert", missing], f"cannot read --tls-cert file {missing!r}"),
        (["--tls-cert", str(cert_only)], "needs --tls-key"),
        (["--tls-cert", str(cert_only), "--tls-key", missing], f"--tls-key file {missing!r}"),
        (["--tls-key", str(cert_only)], "--tls-key needs --tls-cert"),
    ]
    for args, words in cases:
        result = run("serve", "--port", "0", *args)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("wsloop: error:") and words in line, (args, line)
    # And a good pair serves wss://.
    key = tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key))
    proc = subprocess.Popen(
        [*WSLOOP, "serve", "--port", "0", "--tls-cert", str(cert_only), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("wss://127.0.0.1:")
    proc.terminate()
    assert proc.wait(15) == 0


def test_sigint_stops_connect_on_every_loop_and_sigterm_serve() -> None:
    """A client on each loop at once (the signal must wake its loop): SIGINT
    ends each (1000, status 0); then SIGTERM ends the server."""
    for loop in BACKENDS:
        require(loop)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(serving())
        clients = {}
        for loop in BACKENDS:
            clients[loop] = client = subprocess.Popen(
                [*WSLOOP, "connect", server.url, "--no-input", "--loop", loop],  # type: ignore[attr-defined]
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            stack.callback(client.kill)
        for loop, client in clients.items():
            assert client.stderr is not None
            line = client.stderr.readline()  # printed once its handlers are set
            assert line.startswith("connected to"), (loop, line)
            client.send_signal(signal.SIGINT)
        # Ten processes closing at once on a loaded machine: seconds each
        # (a loop the signal did not wake would never end: no keepalive).
        for loop, client in clients.items():
            assert client.wait(15) == 0, loop
            assert client.stderr is not None and "closed: 1000" in client.stderr.read(), loop
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0


class SilentServer:
    """Accepts WebSocket handshakes, then never answers (not even a close
    frame), so a client's closing handshake waits for its close_timeout."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, name="test-silent", daemon=True).start()

    def _serve(self) -> None:
        from wsloop.protocol.handshake import accept_key

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = accept_key(key).encode()
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("loop", ["builtin", "glib", "qt", "tk"])
def test_a_second_sigint_quits_at_once_with_130(loop: str) -> None:
    """The first Ctrl-C starts the closing handshake, which this server never
    finishes; the second quits at once (it used to raise inside the native
    loop's callback, where GLib dropped the source and the command hung)."""
    require(loop)
    server = SilentServer()
    client = subprocess.Popen(
        [*WSLOOP, "connect", server.url, "--no-input", "--loop", loop],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stderr is not None
        line = client.stderr.readline()
        assert line.startswith("connected to"), line
        client.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(0.5)  # closing: the server does not answer
        client.send_signal(signal.SIGINT)
        # At once: well before the close_timeout (10 s) would end the
        # closing handshake, with room for a loaded machine.
        assert client.wait(8) == 130
    finally:
        client.kill()
        client.wait(5)
        server.close()


# -- paths ------------------------------------------------------------------------


def test_routes_serve_a_mode_per_path_and_404_elsewhere() -> None:
    with serving("--route", "/=ticker", "--route", "/echo=echo", "--rate", "6000") as proc:
        url = proc.url  # type: ignore[attr-defined]
        with wsloop.sync.connect(url + "echo?token=x") as ws:  # the query is not the path
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        with wsloop.sync.connect(url) as ws:
            assert '"seq": 1' in ws.recv(timeout=5)
        with pytest.raises(wsloop.HandshakeError) as info:
            wsloop.sync.connect(url + "other")
        assert info.value.status == 404
        assert info.value.response is not None and b"served: / /echo" in info.value.response.body


def test_path_serves_the_mode_at_that_path_only() -> None:
    with serving("--path", "/ws") as proc:
        url = proc.url  # type: ignore[attr-defined]
        with wsloop.sync.connect(url + "ws") as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        with pytest.raises(wsloop.HandshakeError) as info:
            wsloop.sync.connect(url)
        assert info.value.status == 404


def test_bad_routes_and_modes_are_usage_errors() -> None:
    for args in (
        ["--route", "/x=nope"],
        ["--route", "x=echo"],
        ["--exec", "cat", "--mode", "echo"],
    ):
        assert run("serve", "--port", "0", *args).returncode == 2, args
    result = run("serve", "--port", "0", "--exec", "no-such-program-wsloop")
    assert result.returncode == 2 and "command not found: 'no-such-program-wsloop'" in result.stderr


# -- stdio ------------------------------------------------------------------------


def test_stdio_sends_stdin_lines_to_every_client_and_prints_theirs() -> None:
    with serving("--mode", "stdio", stdin=subprocess.PIPE) as proc:
        url = proc.url  # type: ignore[attr-defined]
        assert proc.stdin is not None and proc.stdout is not None
        with wsloop.sync.connect(url) as a, wsloop.sync.connect(url) as b:
            a.send("from a")
            b.send(b"\x01\x02")
            # Both are open on the server once it printed what they sent.
            printed = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
            assert printed == {"from a", "[binary] 0102"}
            proc.stdin.write("hello\nworld\n")
            proc.stdin.flush()
            proc.stdin.buffer.write(b"\xff\xfe not UTF-8\n")  # sent as it is, binary
            proc.stdin.flush()
            for ws in (a, b):
                received = [ws.recv(timeout=5) for _ in range(3)]
                assert received == ["hello", "world", b"\xff\xfe not UTF-8"]
            proc.stdin.close()  # the end of standard input stops the server
            for ws in (a, b):
                with pytest.raises(wsloop.ConnectionClosed):
                    ws.recv(timeout=10)
                assert ws.close_code == 1001
        assert proc.wait(15) == 0


def test_stdio_holds_lines_until_a_client_connects() -> None:
    with serving("--mode", "stdio", stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        proc.stdin.write("early\n")
        proc.stdin.flush()
        with wsloop.sync.connect(proc.url) as ws:  # type: ignore[attr-defined]
            assert ws.recv(timeout=5) == "early"


# -- exec -------------------------------------------------------------------------

UPPER = """
import os, sys
print("path", os.environ["WSLOOP_PATH"], flush=True)
for line in sys.stdin:
    if line.startswith("exit"):
        sys.exit(int(line.split()[1]))
    if line.startswith("bytes"):
        sys.stdout.buffer.write(b"\\xff\\xfe\\n")
        sys.stdout.flush()
        continue
    print(line.strip().upper(), flush=True)
"""

STUBBORN = """
import os, signal, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(os.getpid(), flush=True)
threading.Event().wait()
"""

SLEEPER = """
import os, threading
print(os.getpid(), flush=True)
threading.Event().wait()
"""


def python(script: str) -> str:
    """--exec's value that runs ``script`` with this Python."""
    return f"{sys.executable} -c '{script}'"


@pytest.mark.parametrize("loop", BACKENDS)
def test_exec_runs_a_command_per_connection(loop: str) -> None:
    require(loop)
    with serving("--exec", python(UPPER), "--loop", loop) as proc:
        url = proc.url  # type: ignore[attr-defined]
        with wsloop.sync.connect(url + "a") as one, wsloop.sync.connect(url + "b") as two:
            assert one.recv(timeout=10) == "path /a" and two.recv(timeout=10) == "path /b"
            one.send("hello")
            two.send("other")
            assert one.recv(timeout=5) == "HELLO" and two.recv(timeout=5) == "OTHER"
            one.send("bytes")  # a line that is not UTF-8 comes as binary
            assert one.recv(timeout=5) == b"\xff\xfe"
            one.send("exit 3")  # the command's end closes the connection
            with pytest.raises(wsloop.ConnectionClosed):
                one.recv(timeout=10)
            assert one.close_code == 1011 and one.close_reason == "command exited with status 3"
            two.send("exit 0")
            with pytest.raises(wsloop.ConnectionClosed):
                two.recv(timeout=10)
            assert two.close_code == 1000


def test_exec_stops_a_command_that_outlives_its_client() -> None:
    with serving("--exec", python(STUBBORN)) as proc:
        with wsloop.sync.connect(proc.url) as ws:  # type: ignore[attr-defined]
            pid = int(ws.recv(timeout=10))
        # Its input closed, SIGTERM ignored: SIGKILL after 2 + 2 seconds.
        assert wait_exited(pid, 10)


def test_exec_commands_are_stopped_with_the_server() -> None:
    """Three commands that ignore the end of their input: all get SIGTERM
    GRACE seconds after the server stops, together, not one after another."""
    from wsloop.cli.command import GRACE

    with serving("--exec", "sh -c 'echo $$; exec sleep 60'") as proc:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(wsloop.sync.connect(proc.url)) for _ in range(3)]  # type: ignore[attr-defined]
            pids = [int(ws.recv(timeout=10)) for ws in clients]
            proc.send_signal(signal.SIGTERM)
            # GRACE and a moment, together; 3 * GRACE one after another.
            assert proc.wait(2.5 * GRACE) == 0
        assert all(wait_exited(pid, 5) for pid in pids)


def memory_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_exec_backpressure_a_command_that_does_not_read() -> None:
    """A client sends 32 MiB to a command that reads nothing: the server
    stops reading the client instead of holding it all."""
    with serving("--exec", python(SLEEPER)) as proc:
        port = int(proc.url.rsplit(":", 1)[1].strip("/"))  # type: ignore[attr-defined]
        flood = FloodClient(port, count=512, size=64 * 1024)
        try:
            assert flood.opened.wait(10)
            base = memory_kib(proc.pid)
            # Bounded negative wait: 32 MiB cannot get into a server that stopped reading.
            assert not flood.sent_all.wait(1.5)
            grown = memory_kib(proc.pid) - base
            assert grown < 16 * 1024, f"the server grew by {grown} KiB"
        finally:
            flood.sock.shutdown(socket.SHUT_RDWR)  # unblocks the flood's writer
            flood.close()


def test_exec_backpressure_a_client_that_does_not_read() -> None:
    """``yes`` writes without end to a client that reads nothing: the server
    stops reading ``yes``, whose writes then block, and memory stays flat."""
    with serving("--exec", "yes " + "y" * 1000) as proc:
        port = int(proc.url.rsplit(":", 1)[1].strip("/"))  # type: ignore[attr-defined]
        client = FloodClient(port, count=0, size=4)  # a handshake, then no reading
        try:
            assert client.opened.wait(10)

            def yes_blocked() -> bool:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                return any(
                    "pipe_write" in Path(f"/proc/{child}/wchan").read_text() for child in children
                )

            assert wait_for(yes_blocked)
            first = memory_kib(proc.pid)
            assert wait_for(yes_blocked)
            assert memory_kib(proc.pid) - first < 8 * 1024
        finally:
            client.sock.shutdown(socket.SHUT_RDWR)
            client.close()


def test_the_readme_examples_run_against_wsloop_serve_routes() -> None:
    """The README's examples talk to a feed at / and an echo at /echo: the
    server ``wsloop serve --route /=ticker --route /echo=echo`` is."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "127.0.0.1:8765/echo" in b
    ]
    assert len(blocks) >= 2
    with serving("--route", "/=ticker", "--route", "/echo=echo", "--rate", "6000") as proc:
        port = proc.url.rsplit(":", 1)[1].strip("/")  # type: ignore[attr-defined]
        for code in blocks:
            code = code.replace("127.0.0.1:8765", f"127.0.0.1:{port}")
            result = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 0, result.stderr
