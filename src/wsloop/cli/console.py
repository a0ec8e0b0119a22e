"""What the command line prints, shared by its subcommands: messages on
standard output, one-line errors and handshakes on standard error."""

from __future__ import annotations

import base64
import html
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ProxyError
from ..loops import Loop
from ..protocol import HandshakeError
from ..protocol.handshake import Request, Response

__all__ = [
    "BINARY_FORMATS",
    "describe",
    "err",
    "on_signals",
    "out",
    "print_head",
    "print_message",
    "stdin_lines",
    "stdin_whole",
]


def out(line: str) -> None:
    """A line on standard output, in UTF-8 whatever the locale says: a
    message must not fail to print (a text message is always UTF-8)."""
    stream = sys.stdout.buffer
    stream.write((line + "\n").encode("utf-8", "backslashreplace"))
    stream.flush()


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# How a binary message is printed, by --binary-output. Text messages print
# as they are; a binary one starts with "[binary] " so that it cannot be
# taken for text (--json marks it with "binary": true instead), or goes out
# as raw bytes for a pipe or a file.
def _hex(data: bytes) -> bytes:
    return b"[binary] " + data.hex().encode() + b"\n"


def _base64(data: bytes) -> bytes:
    return b"[binary] " + base64.b64encode(data) + b"\n"


def _raw(data: bytes) -> bytes:
    return data


BINARY_FORMATS: dict[str, Callable[[bytes], bytes]] = {
    "hex": _hex,
    "base64": _base64,
    "raw": _raw,
}


# Standard input is read from its file descriptor, not sys.stdin: a daemon
# thread blocked in a buffered read holds the buffer's lock, and Python
# aborts at exit if it finds that lock held.
def _stdin_chunks() -> Iterator[bytes]:
    while True:
        try:
            chunk = os.read(0, 65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def stdin_lines() -> Iterator[bytes]:
    """Standard input's lines, without their line ends; then the rest."""
    partial = b""
    for chunk in _stdin_chunks():
        *lines, partial = (partial + chunk).split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if partial:
        yield partial.rstrip(b"\r")


def stdin_whole() -> Iterator[bytes]:
    """All of standard input, as one chunk."""
    yield b"".join(_stdin_chunks())


def print_message(data: str | bytes, binary_format: str) -> None:
    if isinstance(data, str):
        out(data)
        return
    stream = sys.stdout.buffer
    stream.write(BINARY_FORMATS[binary_format](data))
    stream.flush()


def _body_start(response: Response, limit: int = 100) -> str:
    """The start of an error page as one line: tags dropped, spaces collapsed."""
    text = response.body.decode("utf-8", "replace")
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", text, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, for a person."""
    if isinstance(exc, ProxyError):
        return str(exc.reason)
    if isinstance(exc, HandshakeError):
        response = exc.response
        if response is None or exc.status == 101:
            return str(exc.reason)
        line = f"server refused the WebSocket handshake: HTTP {response.status} {response.reason}"
        body = _body_start(response)
        return f"{line}: {body}" if body else line
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return " ".join(str(exc).split()) or type(exc).__name__


def print_head(mark: str, head: Request | Response) -> None:
    """An HTTP head on standard error, each line after ``mark`` (> or <)."""
    text = head.serialize().decode("latin-1").partition("\r\n\r\n")[0]
    for line in text.split("\r\n"):
        if line:
            err(f"{mark} {line}")


def on_signals(loop: Loop, action: Callable[[], Any]) -> Callable[[], None]:
    """Run ``action`` on the loop for Ctrl-C/SIGTERM; a second Ctrl-C quits.
    Returns the function that undoes this (call it once the loop is closed).

    The handler does not call the loop: Python runs it in the main thread
    between two bytecodes, which may be inside the loop's own code holding
    the lock that ``call_soon_threadsafe`` takes (it would wait for itself).
    It writes a byte to a socket the loop watches instead.
    """
    hits = [0]
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)

    def handler(signum: int, frame: Any) -> None:
        hits[0] += 1
        if hits[0] > 1:
            # Quit now (status 130, as for KeyboardInterrupt). Not by
            # raising: the handler may run inside a native loop's callback
            # (GLib, Qt, Tk), where an exception is printed and that
            # callback's source dropped, and the command would hang.
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(130)
        try:
            wake_w.send(b"\0")
        except OSError:
            pass  # closed: the loop is gone already

    def woken() -> None:
        try:
            wake_r.recv(16)
        except OSError:
            return
        action()

    loop.add_reader(wake_r, woken)
    old_handlers: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            old_handlers[signum] = signal.signal(signum, handler)
        except (OSError, ValueError):  # not the main thread
            pass

    def restore() -> None:
        for signum, old in old_handlers.items():
            signal.signal(signum, old)
        if not loop.closed:
            loop.remove_reader(wake_r)
        wake_r.close()
        wake_w.close()

    return restore
