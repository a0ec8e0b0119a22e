"""The C accelerator's send/recv_into on a socket's fd, which the transport
uses in place of the socket methods: the same results and the same
exceptions, on real TCP sockets on 127.0.0.1."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

import pytest

from wsloop import transport

try:
    from wsloop import _speedups as fast
except ImportError:
    fast = None  # type: ignore[assignment]
pytestmark = pytest.mark.skipif(
    fast is None or not hasattr(fast, "send"), reason="the C accelerator's fd calls are not built"
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    a.setblocking(False)
    b.settimeout(10)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_the_transport_uses_them() -> None:
    assert fast is not None
    assert transport._send is fast.send and transport._recv_into is fast.recv_into


def test_send_and_recv_into(pair: tuple[socket.socket, socket.socket]) -> None:
    assert fast is not None
    a, b = pair
    buffer = memoryview(bytearray(100))
    with pytest.raises(BlockingIOError):
        fast.recv_into(a.fileno(), buffer)
    assert fast.send(a.fileno(), b"hello") == 5
    assert b.recv(100) == b"hello"
    b.sendall(b"world")
    a.settimeout(10)  # blocking until it arrives: recv_into itself never waits
    a.recv(0)
    a.setblocking(False)
    got = fast.recv_into(a.fileno(), buffer)
    assert bytes(buffer[:got]) == b"world"
    b.shutdown(socket.SHUT_WR)
    a.settimeout(10)
    assert a.recv(1) == b""  # end of stream, seen the usual way...
    a.setblocking(False)
    assert fast.recv_into(a.fileno(), buffer) == 0  # ...and by recv_into


def test_a_full_socket_takes_part_then_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    assert fast is not None
    a, _ = pair
    chunk = bytes(1 << 20)  # over the size at which send releases the GIL
    total = 0
    for _ in range(1000):  # bounded: the kernel's buffers are far smaller
        try:
            sent = fast.send(a.fileno(), chunk)
        except BlockingIOError:
            break
        assert 0 < sent <= len(chunk)
        total += sent
    else:
        pytest.fail("the socket never filled up")
    assert total > 0
    with pytest.raises(BlockingIOError):
        fast.send(a.fileno(), b"x")


def test_errors_are_oserrors(pair: tuple[socket.socket, socket.socket]) -> None:
    assert fast is not None
    a, b = pair
    # A reset peer: an error, not a SIGPIPE (which would end the process).
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(100):
            fast.send(a.fileno(), b"x" * 1000)
    with pytest.raises(OSError) as info:
        fast.send(-1, b"x")  # what a closed transport passes
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError):
        fast.recv_into(-1, memoryview(bytearray(1)))


def test_bad_arguments() -> None:
    assert fast is not None
    with pytest.raises(TypeError):
        fast.send("3", b"x")
    with pytest.raises(ValueError, match="int >= -1"):
        fast.send(-5, b"x")
    with pytest.raises(TypeError, match="writable"):
        fast.recv_into(0, b"read-only")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.send(0)  # type: ignore[call-arg]
