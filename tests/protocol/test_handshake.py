"""RFC 6455 section 4: the opening handshake, both sides, and its limits."""

from __future__ import annotations

import re

import pytest

from wshelpers import feed, frame
from wsloop.protocol import (
    ClientConnection,
    Closed,
    HandshakeFailed,
    Message,
    Opened,
    RequestReceived,
    ServerConnection,
    State,
    accept_key,
    parse_url,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def http_head(line: str, headers: dict[str, str], over: dict[str, str | None]) -> bytes:
    """An HTTP head: ``headers`` with ``over`` applied (``Sec_WebSocket_Key``
    style names; None removes a header)."""
    headers = dict(headers)
    for k, v in over.items():
        k = k.replace("_", "-")
        if v is None:
            headers.pop(k, None)
        else:
            headers[k] = v
    return (line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def request(**over: str | None) -> bytes:
    headers = {
        "Host": "server.example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    line = over.pop("line", None) or "GET /chat HTTP/1.1"
    return http_head(line, headers, over)


def refused(data: bytes) -> tuple[int, bytes, ServerConnection]:
    server = ServerConnection()
    server.receive_data(data)
    events = list(server.events())
    assert isinstance(events[0], HandshakeFailed), events
    assert server.close_transport
    out = server.data_to_send()
    status = int(out.split(b" ")[1])
    assert status == events[0].error.status
    return status, out, server


def test_rfc_example_accept_key() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_server_accepts_rfc_example() -> None:
    server = ServerConnection()
    events = feed(
        server, request(Origin="http://example.com", Sec_WebSocket_Protocol="chat, superchat")
    )
    assert isinstance(events[0], RequestReceived)
    assert events[0].subprotocols == ["chat", "superchat"]
    assert events[0].request.path == "/chat"
    server.accept("chat")
    assert isinstance(server.next_event(), Opened)
    out = server.data_to_send()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in out
    assert b"Sec-WebSocket-Protocol: chat\r\n" in out
    assert server.subprotocol == "chat" and server.state is State.OPEN


def test_tokens_are_case_insensitive_lists() -> None:
    server = ServerConnection()
    events = feed(server, request(Upgrade="WebSocket", Connection="keep-alive, UPGRADE"))
    assert isinstance(events[0], RequestReceived)


@pytest.mark.parametrize(
    ("over", "status", "header"),
    [
        ({"line": "POST /chat HTTP/1.1"}, 405, b"Allow: GET"),
        ({"line": "GET /chat HTTP/1.0"}, 505, None),
        ({"line": "GARBAGE"}, 400, None),
        ({"Host": None}, 400, None),
        ({"Upgrade": None}, 426, b"Upgrade: websocket"),
        ({"Upgrade": "h2c"}, 426, None),
        ({"Connection": "keep-alive"}, 400, None),
        ({"Sec_WebSocket_Version": "8"}, 426, b"Sec-WebSocket-Version: 13"),
        ({"Sec_WebSocket_Version": None}, 426, b"Sec-WebSocket-Version: 13"),
        ({"Sec_WebSocket_Key": None}, 400, None),
        ({"Sec_WebSocket_Key": "c2hvcnQ="}, 400, None),
        ({"Sec_WebSocket_Key": "not base64 at all!!!!!!="}, 400, None),
        ({"Sec_WebSocket_Extensions": "permessage-deflate; ="}, 400, None),
    ],
)
def test_bad_requests_get_clear_statuses(
    over: dict[str, str | None], status: int, header: bytes | None
) -> None:
    got, out, _ = refused(request(**over))
    assert got == status
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body.strip(), "the response explains itself"
    if header:
        assert header in out


def test_duplicate_host_is_400() -> None:
    """RFC 7230 5.4: more than one Host header is a 400, whichever comes first."""
    data = request().replace(
        b"Host: server.example.com\r\n", b"Host: server.example.com\r\nHost: evil.example\r\n"
    )
    status, out, _ = refused(data)
    assert status == 400 and b"more than one Host" in out


@pytest.mark.parametrize(
    "target",
    [
        "/a\x00b",  # NUL
        "/\x1b[31mred",  # an escape sequence for a log viewer's terminal
        "/caf\u00e9",  # raw non-ASCII (sent as UTF-8)
        "/a\tb",
        "*",  # asterisk-form
        "http://server.example.com/chat",  # absolute-form
        "chat",  # no leading slash
        "/a%zz",  # "%" without two hex digits
        "/a%4",
        "/a#frag",
        "/a?b#frag",
        '/a"b',
        "/a<b>",
        "/a\\b",
        "/a{b}",
        "/a|b",
        "/a^b",
        "/a`b",
        "/a\x7fb",
    ],
)
def test_request_target_must_be_origin_form(target: str) -> None:
    status, out, _ = refused(request(line=f"GET {target} HTTP/1.1"))
    assert status == 400 and b"request target" in out


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "//",
        "/chat?room=1&user=%C3%A9",
        "/a:b@c/!$&'()*+,;=-._~0-9",
        "/p?q=/x?y=:@!$&'()*+,;=",
        "/?",
        "/%2F%2f",
    ],
)
def test_origin_form_targets_are_accepted(target: str) -> None:
    events = feed(ServerConnection(), request(line=f"GET {target} HTTP/1.1"))
    assert isinstance(events[0], RequestReceived) and events[0].request.path == target


@pytest.mark.parametrize("complete", [True, False], ids=["whole-head", "line-unfinished"])
def test_request_target_too_long_is_414(complete: bool) -> None:
    """RFC 7230 3.1.1: a request line too long is 414, not 431 (which is
    for header fields), whether or not the line has ended yet."""
    line = "GET /" + "a" * 10240 + " HTTP/1.1"
    data = request(line=line) if complete else line.encode()[:9000]
    server = ServerConnection()
    server.receive_data(data)
    event = server.next_event()
    assert isinstance(event, HandshakeFailed) and event.error.status == 414
    assert server.data_to_send().startswith(b"HTTP/1.1 414 URI Too Long\r\n")


def test_header_line_too_long_is_431() -> None:
    status, _, _ = refused(request(X_Long="a" * 9000))
    assert status == 431


def test_header_line_too_long_is_refused_before_it_ends() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000)
    event = server.next_event()
    assert isinstance(event, HandshakeFailed) and event.error.status == 431


def test_too_many_headers_is_431() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    server = ServerConnection()
    server.receive_data(data)  # still incomplete: no blank line
    event = server.next_event()
    assert isinstance(event, HandshakeFailed) and event.error.status == 431


def test_endless_head_never_grows_past_the_limit() -> None:
    server = ServerConnection()
    for _ in range(100):
        server.receive_data(b"X-A: " + b"b" * 1000 + b"\r\n")
        if server.closed is not None:
            break
    event = server.next_event()
    assert isinstance(event, HandshakeFailed) and event.error.status == 431


def test_reject_sends_status_and_body() -> None:
    server = ServerConnection()
    feed(server, request())
    server.reject(403, "origin not allowed")
    event = server.next_event()
    assert isinstance(event, HandshakeFailed)
    out = server.data_to_send()
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and out.endswith(b"origin not allowed\n")
    assert server.close_transport


ALLOWED = ["https://app.example", re.compile(r"https://[a-z0-9-]+\.app\.example")]


@pytest.mark.parametrize(
    ("origins", "origin", "status"),
    [
        (None, "https://evil.example", None),  # the default: any Origin
        (None, None, None),
        (ALLOWED, "https://app.example", None),
        (ALLOWED, "https://eu-1.app.example", None),  # the pattern
        (ALLOWED, "https://evil.example", 403),
        (ALLOWED, "https://app.example.evil.example", 403),  # fullmatch, not match
        (ALLOWED, "https://eu.app.example.evil.example", 403),
        (ALLOWED, "http://app.example", 403),
        (ALLOWED, "null", 403),
        (ALLOWED, None, 403),  # no Origin, and None not allowed
        ([*ALLOWED, None], None, None),
        ([*ALLOWED, None], "https://evil.example", 403),
        (ALLOWED, "https://app.example\r\nOrigin: https://app.example", 400),  # two headers
    ],
)
def test_origins_refuse_other_sites_with_403(
    origins: list[str | re.Pattern[str] | None] | None, origin: str | None, status: int | None
) -> None:
    server = ServerConnection(origins=origins)
    events = feed(server, request(Origin=origin))
    if status is None:
        assert isinstance(events[0], RequestReceived), events
        return
    assert isinstance(events[0], HandshakeFailed) and events[0].error.status == status
    assert server.data_to_send().startswith(f"HTTP/1.1 {status} ".encode())


def test_accept_rejects_unoffered_subprotocol() -> None:
    server = ServerConnection()
    feed(server, request(Sec_WebSocket_Protocol="chat"))
    with pytest.raises(ValueError, match="not offered"):
        server.accept("other")


def test_frames_pipelined_after_request_wait_for_accept() -> None:
    server = ServerConnection()
    server.receive_data(request() + frame(1, b"early", mask=True))
    assert isinstance(server.next_event(), RequestReceived)
    assert server.next_event() is None
    server.accept()
    assert isinstance(server.next_event(), Opened)
    assert server.next_event() == Message("early")


# -- client side ------------------------------------------------------------


def client_and_response(**headers: str | None) -> tuple[ClientConnection, bytes]:
    client = ClientConnection(
        "ws://server.example.com:8080/chat?x=1",
        subprotocols=["chat"],
        origin="http://example.com",
        extra_headers=[("X-Token", "t")],
        key=KEY,
    )
    h = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    }
    return client, http_head("HTTP/1.1 101 Switching Protocols", h, headers)


def test_client_request_has_what_rfc_needs() -> None:
    client, _ = client_and_response()
    out = client.data_to_send().decode()
    assert out.startswith("GET /chat?x=1 HTTP/1.1\r\n")
    for line in [
        "Host: server.example.com:8080",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat",
        "X-Token: t",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ]:
        assert line + "\r\n" in out


def test_random_keys_are_16_bytes() -> None:
    import base64

    keys = {ClientConnection("ws://h/").key for _ in range(10)}
    assert len(keys) == 10
    assert all(len(base64.b64decode(k)) == 16 for k in keys)


def test_client_opens_on_valid_response_with_trailing_frame() -> None:
    client, data = client_and_response(Sec_WebSocket_Protocol="chat")
    events = feed(client, data + frame(1, b"hi"))
    assert isinstance(events[0], Opened) and events[0].subprotocol == "chat"
    assert events[1] == Message("hi")


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec_WebSocket_Accept": "wrong"},
        {"Upgrade": None},
        {"Connection": None},
        {"Sec_WebSocket_Protocol": "other"},
        {"Sec_WebSocket_Extensions": "x-unknown"},
        {"Sec_WebSocket_Extensions": "permessage-deflate; bogus=1"},
        {"Sec_WebSocket_Extensions": "permessage-deflate; server_max_window_bits=16"},
    ],
)
def test_client_fails_bad_101(headers: dict[str, str | None]) -> None:
    client, data = client_and_response(**headers)
    events = feed(client, data)
    assert isinstance(events[0], HandshakeFailed) and events[0].error.status == 101
    assert client.close_transport and client.state is State.CLOSED


def test_client_sees_refusal_status_and_body() -> None:
    client = ClientConnection("ws://h/")
    body = b"go away"
    events = feed(client, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\n" + body[:3])
    assert events == []
    events = feed(client, body[3:])
    assert isinstance(events[0], HandshakeFailed)
    err = events[0].error
    assert err.status == 403 and err.response is not None and err.response.body == body
    assert "403" in str(err) and "go away" in str(err)


def test_client_sees_redirect_location() -> None:
    client = ClientConnection("ws://h/")
    events = feed(
        client, b"HTTP/1.1 302 Found\r\nLocation: ws://other/\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(events[0], HandshakeFailed)
    assert events[0].error.response is not None
    assert events[0].error.response.headers["location"] == "ws://other/"


def test_client_eof_during_handshake() -> None:
    client = ClientConnection("ws://h/")
    client.receive_data(b"HTTP/1.1 101 Switch")
    client.receive_eof()
    events = list(client.events())
    assert isinstance(events[0], HandshakeFailed)


def test_client_close_before_open() -> None:
    client = ClientConnection("ws://h/")
    client.close()
    assert isinstance(client.next_event(), Closed)


@pytest.mark.parametrize(
    ("url", "secure", "host", "port", "resource", "host_header"),
    [
        ("ws://example.com", False, "example.com", 80, "/", "example.com"),
        ("wss://example.com/a?b=c", True, "example.com", 443, "/a?b=c", "example.com"),
        ("ws://[::1]:9000/x", False, "::1", 9000, "/x", "[::1]:9000"),
        ("wss://h:443/", True, "h", 443, "/", "h"),
    ],
)
def test_parse_url(
    url: str, secure: bool, host: str, port: int, resource: str, host_header: str
) -> None:
    u = parse_url(url)
    assert (u.secure, u.host, u.port, u.resource, u.host_header) == (
        secure,
        host,
        port,
        resource,
        host_header,
    )


@pytest.mark.parametrize("url", ["http://h/", "ws://", "ws://h/#frag", "ws://h:99999/", "h:80"])
def test_parse_url_errors_say_what_is_wrong(url: str) -> None:
    with pytest.raises(ValueError, match="ws"):
        parse_url(url)


def test_parse_url_type_error() -> None:
    with pytest.raises(TypeError, match="str"):
        parse_url(b"ws://h/")  # type: ignore[arg-type]


def test_userinfo_becomes_basic_auth() -> None:
    client = ClientConnection("ws://user:p%40ss@h/")
    assert b"Authorization: Basic dXNlcjpwQHNz\r\n" in client.data_to_send()
