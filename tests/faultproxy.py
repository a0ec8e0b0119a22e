"""A TCP proxy on 127.0.0.1 that makes network faults on real sockets:
delay, fragmentation into 1-byte writes, stalls and resets. Each accepted
connection is forwarded to ``target`` by two threads (one per direction)
that apply the proxy's current settings to every chunk they carry.
"""

from __future__ import annotations

import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        #: Seconds each chunk waits before it is forwarded (each direction).
        self.delay = 0.0
        #: Forward one byte per write (and per TCP segment: TCP_NODELAY).
        self.fragment = False
        self._flowing = threading.Event()  # cleared: stalled
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        threading.Thread(target=self._accept, name="test-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stall(self) -> None:
        """Stop forwarding (both ways, every connection) until :meth:`flow`;
        the sockets stay open: a frozen peer, or a cable pulled."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        """Reset every connection now (RST to both ends, no FIN)."""
        with self._lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                _abort(sock)

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self.listener.close()
        self.reset()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _abort(client)
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.pairs.append((client, server))
                self.accepted += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pipe, args=(src, dst), name="test-proxy-pipe", daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                # The fault itself, not synchronisation: the network is slow
                # (delay) or frozen (stall) for as long as the test says.
                if self.delay:
                    self._closed.wait(self.delay)
                self._flowing.wait()
                if self._closed.is_set():
                    return
                if self.fragment:
                    for i in range(len(data)):
                        dst.sendall(data[i : i + 1])
                else:
                    dst.sendall(data)
        except OSError:
            _abort(dst)


def _abort(sock: socket.socket) -> None:
    """Reset: linger 0 makes close send RST; shutting the reading side
    first wakes the proxy's thread blocked in recv on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
