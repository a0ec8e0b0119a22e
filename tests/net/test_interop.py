"""wsloop against real peer libraries: websockets and aiohttp, both roles."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest

import wsloop
from netkit import AsyncioThread, Echo, Recorder

MESSAGES: list[str | bytes] = ["hello", b"\x00\x01binary", "é" * 5000, bytes(200_000), ""]


@pytest.fixture
def aio() -> Iterator[AsyncioThread]:
    t = AsyncioThread()
    yield t
    t.close()


async def websockets_echo_server() -> Any:
    import websockets

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    return await websockets.serve(echo, "127.0.0.1", 0, max_size=None)


async def aiohttp_echo_server() -> Any:
    from aiohttp import WSMsgType, web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=0, compress=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner


def _port(server: Any) -> int:
    if hasattr(server, "sockets"):
        return int(next(iter(server.sockets)).getsockname()[1])
    return int(server.addresses[0][1])


@pytest.mark.parametrize("peer_name", ["websockets", "aiohttp"])
@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
def test_wsloop_client_against_peer_server(
    backend, aio: AsyncioThread, peer_name: str, compression: bool
) -> None:  # type: ignore[no-untyped-def]
    server = aio.run(
        websockets_echo_server() if peer_name == "websockets" else aiohttp_echo_server()
    )
    rec = Recorder(want=len(MESSAGES), send=MESSAGES)
    client = wsloop.connect(
        f"ws://127.0.0.1:{_port(server)}/",
        rec,
        loop=backend.loop,
        compression=compression,
        max_message_size=None,
    )
    assert backend.run_until(rec.got_all.is_set, timeout=15), rec.errors
    assert rec.messages == MESSAGES
    assert rec.ws is not None and bool(rec.ws.extensions) is compression
    client.close()
    assert backend.run_until(lambda: client.closed)
    assert rec.closes[0][:1] == (1000,) and rec.closes[0][2]
    if peer_name == "websockets":
        server.close()
        aio.run(server.wait_closed())
    else:
        aio.run(server.cleanup())


async def websockets_client(url: str, compression: bool) -> list[Any]:
    import websockets

    got = []
    async with websockets.connect(
        url, compression="deflate" if compression else None, max_size=None
    ) as ws:
        for m in MESSAGES:
            await ws.send(m)
            got.append(await ws.recv())
        assert bool(ws.protocol.extensions) is compression
    return got


async def aiohttp_client(url: str, compression: bool) -> list[Any]:
    import aiohttp

    got = []
    compress = 15 if compression else 0
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=compress, max_msg_size=0) as ws,
    ):
        for m in MESSAGES:
            if isinstance(m, str):
                await ws.send_str(m)
            else:
                await ws.send_bytes(m)
            got.append((await ws.receive()).data)
        assert bool(ws.compress) is compression
        await ws.close()
    return got


@pytest.mark.parametrize("peer_name", ["websockets", "aiohttp"])
@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
def test_peer_client_against_wsloop_server(
    backend, aio: AsyncioThread, peer_name: str, compression: bool
) -> None:  # type: ignore[no-untyped-def]
    closes: list[tuple[int, bool]] = []
    server = wsloop.serve(
        Echo(),
        loop=backend.loop,
        max_message_size=None,
        on_close=lambda ws, code, reason, clean: closes.append((code, clean)),
    )
    client = websockets_client if peer_name == "websockets" else aiohttp_client
    future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
        client(server.url, compression), aio.loop
    )
    assert backend.run_until(lambda: future.done() and bool(closes), timeout=15)
    assert future.result() == MESSAGES
    assert closes == [(1000, True)]
    server.close()
    assert backend.run_until(lambda: server.closed)
