"""Helpers for tests over real sockets on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import wsloop
from wsloop.loops import Loop, get_loop


class LoopThread:
    """A builtin wsloop loop running in its own thread (for peers)."""

    def __init__(self) -> None:
        self.loop = get_loop("builtin")
        self.thread = threading.Thread(target=self.loop.run, name="test-peer-loop", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def peer_loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


class Ticker(wsloop.Handler):
    """Server handler: every connection gets {"seq": n} at ``rate`` per second."""

    def __init__(self, rate: float, count: int | None = None) -> None:
        self.interval = 1.0 / rate
        self.count = count

    def on_open(self, ws: wsloop.WebSocket) -> None:
        ws.data["seq"] = 0
        self._tick(ws)

    def _tick(self, ws: wsloop.WebSocket) -> None:
        if ws.state != "open":
            return
        ws.data["seq"] += 1
        ws.send(json.dumps({"seq": ws.data["seq"]}))
        if self.count is None or ws.data["seq"] < self.count:
            ws.loop.call_later(self.interval, self._tick, ws)


class ResumableFeed(wsloop.Handler):
    """Server handler: a feed of {"seq": n} from the ``?since=N`` of the
    request (from 1 without one), ``per_connection`` messages on each
    connection, which it then closes (1012, restarting); it records the
    request target and headers of every handshake it sees."""

    def __init__(self, per_connection: int = 3) -> None:
        self.per_connection = per_connection
        self.requests: list[tuple[str, dict[str, str]]] = []

    def on_open(self, ws: wsloop.WebSocket) -> None:
        from urllib.parse import parse_qs, urlsplit

        assert ws.request is not None
        path = ws.request.path
        self.requests.append((path, {k.lower(): v for k, v in ws.request.headers}))
        since = int(parse_qs(urlsplit(path).query).get("since", ["0"])[0])
        for seq in range(since + 1, since + 1 + self.per_connection):
            ws.send(json.dumps({"seq": seq}))
        ws.close(1012, "restarting")


def resume_from_last_seq(rec: Recorder) -> Callable[[str, list[tuple[str, str]]], Any]:
    """A ``before_reconnect`` hook that resumes after the last seq ``rec``
    saw, in the query and in a header."""

    def hook(url: str, headers: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        last = seqs(rec.messages)[-1] if rec.messages else 0
        return f"{url}?since={last}", [*headers, ("X-Last-Seq", str(last))]

    return hook


class Echo(wsloop.Handler):
    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        ws.send(data)


class Recorder(wsloop.Handler):
    """Client handler that records everything, with events to wait on."""

    def __init__(
        self,
        loop: Loop | None = None,
        want: int | None = None,
        send: list[str | bytes] | None = None,
    ) -> None:
        self.loop = loop
        self.want = want
        self.send_on_open = list(send or [])
        self.messages: list[str | bytes] = []
        self.threads: set[int] = set()
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[BaseException] = []
        self.closes: list[tuple[int, str, bool]] = []
        self.opened = threading.Event()
        self.got_all = threading.Event()
        self.closed = threading.Event()
        self.ws: wsloop.WebSocket | None = None
        self.on_each: Callable[[Recorder, wsloop.WebSocket, str | bytes], None] | None = None

    def on_open(self, ws: wsloop.WebSocket) -> None:
        self.threads.add(threading.get_ident())
        self.ws = ws
        self.opened.set()
        for message in self.send_on_open:
            ws.send(message)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        self.threads.add(threading.get_ident())
        self.messages.append(data)
        if self.on_each is not None:
            self.on_each(self, ws, data)
        if self.want is not None and len(self.messages) >= self.want:
            self.got_all.set()

    def on_error(self, ws: wsloop.WebSocket | None, error: BaseException) -> None:
        self.errors.append(error)

    def on_close(self, ws: wsloop.WebSocket, code: int, reason: str, clean: bool) -> None:
        self.threads.add(threading.get_ident())
        self.closes.append((code, reason, clean))
        self.closed.set()

    def on_state(self, client: wsloop.Client, state: str, detail: dict[str, Any]) -> None:
        self.states.append((state, detail))


def seqs(messages: list[str | bytes]) -> list[int]:
    return [json.loads(m)["seq"] for m in messages]


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts with a throwaway CA made by trustme."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


def wsloop_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("wsloop-")]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class RawPeer:
    """A server that completes one WebSocket handshake with wsloop's
    sans-I/O core on a plain thread, then hands the socket to ``behave``."""

    def __init__(self, behave: Callable[[socket.socket, Any], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.behave = behave
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-raw-peer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from wsloop.protocol import RequestReceived, ServerConnection

        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.settimeout(30)
        conn = ServerConnection(deflate=None, max_message_size=None)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                conn.receive_data(data)
                event = conn.next_event()
                if isinstance(event, RequestReceived):
                    conn.accept()
                    sock.sendall(conn.data_to_send())
                    break
            self.behave(sock, conn)
        finally:
            self.done.set()
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(30)


class Answering:
    """A TCP listener on 127.0.0.1 that answers every request with the
    same bytes (an HTTP refusal, a web page...) and counts the requests."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.hits = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self._serve, name="test-answering", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.hits += 1
                conn.sendall(self.response)

    def close(self) -> None:
        # shutdown() wakes the accept() (close() alone does not on Linux).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


class AsyncioThread:
    """An asyncio loop in a thread, for peer libraries (websockets, aiohttp)."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-asyncio", daemon=True
        )
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FloodClient:
    """A client on a plain socket that, from a thread, completes its
    handshake and sends ``count`` binary messages of ``size`` bytes as fast
    as the server takes them, and reads nothing until :meth:`start_reading`;
    then it checks that every message comes back, in order, and closes."""

    def __init__(self, port: int, count: int, size: int) -> None:
        from wsloop.protocol import ClientConnection

        self.count = count
        self.base = os.urandom(size)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.proto = ClientConnection(
            f"ws://127.0.0.1:{port}/", deflate=None, max_message_size=None
        )
        self.opened = threading.Event()
        self.sent = 0
        self.sent_all = threading.Event()
        self.received = 0
        self.wrong: list[int] = []
        self.closes: list[tuple[int, str]] = []
        self.done = threading.Event()
        self._writer = threading.Thread(target=self._write, name="test-flood-writer", daemon=True)
        self._writer.start()
        self._reader: threading.Thread | None = None

    def message(self, i: int) -> bytes:
        return i.to_bytes(4, "big") + self.base[4:]

    def _write(self) -> None:
        from wsloop.protocol import Opened, encode_frame

        try:
            self.sock.sendall(self.proto.data_to_send())
            while not any(isinstance(e, Opened) for e in self.proto.events()):
                data = self.sock.recv(65536)
                if not data:
                    return
                self.proto.receive_data(data)
            self.opened.set()
            for i in range(self.count):
                self.sock.sendall(encode_frame(2, self.message(i), mask_key=os.urandom(4)))
                self.sent += 1
        except OSError:
            return
        self.sent_all.set()

    def start_reading(self) -> None:
        self._reader = threading.Thread(target=self._read, name="test-flood-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        from wsloop.protocol import Closed, Message

        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    return
                self.proto.receive_data(data)
                for event in self.proto.events():
                    if isinstance(event, Message):
                        if event.data != self.message(self.received):
                            self.wrong.append(self.received)
                        self.received += 1
                        if self.received == self.count:
                            self.proto.close(1000)
                    elif isinstance(event, Closed):
                        self.closes.append((event.code, event.reason))
                out = self.proto.data_to_send()
                if out:
                    self.sock.sendall(out)
        except OSError:
            return
        finally:
            self.done.set()

    def close(self) -> None:
        self.sock.close()
        self._writer.join(10)
        if self._reader is not None:
            self._reader.join(10)
