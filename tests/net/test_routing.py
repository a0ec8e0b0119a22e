"""Getting there: DNS and address fallback, IPv6, redirects, HTTP proxies."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import wsloop
from netkit import Echo, Recorder


def echo_round_trip(backend: Any, url: str, **kwargs: Any) -> Recorder:
    rec = Recorder(want=1, send=["ping?"])
    client = wsloop.connect(url, rec, loop=backend.loop, **kwargs)
    assert backend.run_until(lambda: rec.got_all.is_set() or client.closed, timeout=10), rec.errors
    if rec.got_all.is_set():
        client.close()
        assert backend.run_until(lambda: client.closed)
    return rec


def test_hostname_tries_each_address(backend, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A name with two addresses, the first refusing: the client moves on.

    The resolver's answer is the test's (this machine's "localhost" has one
    address); both connection attempts are real TCP on the loopback.
    """
    server = wsloop.serve(Echo(), "127.0.0.1", loop=backend.loop)
    real = socket.getaddrinfo

    def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "two-addresses.test":
            return real(host, port, *args, **kwargs)
        stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [(*stream, ("127.0.0.2", port)), (*stream, ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    rec = echo_round_trip(backend, f"ws://two-addresses.test:{server.port}/")
    assert rec.messages == ["ping?"]
    assert rec.ws is not None and rec.ws.remote_address[0] == "127.0.0.1"
    # And with no address answering, the last error is reported.
    server_port = server.port
    server.close()
    assert backend.run_until(lambda: server.closed)
    rec = echo_round_trip(backend, f"ws://two-addresses.test:{server_port}/")
    assert isinstance(rec.errors[0], ConnectionRefusedError) and "127.0.0.1" in str(rec.errors[0])


def test_ipv6_literal(backend) -> None:  # type: ignore[no-untyped-def]
    try:
        server = wsloop.serve(Echo(), "::1", loop=backend.loop)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    assert server.url.startswith("ws://[::1]:")
    rec = echo_round_trip(backend, server.url)
    assert rec.messages == ["ping?"]
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_unresolvable_host_is_a_clear_error(backend) -> None:  # type: ignore[no-untyped-def]
    rec = echo_round_trip(backend, "ws://no-such-host.invalid/")
    assert isinstance(rec.errors[0], OSError) and "no-such-host.invalid" in str(rec.errors[0])


class Listener:
    """A plain TCP listener on 127.0.0.1 that hands each connection to
    ``handle`` in a thread (test peers that are not WebSocket servers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class HttpStub(Listener):
    """Answers every request with a fixed response (for redirects), and
    keeps the requests it got."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.hits = 0
        self.requests: list[bytes] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            self.requests.append(conn.recv(65536))
            self.hits += 1
            conn.sendall(self.response.replace(b"PORT", str(self.port).encode()))


def test_follows_a_redirect(backend) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop)
    stub = HttpStub(
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:%d/moved\r\nContent-Length: 0\r\n\r\n"
        % server.port
    )
    rec = echo_round_trip(backend, f"ws://127.0.0.1:{stub.port}/old")
    assert rec.messages == ["ping?"] and stub.hits == 1
    assert rec.ws is not None and rec.ws.request is not None and rec.ws.request.path == "/moved"
    stub.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_redirect_loop_stops(backend) -> None:  # type: ignore[no-untyped-def]
    stub = HttpStub(
        b"HTTP/1.1 301 Moved\r\nLocation: ws://127.0.0.1:PORT/again\r\nContent-Length: 0\r\n\r\n"
    )
    rec = echo_round_trip(backend, f"ws://127.0.0.1:{stub.port}/", max_redirects=2)
    assert stub.hits == 3
    assert isinstance(rec.errors[0], wsloop.HandshakeError) and rec.errors[0].status == 301
    stub.close()


CREDENTIALS = ["Authorization", "Cookie", "Proxy-Authorization"]


def recording_server(backend: Any, redirect: bool = False) -> tuple[Any, list[Any]]:
    """A wsloop server that keeps each request; with ``redirect``, it
    answers /old with a 302 to /new on itself."""
    seen: list[Any] = []

    def hook(ws: wsloop.WebSocket, request: Any) -> None:
        seen.append(request)
        if redirect and request.path == "/old":
            ws.reject(302, "moved", [("Location", "/new")])

    return wsloop.serve(Echo(), loop=backend.loop, process_request=hook), seen


@pytest.mark.parametrize("given", ["headers", "userinfo"])
def test_redirect_to_another_host_drops_credentials(backend, given: str) -> None:  # type: ignore[no-untyped-def]
    """Two real servers on 127.0.0.1; another port is another host."""
    server, seen = recording_server(backend)
    stub = HttpStub(
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:%d/moved\r\nContent-Length: 0\r\n\r\n"
        % server.port
    )
    headers = [("X-Trace", "t1")]
    if given == "headers":
        url = f"ws://127.0.0.1:{stub.port}/old"
        headers += [("Authorization", "Bearer s3cret"), ("Cookie", "sid=1")]
        headers += [("Proxy-Authorization", "Basic cHJveHk6cHc=")]
        sent = [b"Authorization: Bearer s3cret", b"Cookie: sid=1", b"Proxy-Authorization: Basic"]
    else:
        url = f"ws://user:pw@127.0.0.1:{stub.port}/old"
        sent = [b"Authorization: Basic dXNlcjpwdw=="]
    rec = echo_round_trip(backend, url, headers=headers)
    assert rec.messages == ["ping?"], rec.errors
    assert all(line in stub.requests[0] for line in sent), "the first host got them"
    [request] = seen
    assert request.path == "/moved" and request.headers.get("X-Trace") == "t1"
    assert [name for name in CREDENTIALS if name in request.headers] == []
    stub.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_redirect_on_the_same_host_keeps_credentials(backend) -> None:  # type: ignore[no-untyped-def]
    server, seen = recording_server(backend, redirect=True)
    url = f"ws://user:pw@127.0.0.1:{server.port}/old"
    rec = echo_round_trip(backend, url, headers=[("Cookie", "sid=1")])
    assert rec.messages == ["ping?"], rec.errors
    assert [r.path for r in seen] == ["/old", "/new"]
    for request in seen:
        assert request.headers.get_all("Authorization") == ["Basic dXNlcjpwdw=="]
        assert request.headers.get_all("Cookie") == ["sid=1"]
    server.close()
    assert backend.run_until(lambda: server.closed)


@pytest.mark.parametrize(
    ("new", "kept"),
    [
        ("ws://h:80/other", True),  # the same origin, default port spelled out
        ("ws://H/x", True),  # host names are case-insensitive
        ("wss://h/", False),  # another scheme
        ("ws://h:81/", False),  # another port
        ("ws://h2/", False),  # another host
    ],
)
def test_strip_credentials_is_the_default_rule(new: str, kept: bool) -> None:
    from wsloop.options import ClientOptions, strip_credentials

    assert ClientOptions().redirect_headers is strip_credentials
    headers = [("authorization", "a"), ("COOKIE", "c"), ("Proxy-Authorization", "p"), ("X", "x")]
    assert strip_credentials("ws://h/", new, headers) == (headers if kept else [("X", "x")])


def test_redirect_headers_hook_decides(backend) -> None:  # type: ignore[no-untyped-def]
    server, seen = recording_server(backend)
    stub = HttpStub(
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:%d/moved\r\nContent-Length: 0\r\n\r\n"
        % server.port
    )
    calls: list[tuple[str, str, list[tuple[str, str]]]] = []

    def trust_the_new_host(
        old: str, new: str, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        calls.append((old, new, headers))
        return [*headers, ("X-Redirected-From", old)]

    rec = echo_round_trip(
        backend,
        f"ws://127.0.0.1:{stub.port}/old",
        headers=[("Authorization", "Bearer s3cret")],
        redirect_headers=trust_the_new_host,
    )
    assert rec.messages == ["ping?"], rec.errors
    old = f"ws://127.0.0.1:{stub.port}/old"
    assert calls == [
        (old, f"ws://127.0.0.1:{server.port}/moved", [("Authorization", "Bearer s3cret")])
    ]
    [request] = seen
    assert request.headers.get("Authorization") == "Bearer s3cret"
    assert request.headers.get("X-Redirected-From") == old
    stub.close()
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_redirect_headers_hook_returning_junk_is_reported(backend) -> None:  # type: ignore[no-untyped-def]
    stub = HttpStub(
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/moved\r\nContent-Length: 0\r\n\r\n"
    )
    rec = echo_round_trip(
        backend, f"ws://127.0.0.1:{stub.port}/", redirect_headers=lambda old, new, headers: None
    )
    assert stub.hits == 1
    assert isinstance(rec.errors[0], TypeError) and "redirect_headers must return" in str(
        rec.errors[0]
    )
    stub.close()


class ConnectProxy(Listener):
    """A minimal HTTP CONNECT proxy that sends every tunnel to 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self._tunnel(conn)

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                conn.close()
                return
            head += data
        self.requests.append(head)
        target = head.split(b" ")[1].decode()
        port = int(target.rsplit(":", 1)[1])
        upstream = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        t.start()
        pipe(conn, upstream)
        t.join(10)
        conn.close()
        upstream.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy()
    yield p
    p.close()


def test_explicit_proxy_with_credentials(backend, proxy: ConnectProxy) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop)
    rec = echo_round_trip(backend, server.url, proxy=f"http://user:secret@127.0.0.1:{proxy.port}")
    assert rec.messages == ["ping?"]
    (request,) = proxy.requests
    assert request.startswith(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % server.port)
    assert b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n" in request
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_proxy_from_environment_and_no_proxy(backend, proxy: ConnectProxy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server = wsloop.serve(Echo(), loop=backend.loop)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    # A name only the proxy knows how to reach: the client never resolves it.
    rec = echo_round_trip(backend, f"ws://feed.example.test:{server.port}/")
    assert rec.messages == ["ping?"]
    assert proxy.requests[0].startswith(b"CONNECT feed.example.test:%d " % server.port)
    # no_proxy applies...
    monkeypatch.setenv("no_proxy", "example.test")
    rec = echo_round_trip(backend, f"ws://feed.example.test:{server.port}/")
    assert rec.errors and len(proxy.requests) == 1
    # ...and loopback never goes through an environment proxy.
    monkeypatch.delenv("no_proxy")
    rec = echo_round_trip(backend, server.url)
    assert rec.messages == ["ping?"] and len(proxy.requests) == 1
    # proxy=False ignores the environment.
    rec = echo_round_trip(backend, f"ws://feed.example.test:{server.port}/", proxy=False)
    assert rec.errors and len(proxy.requests) == 1
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_proxy_refusal_is_reported(backend) -> None:  # type: ignore[no-untyped-def]
    stub = HttpStub(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    rec = echo_round_trip(backend, "ws://example.test/", proxy=f"http://127.0.0.1:{stub.port}")
    assert isinstance(rec.errors[0], wsloop.HandshakeError) and rec.errors[0].status == 407
    stub.close()
