"""What only trio has: wsloop opened inside a trio program's own run, in a
nursery (``open_loop``), next to the program's other tasks; closed again
with nothing of wsloop's left in the run."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

import wsloop
from loopkit import require
from netkit import Echo, LoopThread, Recorder, Ticker, seqs

pytestmark = pytest.mark.usefixtures("_trio")


@pytest.fixture
def _trio() -> None:
    require("trio")


async def primed_waits() -> tuple[int, int]:
    """:func:`waits`, once trio's own run_sync_soon task has been used (it
    starts waiting on its wake-up fd at the first use: trio's, not wsloop's)
    and has settled."""
    import trio
    import trio.testing

    used = trio.Event()
    trio.lowlevel.current_trio_token().run_sync_soon(used.set)
    await used.wait()
    await trio.testing.wait_all_tasks_blocked()
    return waits()


def waits() -> tuple[int, int]:
    """(tasks alive, tasks waiting on an fd) in the current trio run."""
    import trio

    stats = trio.lowlevel.current_statistics()
    io = stats.io_statistics

    return stats.tasks_living, io.tasks_waiting_read + io.tasks_waiting_write


def test_a_trio_program_uses_wsloop_in_a_nursery(peer: LoopThread) -> None:
    """wsloop's callbacks feed a trio channel; the program's own task reads
    it and sends the next message: 20 round trips need both, side by side."""
    import trio
    import trio.testing

    from wsloop.loops.trio import open_loop

    server = peer.call(lambda: wsloop.serve(Echo(), loop=peer.loop))
    result: dict[str, Any] = {}

    async def main() -> None:
        before = await primed_waits()
        trio_thread = threading.get_ident()
        # Callbacks run in the trio thread: trio's sync APIs are allowed there.
        inbox_in, inbox = trio.open_memory_channel[str](100)
        closed = trio.Event()
        rec = Recorder()
        rec.on_each = lambda r, ws, data: inbox_in.send_nowait(str(data))

        async def replier(client: wsloop.Client) -> None:
            for i in range(1, 20):
                echoed = await inbox.receive()
                client.send(f"{echoed}+{i}")
            result["last"] = await inbox.receive()
            client.close()

        async with trio.open_nursery() as app:
            async with open_loop() as loop:
                client = wsloop.connect(server.url, rec, loop=loop, on_open=lambda ws: ws.send("0"))
                client.add_done_callback(closed.set)
                app.start_soon(replier, client)
                with trio.fail_after(10):
                    await closed.wait()
                result["inside"] = waits()
            result["loop"] = loop
        await trio.testing.wait_all_tasks_blocked()
        result["after"] = waits()
        result["before"] = before
        result["threads"] = rec.threads == {trio_thread}
        result["messages"] = rec.messages

    trio.run(main)
    assert len(result["messages"]) == 20
    assert result["last"] == "0" + "".join(f"+{i}" for i in range(1, 20))
    assert result["threads"], "a callback ran outside the trio thread"
    assert result["loop"].closed, "open_loop() closes the adapter it made"
    assert result["inside"][0] > result["before"][0], "wsloop's tasks ran in the nursery"
    assert result["after"] == result["before"], "a wsloop task or fd wait was left behind"
    peer.call(server.close)


def test_close_leaves_the_run_as_found() -> None:
    import trio
    import trio.testing

    from wsloop.loops.trio import open_loop

    a, b = socket.socketpair()
    b.send(b"x")  # readable: a leaked watch would fire
    fired: list[str] = []
    result: dict[str, Any] = {}

    async def main() -> None:
        result["before"] = await primed_waits()
        async with open_loop() as loop:
            loop.add_reader(a, fired.append, "reader")
            loop.add_writer(a, fired.append, "writer")
            loop.call_later(0.001, fired.append, "timer")
            loop.call_later(30, fired.append, "far timer")
            loop.call_soon(fired.append, "soon")
            loop.call_soon_threadsafe(fired.append, "threadsafe")
            loop.close()
            assert not loop.is_running()
            await trio.sleep(0.05)  # the block goes on without wsloop
            await trio.testing.wait_all_tasks_blocked()
            result["inside"] = waits()

    trio.run(main)
    assert fired == []
    assert result["inside"] == result["before"]
    a.close()
    b.close()


def test_work_registered_before_the_block_runs_in_it(peer: LoopThread) -> None:
    """connect() before the trio program even starts, and from a thread."""
    import trio

    from wsloop.loops.trio import TrioLoop, open_loop

    server = peer.call(lambda: wsloop.serve(Ticker(200), loop=peer.loop))
    loop = TrioLoop()
    recs = [Recorder(want=5), Recorder(want=5)]
    clients = [wsloop.connect(server.url, recs[0], loop=loop)]
    t = threading.Thread(
        target=lambda: clients.append(wsloop.connect(server.url, recs[1], loop=loop))
    )
    t.start()
    t.join()

    async def main() -> None:
        async with open_loop(loop):
            with trio.fail_after(10):
                while not all(r.got_all.is_set() for r in recs):
                    await trio.sleep(0.005)
                for c in clients:
                    c.close()
                while not all(c.closed for c in clients):
                    await trio.sleep(0.005)

    trio.run(main)
    assert [seqs(r.messages)[:5] for r in recs] == [[1, 2, 3, 4, 5]] * 2
    assert not loop.closed, "a loop passed in is the caller's to close"
    loop.close()
    peer.call(server.close)


def test_stop_ends_the_block_and_errors_leave_it_unwrapped() -> None:
    import trio

    from wsloop.loops.trio import open_loop

    after: list[str] = []

    async def stopped() -> None:
        async with open_loop() as loop:
            loop.call_later(0.01, loop.stop)
            await trio.sleep_forever()
        after.append("after the block")

    trio.run(stopped)
    assert after == ["after the block"]

    async def failing() -> None:
        async with open_loop():
            raise KeyError("from the block")

    with pytest.raises(KeyError, match="from the block"):
        trio.run(failing)


def test_a_bad_fd_is_reported_not_raised_into_the_run(caplog: pytest.LogCaptureFixture) -> None:
    """Other loops refuse a closed fd in add_reader itself; trio meets it in
    the watch's task, where raising would end the program's nursery."""
    import trio

    from wsloop.loops.trio import open_loop

    a, b = socket.socketpair()
    closed_fd = a.fileno()
    a.close()
    seen: list[BaseException] = []

    async def main() -> None:
        async with open_loop() as loop:
            reported = trio.Event()

            def handler(loop: Any, exc: BaseException, callback: Any) -> None:
                seen.append(exc)
                reported.set()

            loop.exception_handler = handler
            loop.add_reader(closed_fd, lambda: None)
            with trio.fail_after(5):
                await reported.wait()
            loop.remove_reader(closed_fd)

    with caplog.at_level(logging.CRITICAL, logger="wsloop.loops"):
        trio.run(main)
    assert len(seen) == 1 and isinstance(seen[0], OSError)
    b.close()
