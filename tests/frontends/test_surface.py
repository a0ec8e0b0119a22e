"""One surface: the callback, asyncio and blocking front-ends name the same
things the same way (issue 16). A name added to one of them and not the
others, or renamed in one, fails here."""

from __future__ import annotations

import inspect

import pytest

import wsloop
import wsloop.aio
import wsloop.sync

CONNECTIONS = [wsloop.WebSocket, wsloop.aio.AioWebSocket, wsloop.sync.SyncWebSocket]
SERVERS = [wsloop.Server, wsloop.aio.AioServer, wsloop.sync.SyncServer]

CONNECTION_NAMES = [
    "state",
    "closed",
    "close_code",
    "close_reason",
    "local_address",
    "remote_address",
    "subprotocol",
    "extensions",
    "request",
    "response",
    "buffered_amount",
    "latency",
    "send",
    "ping",
    "close",
]


@pytest.mark.parametrize("cls", CONNECTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", CONNECTION_NAMES)
def test_every_connection_has_the_same_names(cls: type, name: str) -> None:
    assert hasattr(cls, name), f"{cls.__name__} has no {name}"


# Compiled methods may not expose a signature (coroutines); the pure-Python
# pass of scripts/test checks it.
@pytest.mark.skipif(wsloop.COMPILED, reason="signatures are read from the Python source")
@pytest.mark.parametrize("cls", CONNECTIONS, ids=lambda c: c.__name__)
def test_send_ping_and_close_take_the_same_arguments(cls: type) -> None:
    send = list(inspect.signature(cls.send).parameters)
    assert send[:2] == ["self", "data"] and "compress" in send
    assert list(inspect.signature(cls.ping).parameters)[:2] == ["self", "data"]
    close = inspect.signature(cls.close).parameters
    assert list(close)[:3] == ["self", "code", "reason"]
    assert close["code"].default == 1000 and close["reason"].default == ""


@pytest.mark.parametrize(
    "cls",
    [wsloop.Client, *SERVERS, wsloop.aio.AioWebSocket, wsloop.sync.SyncWebSocket],
    ids=lambda c: c.__name__,
)
def test_clients_servers_and_connections_say_closed_the_same_way(cls: type) -> None:
    # A property, or the data descriptor a compiled class has in its place.
    assert inspect.isdatadescriptor(inspect.getattr_static(cls, "closed"))
    assert callable(cls.wait_closed)
    for old in ("wait", "done"):
        assert not hasattr(cls, old), f"{cls.__name__}.{old}: the name is wait_closed/closed"


@pytest.mark.parametrize("cls", SERVERS, ids=lambda c: c.__name__)
def test_every_server_has_the_same_names(cls: type) -> None:
    for name in ("url", "port", "connections", "broadcast", "close", "closed", "wait_closed"):
        assert hasattr(cls, name), f"{cls.__name__} has no {name}"


def test_connect_and_serve_mean_the_callback_api() -> None:
    assert inspect.signature(wsloop.connect).return_annotation in ("Client", wsloop.Client)
    assert inspect.signature(wsloop.serve).return_annotation in ("Server", wsloop.Server)
    for module in (wsloop, wsloop.aio, wsloop.sync):
        assert {"connect", "serve"} <= set(module.__all__)
