"""The core against the `websockets` library's sans-I/O protocol, both roles."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode as WOpcode
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    Message,
    Opened,
    Ping,
    RequestReceived,
    ServerConnection,
)

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]


def pump_to_ws(
    conn: ClientConnection | ServerConnection, peer: ClientProtocol | ServerProtocol
) -> None:
    data = conn.data_to_send()
    if data:
        peer.receive_data(data)


def pump_from_ws(
    peer: ClientProtocol | ServerProtocol, conn: ClientConnection | ServerConnection
) -> None:
    for chunk in peer.data_to_send():
        if chunk:
            conn.receive_data(chunk)


@pytest.mark.parametrize("compress", [False, True])
def test_wsloop_client_with_websockets_server(compress: bool) -> None:
    client = ClientConnection(
        "ws://localhost/", deflate=DeflateOptions() if compress else None, max_message_size=None
    )
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if compress else None, max_size=None
    )
    pump_to_ws(client, server)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    pump_from_ws(server, client)
    opened = client.next_event()
    assert isinstance(opened, Opened)
    assert bool(opened.extensions) is compress
    for size in SIZES:
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        client.send_binary(payload)
        client.send_text("é" * (size // 2))
        pump_to_ws(client, server)
        frames = server.events_received()
        assert [f.data for f in frames] == [payload, ("é" * (size // 2)).encode()]
        server.send_binary(payload)
        server.send_text(("ü" * (size // 2)).encode())
        pump_from_ws(server, client)
        assert list(client.events()) == [Message(payload), Message("ü" * (size // 2))]
    server.send_ping(b"hb")
    pump_from_ws(server, client)
    assert list(client.events()) == [Ping(b"hb")]
    pump_to_ws(client, server)
    assert [f.opcode for f in server.events_received()] == [WOpcode.PONG]
    client.close(1000, "bye")
    pump_to_ws(client, server)
    pump_from_ws(server, client)
    event = client.next_event()
    assert isinstance(event, Closed) and event.clean and event.code == 1000
    assert server.close_rcvd is not None and server.close_rcvd.code == 1000


@pytest.mark.parametrize("compress", [False, True])
def test_websockets_client_with_wsloop_server(compress: bool) -> None:
    client = ClientProtocol(
        parse_uri("ws://localhost/path"),
        extensions=[ClientPerMessageDeflateFactory()] if compress else None,
        max_size=None,
    )
    server = ServerConnection(deflate=DeflateOptions() if compress else None, max_message_size=None)
    client.send_request(client.connect())
    pump_from_ws(client, server)
    event = server.next_event()
    assert isinstance(event, RequestReceived) and event.request.path == "/path"
    server.accept()
    assert isinstance(server.next_event(), Opened)
    pump_to_ws(server, client)
    client.events_received()
    assert client.state.name == "OPEN"
    for size in SIZES:
        payload = bytes(size)
        client.send_binary(payload)
        client.send_text(("a€" * (size // 4)).encode())
        pump_from_ws(client, server)
        assert list(server.events()) == [Message(payload), Message("a€" * (size // 4))]
        server.send_text("ok" * (size // 2))
        pump_to_ws(server, client)
        assert [f.data for f in client.events_received()] == [("ok" * (size // 2)).encode()]
    client.send_close(1001, "leaving")
    pump_from_ws(client, server)
    event = server.next_event()
    assert isinstance(event, Closed) and (event.code, event.reason) == (1001, "leaving")
    assert server.close_transport
    pump_to_ws(server, client)
    client.events_received()
    assert client.close_rcvd is not None and client.close_rcvd.code == 1001
