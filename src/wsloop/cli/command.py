"""``wsloop serve --exec 'COMMAND ARGS'``: one process per connection, the
socket's messages on its standard input and its standard output lines as
messages (websocat's ``exec:``, like wscat's ``-x``).

Each text message is written to the command's standard input followed by a
newline, each binary message as its bytes; each line the command writes is
sent as a text message (binary if it is not UTF-8). Standard error is the
server's.

Backpressure both ways, on the loop's fd watches: a command that does not
read its input stops the server reading the client (TCP then slows the
client down), and a client that does not read stops the server reading the
command's output (its pipe fills and its writes block).

The end of either side ends the other: when the command exits (and its
output is sent) the connection closes, 1000 for exit status 0 and 1011
with the status otherwise; when the connection closes the command's
standard input is closed, and a command still running ``GRACE`` seconds
later gets SIGTERM, then SIGKILL. When the server stops, every command
still running gets the same, all at once, before ``wsloop serve`` exits.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from typing import IO

from ..handler import Handler
from ..loops import Handle, Loop
from ..protocol import InvalidStateError
from ..websocket import WebSocket
from .console import err
from .usage import UsageError

__all__ = ["GRACE", "CommandHandler", "parse_command"]

#: Seconds a command gets to exit after its input closes, then after SIGTERM.
GRACE = 2.0
#: Bytes waiting for the command's standard input before the client is paused.
INPUT_LIMIT = 64 * 1024


def parse_command(text: str) -> list[str]:
    """``--exec``'s value as argv (shell-like quoting, no shell); the program
    must exist now, not at the first connection."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--exec {text!r}: {exc}") from None
    if not argv:
        raise UsageError("--exec needs a command, e.g. --exec 'cat -n'")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--exec: command not found: {argv[0]!r}")
    return argv


class Child:
    """One connection's process, and the two pipes between them."""

    def __init__(self, handler: CommandHandler, ws: WebSocket) -> None:
        self.handler = handler
        self.loop = handler.loop
        self.ws = ws
        request = ws.request
        env = dict(os.environ)
        env["WSLOOP_PATH"] = request.path if request is not None else "/"
        env["WSLOOP_REMOTE_ADDR"] = str(ws.remote_address[0]) if ws.remote_address else ""
        self.proc = subprocess.Popen(
            handler.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] | None = self.proc.stdin
        self.stdout: IO[bytes] | None = self.proc.stdout
        os.set_blocking(self.stdin.fileno(), False)
        os.set_blocking(self.stdout.fileno(), False)
        self.pending = bytearray()  # for the command's standard input
        self.partial = bytearray()  # its output since the last newline
        self.writing = False
        self.reading = True
        self.client_paused = False
        self.returncode: int | None = None
        self.timer: Handle | None = None
        self.loop.add_reader(self.stdout, self._readable)
        threading.Thread(target=self._wait, name="wsloop-exec-wait", daemon=True).start()

    # -- client -> command ----------------------------------------------------

    def feed(self, data: str | bytes) -> None:
        if self.stdin is None:
            return  # the command closed its input: nothing more reaches it
        if isinstance(data, str):
            self.pending += data.encode("utf-8")
            if not data.endswith("\n"):
                self.pending += b"\n"
        else:
            self.pending += data
        self._write()

    def _write(self) -> None:
        stdin = self.stdin
        if stdin is None:
            return
        try:
            while self.pending:
                n = os.write(stdin.fileno(), self.pending)
                del self.pending[:n]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the command closed its input or exited
            self.pending.clear()
            self._close_stdin()
            return
        if self.pending and not self.writing:
            self.loop.add_writer(stdin, self._write)
            self.writing = True
        elif not self.pending and self.writing:
            self.loop.remove_writer(stdin)
            self.writing = False
        full = len(self.pending) > INPUT_LIMIT
        if full != self.client_paused:
            self.client_paused = full
            if full:
                self.ws.pause_reading()
            else:
                self.ws.resume_reading()

    def _close_stdin(self) -> None:
        stdin, self.stdin = self.stdin, None
        if stdin is None:
            return
        if self.writing:
            self.loop.remove_writer(stdin)
            self.writing = False
        try:
            stdin.close()
        except OSError:
            pass  # unflushed bytes to a command that is gone
        if self.client_paused:
            self.client_paused = False
            self.ws.resume_reading()

    # -- command -> client ----------------------------------------------------

    def _readable(self) -> None:
        stdout = self.stdout
        if stdout is None:
            return
        try:
            data = os.read(stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self.partial:
                self._send(bytes(self.partial))
                self.partial.clear()
            self._close_stdout()
            self._maybe_finished()
            return
        self.partial += data
        *lines, rest = self.partial.split(b"\n")
        for line in lines:
            self._send(bytes(line))
        self.partial = bytearray(rest)
        if self.ws.buffered_amount > self.ws.options.write_limit:
            self.loop.remove_reader(stdout)
            self.reading = False

    def _send(self, line: bytes) -> None:
        message: str | bytes
        try:
            message = line.decode("utf-8")
        except UnicodeDecodeError:
            message = line
        try:
            self.ws.send(message)
        except InvalidStateError:
            pass  # the client left; the command is being stopped

    def writable(self) -> None:
        """The client's buffer drained: read the command's output again."""
        if not self.reading and self.stdout is not None:
            self.reading = True
            self.loop.add_reader(self.stdout, self._readable)

    def _close_stdout(self) -> None:
        stdout, self.stdout = self.stdout, None
        if stdout is not None:
            if self.reading:
                self.loop.remove_reader(stdout)
                self.reading = False
            stdout.close()

    # -- lifetime -------------------------------------------------------------

    def _wait(self) -> None:
        code = self.proc.wait()
        try:
            self.loop.call_soon_threadsafe(self._exited, code)
        except RuntimeError:
            pass  # the loop is closed: the server has stopped

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        """Close the connection once the command has exited and all its
        output is sent."""
        code = self.returncode
        if code is None or self.stdout is not None:
            return
        self._release()
        if self.ws.state == "open":
            if code == 0:
                self.ws.close(1000, "")
            elif code < 0:
                self.ws.close(1011, f"command killed by signal {-code}")
            else:
                self.ws.close(1011, f"command exited with status {code}")

    def hangup(self) -> None:
        """The connection closed: end the command's input, and stop it if
        it does not exit by itself."""
        self._close_stdin()
        self._close_stdout()  # its output has nowhere to go now
        if self.returncode is None and self.timer is None:
            self.timer = self.loop.call_later(GRACE, self._terminate)
        self._maybe_finished()

    def _terminate(self) -> None:
        self.timer = None
        if self.returncode is None:
            self.proc.terminate()
            self.timer = self.loop.call_later(GRACE, self._kill)

    def _kill(self) -> None:
        self.timer = None
        if self.returncode is None:
            self.proc.kill()

    def _release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._close_stdin()
        self._close_stdout()
        self.handler.children.discard(self)


class CommandHandler(Handler):
    def __init__(self, argv: list[str], loop: Loop) -> None:
        self.argv = argv
        self.loop = loop
        self.children: set[Child] = set()

    def on_open(self, ws: WebSocket) -> None:
        try:
            child = Child(self, ws)
        except OSError as exc:
            err(f"wsloop: cannot run {self.argv[0]!r}: {exc.strerror or exc}")
            ws.close(1011, "cannot run the command")
            return
        self.children.add(child)
        ws.data["child"] = child

    def on_message(self, ws: WebSocket, data: str | bytes) -> None:
        child: Child | None = ws.data.get("child")
        if child is not None:
            child.feed(data)

    def on_writable(self, ws: WebSocket) -> None:
        child: Child | None = ws.data.get("child")
        if child is not None:
            child.writable()

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        child: Child | None = ws.data.get("child")
        if child is not None:
            child.hangup()

    def shutdown(self) -> None:
        """After the loop has stopped: the same steps as after a hang-up, for
        every command still running at once (not one GRACE after another),
        waited for here."""
        children = list(self.children)
        self.children.clear()
        for child in children:
            child._close_stdin()
        running = [child.proc for child in children]
        for step in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
            if step is not None:
                for proc in running:
                    step(proc)
            deadline = time.monotonic() + GRACE
            running = [proc for proc in running if not _exits_by(proc, deadline)]
        for proc in running:
            proc.wait()
        for child in children:
            child._close_stdout()


def _exits_by(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True
