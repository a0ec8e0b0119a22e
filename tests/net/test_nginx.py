"""A wsloop server behind a real nginx (Debian's, installed by scripts/setup),
configured as docs/deployment.md says: messages, pings and close codes go
through, both ways, and so does X-Forwarded-For.

The test writes its own nginx.conf (the documented ``http`` block, with its
ports, inside the ``events``/``http`` frame and temporary paths nginx
needs) and runs nginx in the foreground on a free 127.0.0.1 port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import wsloop
import wsloop.sync

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def documented_config() -> str:
    text = (ROOT / "docs" / "deployment.md").read_text()
    (block,) = re.findall(r"```nginx\n(.*?)```", text, re.S)
    return block


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """nginx in the foreground (``daemon off``), its log on stderr, which
    says when it is ready."""

    def __init__(self, tmp: Path, backend_port: int) -> None:
        self.port = free_port()
        http = documented_config()
        assert "server 127.0.0.1:8765;" in http and "listen 80;" in http
        http = http.replace("server 127.0.0.1:8765;", f"server 127.0.0.1:{backend_port};")
        http = http.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        temp = "\n".join(
            f"    {kind}_temp_path {tmp}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (tmp / "nginx.conf").write_text(
            f"daemon off;\n"
            f"worker_processes 1;\n"
            f"pid {tmp}/nginx.pid;\n"
            f"error_log stderr notice;\n"
            f"events {{ worker_connections 64; }}\n"
            f"http {{\n"
            f"    access_log off;\n{temp}\n{http}\n}}\n"
        )
        self.process = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        if not self.ready.wait(10):
            self.stop()
            raise AssertionError("nginx did not start:\n" + "".join(self.log))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "start worker process" in line:
                self.ready.set()
        self.ready.set()  # exited: the wait above reports the log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.reader.join(10)


class App:
    """The wsloop server behind nginx, as a blocking server."""

    def __init__(self) -> None:
        self.forwarded_for: list[str | None] = []
        self.client_closes: list[tuple[int, str]] = []
        self.client_closed = threading.Event()

    def __call__(self, ws: wsloop.sync.SyncWebSocket) -> None:
        assert ws.request is not None
        self.forwarded_for.append(ws.request.headers.get("X-Forwarded-For"))
        try:
            for message in ws:
                if message == "close 4001":
                    ws.close(4001, "bye from the server")
                    return
                if message == "ping me":
                    ws.send(f"server ping answered in {ws.ping(timeout=5):.6f} s")
                    continue
                ws.send(message)
        except wsloop.ConnectionClosedError as closed:
            self.client_closes.append((closed.code, closed.reason))
            self.client_closed.set()
            raise


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[App, Nginx]]:
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed: scripts/setup installs it (apt-get install nginx)")
    app = App()
    with wsloop.sync.serve(app, "127.0.0.1", 0) as server:
        nginx = Nginx(tmp_path, server.port)
        try:
            yield app, nginx
        finally:
            nginx.stop()


def test_messages_pings_and_close_codes_pass_through_nginx(
    behind_nginx: tuple[App, Nginx],
) -> None:
    app, nginx = behind_nginx
    url = f"ws://127.0.0.1:{nginx.port}/ws/app"
    with wsloop.sync.connect(url) as ws:
        assert ws.remote_address[1] == nginx.port  # through nginx, not around it
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        big = os.urandom(300_000)  # many TCP segments, one message
        ws.send(big)
        assert ws.recv(timeout=5) == big
        assert ws.ping(b"client", timeout=5) > 0  # the client's ping, nginx, the server's pong
        ws.send("ping me")  # and the server's ping, answered by the client
        assert str(ws.recv(timeout=5)).startswith("server ping answered in")
        ws.send("close 4001")
        with pytest.raises(wsloop.ConnectionClosedError) as closed:
            ws.recv(timeout=5)
        assert (closed.value.code, closed.value.reason, closed.value.clean) == (
            4001,
            "bye from the server",
            True,
        )
    assert app.forwarded_for == ["127.0.0.1"]

    # A close code from the client's side reaches the server too.
    with wsloop.sync.connect(url) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.close(4002, "bye from the client")
        assert ws.close_code == 4002
    assert app.client_closed.wait(5)
    assert app.client_closes == [(4002, "bye from the client")]
