"""Which failures the Reconnect policy retries (issue 21): network errors,
timeouts, 429 and 5xx are retried, honouring Retry-After; other statuses,
a plain HTTP 200 and a certificate that does not verify stop at once; and
``retry_on`` changes the rule. The same rule for the asyncio front-end."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

import wsloop
import wsloop.aio
from netkit import Answering, Echo, Recorder, free_port, tls_contexts
from wsloop.options import retry_after, retryable


def status(code: int, reason: str, *headers: str, body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {code} {reason}", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def connect_until_done(backend: Any, url: str, **kwargs: Any) -> tuple[wsloop.Client, Recorder]:
    rec = Recorder()
    client = wsloop.connect(url, rec, loop=backend.loop, **kwargs)
    assert backend.run_until(lambda: client.closed, timeout=10), rec.states
    return client, rec


FAST = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": 0}


@pytest.mark.parametrize(
    "response",
    [
        status(403, "Forbidden", body=b"no"),
        status(404, "Not Found"),
        status(200, "OK", "Content-Type: text/html", body=b"<html>a web page</html>"),
    ],
    ids=["403", "404", "plain-200"],
)
def test_a_refusal_that_cannot_change_is_not_retried(backend, response: bytes) -> None:  # type: ignore[no-untyped-def]
    stub = Answering(response)
    client, rec = connect_until_done(
        backend, stub.url, reconnect=wsloop.Reconnect(**FAST, max_attempts=5)
    )
    assert client.state == "gave_up" and stub.hits == 1
    _, detail = rec.states[-1]
    assert detail["retryable"] is False and isinstance(detail["error"], wsloop.HandshakeError)
    stub.close()


def test_5xx_and_refused_ports_are_retried_until_max_attempts(backend) -> None:  # type: ignore[no-untyped-def]
    stub = Answering(status(502, "Bad Gateway"))
    client, rec = connect_until_done(
        backend, stub.url, reconnect=wsloop.Reconnect(**FAST, max_attempts=3)
    )
    assert client.state == "gave_up" and stub.hits == 3
    assert rec.states[-1][1]["retryable"] is True
    stub.close()
    client, rec = connect_until_done(
        backend,
        f"ws://127.0.0.1:{free_port()}/",
        reconnect=wsloop.Reconnect(**FAST, max_attempts=2),
    )
    assert [s for s, _ in rec.states].count("connecting") == 2


def test_429_waits_as_long_as_retry_after_says(backend) -> None:  # type: ignore[no-untyped-def]
    stub = Answering(status(429, "Too Many Requests", "Retry-After: 7"))
    rec = Recorder()
    client = wsloop.connect(stub.url, rec, loop=backend.loop, reconnect=wsloop.Reconnect(**FAST))
    assert backend.run_until(lambda: client.state == "waiting")
    # The backoff alone would wait 0.01 s; the server asked for 7.
    assert rec.states[-1][1]["delay"] == 7.0
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert stub.hits == 1
    stub.close()


def test_a_certificate_that_does_not_verify_is_not_retried(backend) -> None:  # type: ignore[no-untyped-def]
    server_ctx, _ = tls_contexts()
    server = wsloop.serve(Echo(), loop=backend.loop, ssl=server_ctx)
    url = server.url.replace("127.0.0.1", "localhost")
    client, rec = connect_until_done(
        backend, url, reconnect=wsloop.Reconnect(**FAST, max_attempts=5)
    )
    assert client.state == "gave_up" and client.attempts == 1
    assert isinstance(rec.states[-1][1]["error"], ssl.SSLCertVerificationError)
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_retry_on_changes_the_rule(backend) -> None:  # type: ignore[no-untyped-def]
    stub = Answering(status(403, "Forbidden"))
    seen: list[BaseException] = []

    def everything(error: BaseException) -> bool:
        seen.append(error)
        return True

    policy = wsloop.Reconnect(**FAST, max_attempts=3, retry_on=everything)
    connect_until_done(backend, stub.url, reconnect=policy)
    assert stub.hits == 3 and len(seen) == 2
    assert all(isinstance(e, wsloop.HandshakeError) and e.status == 403 for e in seen)
    stub.close()


def test_retry_on_must_be_a_function() -> None:
    with pytest.raises(TypeError, match="retry_on must be a function"):
        wsloop.Reconnect(retry_on=True)  # type: ignore[arg-type]


def test_the_rule() -> None:
    def refused(code: int) -> wsloop.HandshakeError:
        return wsloop.HandshakeError(code, "x")

    assert all(retryable(refused(c)) for c in (0, 429, 500, 502, 503))
    assert not any(retryable(refused(c)) for c in (101, 200, 301, 400, 401, 403, 404))
    assert retryable(ConnectionRefusedError()) and retryable(TimeoutError())
    assert retryable(ssl.SSLEOFError()) and not retryable(ssl.SSLCertVerificationError())
    assert retryable(wsloop.ConnectionClosed(1006, "", False))
    assert not retryable(ValueError("refusing a redirect from wss:// to insecure ws://"))
    assert retry_after(ConnectionRefusedError()) is None


def test_retry_after_as_seconds_or_an_http_date() -> None:
    import email.utils
    import time

    from wsloop.protocol.handshake import Headers, Response

    def refused(value: str) -> wsloop.HandshakeError:
        response = Response(503, "Service Unavailable", Headers([("Retry-After", value)]))
        return wsloop.HandshakeError(503, "x", response=response)

    assert retry_after(refused("120")) == 120.0
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 < (retry_after(refused(when)) or 0) <= 60
    assert retry_after(refused("soon")) is None
    policy = wsloop.Reconnect(initial_delay=1, jitter=0)
    assert policy.delay_after(refused("120"), 1, 0.5) == 120.0
    assert policy.delay_after(refused("0"), 1, 0.5) == 1.0


def test_aio_reconnecting_iteration_stops_on_a_refusal() -> None:
    stub = Answering(status(401, "Unauthorized"))

    async def main() -> None:
        policy = wsloop.Reconnect(**FAST, max_attempts=5)
        with pytest.raises(wsloop.HandshakeError) as info:
            async for _ws in wsloop.aio.connect(stub.url, reconnect=policy):
                pass
        assert info.value.status == 401

    asyncio.run(main())
    assert stub.hits == 1
    stub.close()


class ClosesAtOnce(wsloop.Handler):
    """Accepts, then closes with ``code``: each connection opens and ends."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.opened = 0

    def on_open(self, ws: wsloop.WebSocket) -> None:
        self.opened += 1
        ws.close(self.code, "go away")


def no_policy_violations(error: BaseException) -> bool:
    return not (isinstance(error, wsloop.ConnectionClosed) and error.code == 1008)


def test_retry_on_sees_how_an_open_connection_ended(backend) -> None:  # type: ignore[no-untyped-def]
    """An opened connection that closes is retried by default; retry_on gets
    its ConnectionClosed (code, reason) and can stop there."""
    handler = ClosesAtOnce(1008)
    server = wsloop.serve(handler, loop=backend.loop)
    seen: list[BaseException] = []

    def rule(error: BaseException) -> bool:
        seen.append(error)
        return no_policy_violations(error)

    client, rec = connect_until_done(
        backend, server.url, reconnect=wsloop.Reconnect(**FAST, max_attempts=5, retry_on=rule)
    )
    assert client.state == "gave_up" and handler.opened == 1
    (error,) = seen
    assert isinstance(error, wsloop.ConnectionClosedError)
    assert (error.code, error.reason, error.clean) == (1008, "go away", True)
    assert rec.states[-1][1]["retryable"] is False
    server.close()
    assert backend.run_until(lambda: server.closed)


def test_aio_reconnecting_iteration_ends_when_retry_on_says_so(peer) -> None:  # type: ignore[no-untyped-def]
    handler = ClosesAtOnce(1008)
    server = peer.call(lambda: wsloop.serve(handler, loop=peer.loop))

    async def main() -> int:
        policy = wsloop.Reconnect(**FAST, max_attempts=5, retry_on=no_policy_violations)
        rounds = 0
        async for ws in wsloop.aio.connect(server.url, reconnect=policy):
            rounds += 1
            with pytest.raises(wsloop.ConnectionClosed):
                await ws.recv()
        return rounds

    assert asyncio.run(asyncio.wait_for(main(), 10)) == 1
    assert handler.opened == 1
    peer.call(server.close)


def test_max_attempts_counts_failed_attempts_not_dropped_connections(backend, peer) -> None:  # type: ignore[no-untyped-def]
    """max_attempts=1: a connection that opens and then drops is reconnected
    (only a failed attempt counts), by the callback client as by wsloop.aio."""
    handler = ClosesAtOnce(1011)
    server = peer.call(lambda: wsloop.serve(handler, loop=peer.loop))
    policy = wsloop.Reconnect(**FAST, max_attempts=1)
    client = wsloop.connect(server.url, loop=backend.loop, reconnect=policy)
    assert backend.run_until(lambda: handler.opened >= 3 or client.closed), client.state
    assert handler.opened >= 3, client.state
    client.close()
    assert backend.run_until(lambda: client.closed)
    peer.call(server.close)


def test_aio_max_attempts_counts_failed_attempts_not_dropped_connections(peer) -> None:  # type: ignore[no-untyped-def]
    handler = ClosesAtOnce(1011)
    server = peer.call(lambda: wsloop.serve(handler, loop=peer.loop))
    policy = wsloop.Reconnect(**FAST, max_attempts=1)

    async def rounds() -> int:
        n = 0
        async for ws in wsloop.aio.connect(server.url, reconnect=policy):
            n += 1
            with pytest.raises(wsloop.ConnectionClosed):
                await ws.recv()
            if n == 3:
                break
        return n

    assert asyncio.run(asyncio.wait_for(rounds(), 10)) == 3
    peer.call(server.close)
