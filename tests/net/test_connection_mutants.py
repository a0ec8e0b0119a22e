"""Tests written to kill mutants mutmut found surviving in the connection
modules (scripts/mutation connection; docs/testing.md): process_request's
answers at the edges of what it may return, the server's headers on a
hooked accept, and what on_error receives. Builtin loop: none of this
depends on the loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import wsloop
from loopkit import drive, free_native, make_loop
from netkit import Echo, Recorder
from wsloop.loops import Loop


class Backend:
    def __init__(self) -> None:
        self.loop: Loop
        self.loop, self.native = make_loop("builtin", False)

    def run_until(self, done: Any, timeout: float = 10.0) -> bool:
        return drive(self.loop, self.native, "builtin", done, timeout)


@pytest.fixture
def b() -> Iterator[Backend]:
    backend = Backend()
    yield backend
    backend.loop.close()
    free_native("builtin", backend.native)


def refused_with(b: Backend, hook: Any, **options: Any) -> tuple[wsloop.HandshakeError, Any]:
    server = wsloop.serve(Echo(), loop=b.loop, process_request=hook, **options)
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=b.loop, open_timeout=30)
    assert b.run_until(lambda: client.closed, timeout=5)
    server.close()
    assert b.run_until(lambda: server.closed)
    err = rec.errors[0]
    assert isinstance(err, wsloop.HandshakeError), err
    return err, err.response


@pytest.mark.parametrize(("status", "kept"), [(400, True), (599, True), (600, False), (399, False)])
def test_process_request_may_refuse_with_any_4xx_or_5xx_and_nothing_else(
    b: Backend, status: int, kept: bool
) -> None:
    err, response = refused_with(b, lambda ws, req: (status, "why"))
    if kept:
        assert err.status == status and response.body.strip() == b"why"
    else:
        assert err.status == 500 and response.body.strip() == b"internal server error"


def test_a_hooked_accept_carries_the_servers_headers(b: Backend) -> None:
    server = wsloop.serve(
        Echo(), loop=b.loop, process_request=lambda ws, req: None, headers={"X-Server": "w"}
    )
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=b.loop)
    assert b.run_until(rec.opened.is_set)
    assert rec.ws is not None and rec.ws.response is not None
    assert rec.ws.response.headers.get("X-Server") == "w"
    client.close()
    server.close()
    assert b.run_until(lambda: client.closed and server.closed)


def test_a_process_request_that_raises_gets_500_and_on_error_gets_the_connection(
    b: Backend,
) -> None:
    seen: list[Any] = []

    class Handler(Echo):
        def on_error(self, ws: Any, error: BaseException) -> None:
            seen.append((ws, error))

    def hook(ws: wsloop.WebSocket, request: Any) -> None:
        raise RuntimeError("a bug")

    server = wsloop.serve(Handler(), loop=b.loop, process_request=hook)
    rec = Recorder()
    client = wsloop.connect(server.url, rec, loop=b.loop, open_timeout=30)
    assert b.run_until(lambda: client.closed, timeout=5)
    err = rec.errors[0]
    assert isinstance(err, wsloop.HandshakeError) and err.status == 500
    assert err.response is not None and err.response.body.strip() == b"internal server error"
    assert len(seen) == 1 and isinstance(seen[0][0], wsloop.WebSocket)
    assert isinstance(seen[0][1], RuntimeError)
    server.close()
    assert b.run_until(lambda: server.closed)


def test_a_failing_callback_reports_its_connection_and_closes_1011_internal_error(
    b: Backend,
) -> None:
    seen: list[Any] = []

    class Handler(Echo):
        def on_message(self, ws: wsloop.WebSocket, data: Any) -> None:
            raise ValueError("bad message")

        def on_error(self, ws: Any, error: BaseException) -> None:
            seen.append((ws, error))

    server = wsloop.serve(Handler(), loop=b.loop)
    rec = Recorder(send=["hello"])
    client = wsloop.connect(server.url, rec, loop=b.loop)
    assert b.run_until(lambda: client.closed, timeout=10)
    assert rec.closes == [(1011, "internal error", True)]
    assert len(seen) == 1 and isinstance(seen[0][0], wsloop.WebSocket)
    assert isinstance(seen[0][1], ValueError)
    server.close()
    assert b.run_until(lambda: server.closed)
