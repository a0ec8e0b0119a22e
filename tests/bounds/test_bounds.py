"""The resource-bounds suite: each class of attack against a wsloop server
in its own process (bounded_server.py), measuring what it costs the server
(its RSS, sampled from /proc during the attack, against its RSS just before)
and what it costs a well-behaved client meanwhile (a canary doing echo round
trips), with bounds on both.

Every attack runs on the builtin loop; a cheaper subset (the ones that
exercise pausing and resuming reading, and many sockets at once) on every
other loop. Each attack is bounded in bytes, connections and seconds.

The bounds are loose on purpose (the machine is shared): an attack that
works costs the server tens to hundreds of MiB or stalls the canary for
seconds (issue 17's measurements), so 24 MiB and 1 s separate working from
defended without flaking. WSLOOP_BOUNDS_MIB / WSLOOP_BOUNDS_RTT change them.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopkit import backend_params, require
from wsloop.protocol import (
    ClientConnection,
    Closed,
    DeflateOptions,
    Message,
    Opened,
    apply_mask,
)

HERE = Path(__file__).resolve().parent
BOUND_MIB = float(os.environ.get("WSLOOP_BOUNDS_MIB", "24"))
MAX_RTT = float(os.environ.get("WSLOOP_BOUNDS_RTT", "1.0"))
SMALL_BUFFER = 32 * 1024  # a slow reader's kernel buffer


class ServerProcess:
    def __init__(self, loop: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bounded_server.py"), loop],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("port "), f"the server did not start: {line!r}"
        self.port = int(line.split()[1])

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Sampler:
    """The server's peak RSS while an attack runs (sampled every 10 ms)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.before = server.rss_mib()
        self.peak = self.before
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-rss", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.server.rss_mib())

    def finish(self) -> float:
        self.stop.set()
        self.thread.join(5)
        self.peak = max(self.peak, self.server.rss_mib())
        return self.peak - self.before


def handshake(
    port: int, path: str = "/", deflate: bool = False, small: bool = False
) -> tuple[socket.socket, ClientConnection]:
    """A raw client socket, opened with wsloop's sans-I/O core."""
    sock = socket.socket()
    if small:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    proto = ClientConnection(
        f"ws://127.0.0.1:{port}{path}",
        deflate=DeflateOptions() if deflate else None,
        max_message_size=None,
    )
    sock.sendall(proto.data_to_send())
    while True:
        data = sock.recv(65536)
        assert data, "the server closed during the handshake"
        proto.receive_data(data)
        if any(isinstance(e, Opened) for e in proto.events()):
            return sock, proto


def masked(first_byte: int, payload: bytes, declared: int | None = None) -> bytes:
    """A client frame; ``declared`` overrides the length in its header."""
    n = len(payload) if declared is None else declared
    if n < 126:
        head = bytes([first_byte, 0x80 | n])
    elif n < 65536:
        head = bytes([first_byte, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first_byte, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def close_code(sock: socket.socket, proto: ClientConnection, timeout: float = 10) -> int | None:
    """Read until the server's close frame (its code) or EOF (None)."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return None
            proto.receive_data(data)
            for event in proto.events():
                if isinstance(event, Closed):
                    return event.code
    except OSError:
        return None


def send_until_stalled(sock: socket.socket, frames: Iterator[bytes], stall: float = 1.0) -> bool:
    """Send frames until they run out (False) or a write waits ``stall``
    seconds: the server stopped reading (True). A frame cut short by the
    stall is left cut: the connection is closed afterwards."""
    sock.settimeout(stall)
    try:
        for frame in frames:
            sock.sendall(frame)
    except TimeoutError:
        return True
    except OSError:
        return False
    return False


class Canary:
    """A well-behaved client: echo round trips of 64 bytes, every 20 ms,
    from a thread; the slowest one is what the attack cost it."""

    def __init__(self, port: int) -> None:
        self.sock, self.proto = handshake(port, "/echo")
        self.rtts: list[float] = []
        self.failure: str | None = None
        self.stop = threading.Event()
        self.answered = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="test-canary", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        message = os.urandom(64)
        try:
            while not self.stop.wait(0.02) and len(self.rtts) < 5000:
                started = time.monotonic()
                self.sock.sendall(masked(0x82, message))
                got = None
                while got is None:
                    data = self.sock.recv(65536)
                    if not data:
                        self.failure = "the server closed the canary"
                        return
                    self.proto.receive_data(data)
                    for event in self.proto.events():
                        if isinstance(event, Message):
                            got = event.data
                        elif isinstance(event, Closed):
                            self.failure = f"the server closed the canary: {event}"
                            return
                if got != message:
                    self.failure = "the canary's echo was wrong"
                    return
                self.sock.sendall(self.proto.data_to_send())  # pongs to keepalive
                with self.answered:
                    self.rtts.append(time.monotonic() - started)
                    self.answered.notify_all()
        except OSError as exc:
            self.failure = f"canary: {exc!r}"
        finally:
            with self.answered:
                self.answered.notify_all()

    def finish(self) -> float:
        # One more round trip after the attack, however short the attack
        # was: the server still answers a well-behaved client.
        with self.answered:
            wanted = len(self.rtts) + 1
            self.answered.wait_for(
                lambda: len(self.rtts) >= wanted or not self.thread.is_alive(), timeout=10
            )
        self.stop.set()
        self.thread.join(15)
        self.sock.close()
        assert self.failure is None, self.failure
        assert self.rtts, "the canary made no round trip"
        return max(self.rtts)


# -- the attacks: each returns once it is over, asserting the server's answer --


def bomb(port: int) -> None:
    """One compressed message that inflates to 64 MiB (the limit is 1 MiB):
    closed with 1009 without inflating it all."""
    sock, proto = handshake(port, deflate=True)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = z.compress(bytes(64 << 20)) + z.flush(zlib.Z_SYNC_FLUSH)
    sock.sendall(masked(0x80 | 0x40 | 2, data[:-4]))
    assert close_code(sock, proto) == 1009
    sock.close()


def huge_length(port: int) -> None:
    """Frames that declare 2**62 bytes, on 20 connections, then a MiB each:
    each is closed with 1009 from its header, nothing buffered."""
    for _ in range(20):
        sock, proto = handshake(port)
        sock.sendall(masked(0x82, b"", declared=1 << 62)[:14])
        send_until_stalled(sock, iter([bytes(1 << 20)]))
        assert close_code(sock, proto) == 1009
        sock.close()


def _until_all_dropped(socks: list[socket.socket], trickle: bytes | None, seconds: float) -> int:
    """Wait for the server to drop each socket (EOF or reset), sending
    ``trickle`` one byte at a time meanwhile; the number left open."""
    open_socks = {s.fileno(): s for s in socks}
    sent = dict.fromkeys(open_socks, 0)
    deadline = time.monotonic() + seconds
    while open_socks and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_socks.values()), [], [], 0.05)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                del open_socks[s.fileno()]
        if trickle is not None:
            for fd, s in list(open_socks.items()):
                try:
                    s.send(trickle[sent[fd] % len(trickle) : sent[fd] % len(trickle) + 1])
                    sent[fd] += 1
                except OSError:
                    del open_socks[fd]
    for s in socks:
        s.close()
    return len(open_socks)


def slow_loris(port: int) -> None:
    """40 clients sending their handshake a byte at a time, forever: all
    dropped at handshake_timeout (1 s here)."""
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nX-Padding: " + b"a" * 4000
    )
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    assert _until_all_dropped(socks, request, seconds=8) == 0


def idle_flood(port: int) -> None:
    """300 connections that never send a byte: all dropped at
    handshake_timeout."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
    assert _until_all_dropped(socks, None, seconds=8) == 0


def non_reading(port: int) -> None:
    """A client that sends 256 MiB to the echo and reads nothing: the
    server stops reading it (its buffer over write_limit), so its writes
    stall long before (tests/net/test_server_features.py checks it is
    served again once it reads)."""
    sock, _proto = handshake(port, "/echo", small=True)
    frame = masked(0x82, bytes(64 * 1024))
    assert send_until_stalled(sock, (frame for _ in range(4096)))
    sock.close()


def slow_broadcast_clients(port: int) -> None:
    """20 clients of the 16 KiB / 5 ms broadcast that read nothing, for 2 s
    (128 MiB the server would otherwise hold for them): skipped, not
    buffered for. A reading client of the feed keeps getting it."""
    slow = [handshake(port, "/feed", small=True)[0] for _ in range(20)]
    reader, proto = handshake(port, "/feed")
    got = 0
    deadline = time.monotonic() + 2.0
    reader.settimeout(2)
    while time.monotonic() < deadline:
        data = reader.recv(1 << 20)
        assert data
        proto.receive_data(data)
        got += sum(isinstance(e, Message) for e in proto.events())
    assert got >= 20, got  # the feed kept coming to the one that reads
    for s in [*slow, reader]:
        s.close()


def ping_flood(port: int) -> None:
    """32 MiB of pings with the largest payload from a client that reads
    nothing. The server answers only the latest past a few pongs unsent,
    and stops reading the client once unread pongs fill its buffer (the
    kernel's buffers here absorb what 32 MiB of pings earn, so the server
    may read it all: either way it holds little;
    tests/net/test_pong_backpressure.py shows the hold on a slow link)."""
    sock, _proto = handshake(port, small=True)
    ping = masked(0x89, b"p" * 125)
    chunk = ping * (65536 // len(ping))
    send_until_stalled(sock, (chunk for _ in range(512)), stall=2.0)
    sock.close()


def fragment_flood(port: int) -> None:
    """Issue 17, defect 3: on 4 connections, an unfinished 1 MiB message
    in 1-byte fragments (the size limit allows it): the server must hold
    about the message, not an object per fragment."""
    socks = []
    frames = [masked(0x02, b"x")] + [masked(0x00, b"x") for _ in range(4095)]
    block = b"".join(frames[1:])
    for _ in range(4):
        sock, _proto = handshake(port)
        sock.sendall(frames[0])
        send_until_stalled(sock, (block for _ in range(256)), stall=2)
        socks.append(sock)
    for s in socks:
        s.close()


ATTACKS: dict[str, Callable[[int], None]] = {
    "bomb": bomb,
    "huge_length": huge_length,
    "slow_loris": slow_loris,
    "idle_flood": idle_flood,
    "non_reading": non_reading,
    "slow_broadcast_clients": slow_broadcast_clients,
    "ping_flood": ping_flood,
    "fragment_flood": fragment_flood,
}
#: On the loops other than builtin: pausing and resuming reading, many sockets.
SUBSET = ("non_reading", "ping_flood", "idle_flood")


def cases() -> list[object]:
    out: list[object] = []
    for loop in backend_params():
        for name in ATTACKS if loop == "builtin" else SUBSET:
            out.append(pytest.param(loop, name, id=f"{loop}-{name}"))
    return out


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    """One server process per loop, shared by that loop's attacks."""
    started: dict[str, ServerProcess] = {}
    yield started
    for server in started.values():
        server.close()


@pytest.mark.parametrize(("loop", "attack"), cases())
def test_an_attack_costs_the_server_little_and_the_canary_nothing(
    servers: dict[str, ServerProcess], loop: str, attack: str
) -> None:
    require(loop)
    if loop not in servers:
        servers[loop] = ServerProcess(loop)
    server = servers[loop]
    assert server.proc.poll() is None, "the server process died"
    canary = Canary(server.port)
    sampler = Sampler(server)
    started = time.monotonic()
    try:
        ATTACKS[attack](server.port)
    finally:
        grew = sampler.finish()
        slowest = canary.finish()
    took = time.monotonic() - started
    assert server.proc.poll() is None, "the attack killed the server"
    assert grew <= BOUND_MIB, f"{attack}: the server grew by {grew:.1f} MiB"
    assert slowest <= MAX_RTT, f"{attack}: a canary round trip took {slowest:.3f}s"
    # For the report, with -s: what each attack cost.
    print(f"\n{loop}/{attack}: +{grew:.1f} MiB, canary max {slowest * 1000:.0f} ms, {took:.1f}s")
