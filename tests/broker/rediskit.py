"""A real redis-server for the broker tests (see conftest.py for the
fixtures), and the loops the tests run on. A module of its own, not
conftest: tests/net has a conftest too, and ``from conftest import``
resolves to whichever was imported last."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        extra: list[str] | None = None,
        url: str | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.extra = extra or []
        self.tls = tls
        self._url = url
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run scripts/setup")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wsloop-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return (self._url or "redis://127.0.0.1:{port}/0").format(port=self.port)

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert]
            listen += ["--tls-key-file", key, "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(
            [
                *(self.binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly"),
                *("no", "--dir", self.dir, "--loglevel", "notice", *self.extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Ready when it says so: read its log (in a thread, with a deadline).
        ready = threading.Event()
        lines: list[bytes] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                if b"Ready to accept connections" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            pytest.fail(f"redis-server did not start: {b''.join(lines[-20:]).decode()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self, *args: str | bytes | int) -> object:
        """One command over a short blocking connection (for checks)."""
        import hiredis

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(hiredis.pack_command(args))
            reader = hiredis.Reader()
            while True:
                reply = reader.gets()
                if reply is not False:
                    return reply
                chunk = s.recv(65536)
                assert chunk, "redis closed the connection"
                reader.feed(chunk)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Backend:
    """A wsloop backend's loop, owned and run by the test (as tests/net's)."""

    def __init__(self, name: str) -> None:
        from loopkit import make_loop

        self.name = name
        self.loop, self.native = make_loop(name, False)

    def run_until(self, done: object, timeout: float = 10.0) -> bool:
        from loopkit import drive

        return drive(self.loop, self.native, self.name, done, timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        from loopkit import free_native

        self.loop.close()
        free_native(self.name, self.native)
