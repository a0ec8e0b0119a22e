"""``wsloop connect`` (issue 21): binary in and out, -n, -1, --count, exit
statuses, -v, TLS options, proxies, one-line HTTP errors, --reconnect.
Each test runs the real command in a subprocess against a real server."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wsloop
from loopkit import require
from netkit import Answering, Echo, LoopThread, free_port
from wsloop.cli import exits
from wsloop.loops import BACKENDS

WSLOOP = [sys.executable, "-m", "wsloop"]


def run(*args: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*WSLOOP, *args], input=stdin, capture_output=True, timeout=timeout)


def err_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().strip().splitlines()


class Scripted(wsloop.Handler):
    """The test server: what it does depends on the path.

    ``/echo`` echoes; ``/burst/N`` sends N messages at once on open;
    ``/close/CODE`` closes with CODE on open; ``/drop`` drops TCP on the
    first message;
    ``/big`` sends 4 KiB; ``/subscribe`` sends three messages once it got
    "subscribe", a little later (0.2 s), then closes with 1000;
    ``/subscribe/late`` the same, 10 s later: a client that does not close
    at once gets them, and one that does close never does, however slow
    the machine is to send its close.
    """

    def on_open(self, ws: wsloop.WebSocket) -> None:
        assert ws.request is not None
        path = ws.request.path
        if path.startswith("/burst/"):
            for i in range(int(path.rsplit("/", 1)[1])):
                ws.send(f"m{i + 1}")
        elif path.startswith("/close/"):
            ws.close(int(path.rsplit("/", 1)[1]), "test")
        elif path == "/big":
            ws.send("x" * 4096)

    def on_message(self, ws: wsloop.WebSocket, data: str | bytes) -> None:
        assert ws.request is not None
        if ws.request.path == "/echo":
            ws.send(data)
        elif ws.request.path == "/drop":
            assert ws.transport is not None
            ws.transport.abort()
        elif ws.request.path.startswith("/subscribe") and data == "subscribe":
            late = ws.request.path == "/subscribe/late"
            ws.loop.call_later(10 if late else 0.2, self.feed, ws)

    def feed(self, ws: wsloop.WebSocket) -> None:
        if ws.state == "open":
            for word in ("a", "b", "c"):
                ws.send(word)
            ws.close(1000)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The URL of a Scripted server (no trailing slash)."""
    peer = LoopThread()
    srv = peer.call(lambda: wsloop.serve(Scripted(), loop=peer.loop))
    yield f"ws://127.0.0.1:{srv.port}"
    peer.call(srv.close)
    peer.close()


# -- input and output ------------------------------------------------------------


def test_binary_lines_are_sent_as_binary_and_printed_marked(server: str) -> None:
    result = run("connect", f"{server}/echo", "-b", stdin=b"abc\n\xff\x00\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["[binary] 616263", "[binary] ff00"]
    result = run("connect", f"{server}/echo", "-b", "--binary-output", "base64", stdin=b"abc\n")
    assert result.stdout.decode().splitlines() == ["[binary] " + base64.b64encode(b"abc").decode()]
    # --json says binary: true, and text stays text.
    result = run("connect", f"{server}/echo", "--json", stdin=b"abc\n")
    (message,) = [e for e in map(json.loads, result.stdout.splitlines()) if e["type"] == "message"]
    assert message["data"] == "abc" and message["binary"] is False


def test_slurp_sends_all_of_stdin_as_one_message(server: str) -> None:
    data = bytes(range(256)) * 4 + b"\nend"
    result = run("connect", f"{server}/echo", "-b", "--slurp", "--binary-output", "raw", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data  # one message, byte for byte
    result = run("connect", f"{server}/echo", "--slurp", "--json", stdin=b"one\ntwo\n")
    messages = [e["data"] for e in map(json.loads, result.stdout.splitlines()) if "data" in e]
    assert messages == ["one\ntwo\n"]


def test_a_line_that_is_not_utf8_is_not_sent_as_text(server: str) -> None:
    result = run("connect", f"{server}/echo", stdin=b"ok\n\xff\nfine\n")
    assert result.returncode == 0
    assert result.stdout.decode().splitlines() == ["ok", "fine"]
    assert "line 2 of standard input is not UTF-8" in result.stderr.decode()


def test_no_close_keeps_listening_after_stdin_ends(server: str) -> None:
    result = run("connect", f"{server}/subscribe/late", stdin=b"subscribe\n")
    assert result.returncode == 0 and result.stdout == b""  # closed at stdin's end
    result = run("connect", f"{server}/subscribe", "-n", stdin=b"subscribe\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["a", "b", "c"]


def test_one_message_then_exit(server: str) -> None:
    result = run("connect", f"{server}/burst/5", "-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["m1"]


@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_count_must_be_at_least_one(value: str) -> None:
    result = run("connect", "ws://127.0.0.1:1/", f"--count={value}")
    assert result.returncode == exits.USAGE.status
    assert "--count" in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_count_is_exact_on_every_loop_under_load(server: str) -> None:
    """The 41 of 40: messages read in the same batch as the 40th are still
    delivered while the close handshake runs; they must not be printed.
    A client per loop, all at once, each against a burst."""
    for loop in BACKENDS:
        require(loop)
    procs = {
        loop: subprocess.Popen(
            [*WSLOOP, "connect", f"{server}/burst/400", "--count", "40", "--json", "--loop", loop],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for loop in BACKENDS
    }
    for loop, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, (loop, stderr)
        events = [json.loads(line) for line in stdout.splitlines()]
        messages = [e["data"] for e in events if e["type"] == "message"]
        assert messages == [f"m{i}" for i in range(1, 41)], loop


# -- exit statuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "args", "status"),
    [
        ("/echo", [], exits.OK),  # closed by us at the end of stdin
        ("/close/1000", ["-n"], exits.OK),
        ("/drop", ["-n"], exits.CLOSED[1006]),
        ("/close/1011", ["-n"], exits.CLOSED[1011]),
        ("/close/1008", ["-n"], exits.CLOSED[1008]),
        ("/close/1001", ["-n"], exits.CLOSED[1001]),
        ("/close/1013", ["-n"], exits.CLOSED[1013]),
        ("/close/4000", ["-n"], exits.OTHER_CLOSE),
        ("/big", ["-n", "--max-size", "100"], exits.CLOSED[1009]),
    ],
)
def test_exit_status_says_how_the_connection_ended(
    server: str, path: str, args: list[str], status: exits.ExitStatus
) -> None:
    result = run("connect", server + path, *args, stdin=b"hello\n", timeout=20)
    assert result.returncode == status.status, result.stderr


def test_exit_status_when_no_connection_was_made(server: str) -> None:
    assert run("connect", f"ws://127.0.0.1:{free_port()}/").returncode == exits.UNREACHABLE.status
    assert run("connect", "http://x/").returncode == exits.USAGE.status
    assert run("connect", server + "/x", "-H", "bad").returncode == exits.USAGE.status


def test_exit_statuses_are_distinct_and_in_help_and_docs() -> None:
    statuses = [s.status for s in exits.EXIT_STATUSES]
    assert len(set(statuses)) == len(statuses)
    assert len({s.meaning for s in exits.EXIT_STATUSES}) == len(statuses)
    usage = run("connect", "--help").stdout.decode()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for status, _ in exits.EXIT_STATUSES:
        assert f"\n  {status:<4} " in usage
        assert f"| {status} |" in doc, f"docs/cli.md lacks exit status {status}"


def test_docs_list_every_loop_for_connect() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    (row,) = [
        line
        for line in doc.splitlines()
        if line.startswith("| `--loop NAME` | builtin | event loop:")
    ]
    assert row.split("event loop: ")[1].rstrip(" |").split(", ") == list(BACKENDS)


# -- handshake errors and -v ------------------------------------------------------


def http(status: str, body: bytes = b"", *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: text/html", *headers]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


PAGE = b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title><style>body { color: red }</style></head>
<body>
  <h1>Bad   Gateway</h1>
  <p>The upstream &amp; the proxy
  could not agree.</p>
</body></html>
"""


def test_an_html_error_page_is_one_line() -> None:
    stub = Answering(http("502 Bad Gateway", PAGE))
    result = run("connect", f"ws://127.0.0.1:{stub.port}/")
    assert result.returncode == exits.REFUSED.status
    (line,) = err_lines(result)
    assert line.startswith("wsloop: error: server refused the WebSocket handshake: HTTP 502 ")
    assert "Bad Gateway Bad Gateway The upstream & the proxy could not agree." in line
    assert "<" not in line and "color" not in line
    stub.close()


def test_verbose_prints_the_handshake_on_stderr(server: str) -> None:
    result = run("connect", f"{server}/echo", "-v", "-H", "X-Test: yes", stdin=b"hi\n")
    assert result.returncode == 0 and result.stdout == b"hi\n"
    lines = err_lines(result)
    assert "> GET /echo HTTP/1.1" in lines and "> X-Test: yes" in lines
    assert "< HTTP/1.1 101 Switching Protocols" in lines and "< Upgrade: websocket" in lines
    # A refused handshake shows both sides too.
    stub = Answering(http("401 Unauthorized", b"", "WWW-Authenticate: Bearer"))
    lines = err_lines(run("connect", f"ws://127.0.0.1:{stub.port}/private", "-v"))
    assert "> GET /private HTTP/1.1" in lines and "< WWW-Authenticate: Bearer" in lines
    stub.close()


# -- reconnecting ----------------------------------------------------------------


def test_reconnect_stops_at_once_on_what_cannot_succeed() -> None:
    stub = Answering(http("403 Forbidden", b"no"))
    result = run("connect", f"ws://127.0.0.1:{stub.port}/", "--reconnect")
    assert result.returncode == exits.REFUSED.status and stub.hits == 1
    assert "not reconnecting: this failure will not change by retrying" in result.stderr.decode()
    stub.close()


def test_reconnect_retries_5xx_and_refused_ports() -> None:
    stub = Answering(http("503 Service Unavailable"))
    fast = ["--reconnect", "--reconnect-delay", "0.01", "--max-attempts", "3"]
    result = run("connect", f"ws://127.0.0.1:{stub.port}/", *fast)
    assert result.returncode == exits.REFUSED.status and stub.hits == 3
    assert "gave up after 3 failed attempts" in result.stderr.decode()
    stub.close()
    result = run("connect", f"ws://127.0.0.1:{free_port()}/", *fast)
    assert result.returncode == exits.UNREACHABLE.status
    assert result.stderr.decode().count("reconnecting in") == 2


# -- TLS and proxies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throwaway CA, a server certificate for localhost, a client certificate."""
    import trustme

    ca = trustme.CA()
    where = tmp_path_factory.mktemp("pki")
    files = {
        "ca": where / "ca.pem",
        "server": where / "server.pem",
        "client": where / "client.pem",
        "client_key": where / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(files["server"]))
    client = ca.issue_cert("client@example.test")
    client.cert_chain_pems[0].write_to_path(str(files["client"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return {name: str(path) for name, path in files.items()}


def tls_server(peer: LoopThread, pki: dict[str, str], client_certs: bool) -> wsloop.Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server"])
    if client_certs:
        context.load_verify_locations(pki["ca"])
        context.verify_mode = ssl.CERT_REQUIRED
    return peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop, ssl=context))  # type: ignore[no-any-return]


def test_client_certificate(peer: LoopThread, pki: dict[str, str]) -> None:
    server = tls_server(peer, pki, client_certs=True)
    url = f"wss://localhost:{server.port}/"
    args = ["connect", url, "--cafile", pki["ca"]]
    result = run(*args, "--cert", pki["client"], "--key", pki["client_key"], stdin=b"hi\n")
    assert result.returncode == 0 and result.stdout == b"hi\n", result.stderr
    assert run(*args, stdin=b"hi\n").returncode != 0  # the server wants a certificate
    peer.call(server.close)


def test_server_name_and_short_insecure(peer: LoopThread, pki: dict[str, str]) -> None:
    server = tls_server(peer, pki, client_certs=False)
    url = f"wss://127.0.0.1:{server.port}/"  # the certificate names localhost only
    result = run("connect", url, "--cafile", pki["ca"], stdin=b"hi\n")
    assert result.returncode == exits.TLS.status and "certificate" in result.stderr.decode()
    result = run("connect", url, "--cafile", pki["ca"], "--server-name", "localhost", stdin=b"hi\n")
    assert result.returncode == 0 and result.stdout == b"hi\n", result.stderr
    result = run("connect", url, "-k", stdin=b"hi\n")
    assert result.returncode == 0 and result.stdout == b"hi\n", result.stderr
    peer.call(server.close)


def test_tls_file_errors_name_the_file(pki: dict[str, str], tmp_path: Path) -> None:
    url = "wss://localhost:1/"
    missing = str(tmp_path / "missing.pem")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases = [
        (["--cert", missing], f"cannot read --cert file {missing!r}"),
        (["--cert", pki["client"], "--key", missing], f"cannot read --key file {missing!r}"),
        (["--cafile", missing], f"cannot read --cafile file {missing!r}"),
        (["--cafile", str(not_pem)], f"--cafile {str(not_pem)!r}"),
        (["--cert", pki["client"]], f"--cert {pki['client']!r}"),  # the key is elsewhere
        (["--key", pki["client_key"]], "--key needs --cert"),
    ]
    for args, words in cases:
        result = run("connect", url, *args)
        assert result.returncode == exits.USAGE.status, (args, result.stderr)
        (line,) = err_lines(result)
        assert words in line, (args, line)


def test_a_refusing_proxy_is_named_as_the_proxy(server: str) -> None:
    stub = Answering(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    proxy = f"127.0.0.1:{stub.port}"
    result = run("connect", "ws://example.test/", "--proxy", f"http://{proxy}")
    assert result.returncode == exits.UNREACHABLE.status
    (line,) = err_lines(result)
    assert f"proxy {proxy} refused CONNECT with 407" in line and "server" not in line
    stub.close()
    closed = free_port()
    result = run("connect", "ws://example.test/", "--proxy", f"http://127.0.0.1:{closed}")
    assert result.returncode == exits.UNREACHABLE.status
    assert f"connect to proxy 127.0.0.1:{closed} failed" in result.stderr.decode()
