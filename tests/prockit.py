"""Helpers for tests that run wsloop's command line as real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

WSLOOP = [sys.executable, "-m", "wsloop"]


class Lines:
    """A stream's lines, read by a thread, waited for with a timeout."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 20) -> str:
        with self.cond:
            found = self.cond.wait_for(
                lambda: next((line for line in self.lines if text in line), None), timeout
            )
        assert found, f"no line with {text!r} within {timeout}s; last lines: {self.lines[-5:]}"
        return found

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.lines)


class Supervised:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        self.out = Lines(proc.stdout)
        self.err = Lines(proc.stderr)
        self.url = self.out.wait_for("ws://")

    def workers(self) -> list[int]:
        pid = self.proc.pid
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]


@contextlib.contextmanager
def supervised(workers: int, *args: str) -> Iterator[Supervised]:
    proc = subprocess.Popen(
        [*WSLOOP, "serve", "--port", "0", "--workers", str(workers), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        sup = Supervised(proc)
        pids = sup.workers()
        assert len(pids) == workers
        yield sup
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in pids:  # a failing test leaves nothing behind either
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still running after ``timeout`` (polled: a process that is
    not our child gives no event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]
