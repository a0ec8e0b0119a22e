"""``wsloop serve --workers N``: N server processes sharing one port.

This process is the supervisor; it serves no connection itself. It reserves
the port (a socket bound with ``SO_REUSEPORT`` but not listening, so it
takes no connection and the port cannot be lost while a worker restarts),
then starts N workers, each ``python -m wsloop ... serve ...`` with the
same arguments and its own loop, binding the port with ``SO_REUSEPORT``:
the kernel spreads new connections over them. It prints the URL once every
worker listens.

- **Stopping.** SIGTERM or Ctrl-C: every worker gets SIGTERM, closes its
  connections with 1001 and aborts the ones still open after
  ``--shutdown-timeout``; a worker still running ``GRACE`` seconds after
  that is killed. A second Ctrl-C kills at once. Workers run in sessions of
  their own, so a terminal's Ctrl-C reaches only the supervisor, which
  stops them in that order.
- **A worker that dies** is reported on standard error and restarted; while
  it keeps dying soon after it starts, each restart waits longer (up to
  ``MAX_BACKOFF``). One that dies before ever listening, at start-up, stops
  them all: its error is on standard error.
- **No orphans.** Each worker watches a pipe whose writing end only the
  supervisor holds: when the supervisor goes, however it goes (kill -9
  too), the pipe reads end-of-file and the worker shuts down as on SIGTERM.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ..server import bind_sockets

__all__ = ["WORKER_HEADER", "Supervisor"]

#: Seconds a worker may take beyond ``--shutdown-timeout`` before it is killed.
GRACE = 2.0
#: Seconds a worker has to start listening.
READY_TIMEOUT = 30.0
#: A worker that dies within this many seconds of starting died "soon".
QUICK_DEATH = 5.0
#: The longest wait before restarting a worker that keeps dying soon.
MAX_BACKOFF = 10.0
#: The handshake response header naming the worker that answered.
WORKER_HEADER = "X-Wsloop-Worker"


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Worker:
    def __init__(self, index: int, proc: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.proc = proc
        self.started = time.monotonic()
        self.ready = False
        self.pending = b""


class Supervisor:
    """Runs ``count`` workers: ``argv`` is the command line as given
    (``[..., "serve", ...]``); each worker runs it again with ``--port``
    and the hidden ``--worker INDEX:FD`` added."""

    def __init__(
        self,
        argv: list[str],
        count: int,
        host: str | None,
        port: int,
        shutdown_timeout: float,
        *,
        out: Callable[[str], None],
        err: Callable[[str], None],
        describe: str,
    ) -> None:
        self.argv = argv
        self.count = count
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.out = out
        self.err = err
        self.describe = describe
        self.workers: dict[int, _Worker] = {}
        self.restarts: dict[int, float] = {}  # worker index -> when to restart it
        self.backoff: dict[int, float] = {}
        self.signals: list[int] = []
        self.phase = "starting"
        self.deadline = time.monotonic() + READY_TIMEOUT
        self.status = 0
        self.selector = selectors.DefaultSelector()
        self.lifeline_r = -1
        self.lifeline_w = -1

    # -- the main loop ------------------------------------------------------------

    def run(self) -> int:
        """Reserve the port (OSError if it cannot be had), start the
        workers, supervise until they are all gone; the exit status."""
        reserved = bind_sockets(self.host, self.port, reuse_port=True, listen=False)
        self.port = int(reserved[0].getsockname()[1])
        self.lifeline_r, self.lifeline_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        }
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            for index in range(1, self.count + 1):
                self._spawn(index)
            while self.workers or self.phase != "stopping":
                self._wait(wake_r)
                self._handle_signals()
                self._reap()
                self._on_time()
            return self.status
        finally:
            for worker in self.workers.values():  # only when something went wrong
                worker.proc.kill()
                worker.proc.wait()
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.selector.close()
            for fd in (wake_r, wake_w, self.lifeline_r, self.lifeline_w):
                os.close(fd)
            for s in reserved:
                s.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)  # handled by the main loop, woken by the wakeup fd

    def _wait(self, wake_r: int) -> None:
        due = min([self.deadline, *self.restarts.values()])
        timeout = None if due == float("inf") else max(0.0, due - time.monotonic())
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._read_worker(key.data)

    # -- workers ----------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        command = [
            sys.executable,
            "-m",
            "wsloop",
            *self.argv,
            "--port",
            str(self.port),
            "--worker",
            f"{index}:{self.lifeline_r}",
        ]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            pass_fds=(self.lifeline_r,),
            start_new_session=True,
        )
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        worker = self.workers[index] = _Worker(index, proc)
        self.selector.register(proc.stdout, selectors.EVENT_READ, worker)

    def _read_worker(self, worker: _Worker) -> None:
        stream = worker.proc.stdout
        assert stream is not None
        try:
            data = os.read(stream.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(stream)
            return
        if worker.ready:
            return  # a worker prints only its URL; anything else is dropped
        worker.pending += data
        if b"\n" in worker.pending:
            worker.ready = True
            self._worker_ready(worker)

    def _worker_ready(self, worker: _Worker) -> None:
        if self.phase == "running":
            self.err(f"wsloop: worker {worker.index} restarted (pid {worker.proc.pid})")
        elif self.phase == "starting" and all(w.ready for w in self.workers.values()):
            self.phase = "running"
            self.deadline = float("inf")
            url = worker.pending.decode(errors="replace").strip()
            self.out(url)
            pids = ", ".join(str(w.proc.pid) for w in self.workers.values())
            self.err(
                f"serving {self.describe} on {url} with {self.count} workers (pids {pids}); "
                "Ctrl-C to stop"
            )

    def _reap(self) -> None:
        for index, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                continue
            self._forget(index)
            self._worker_exited(worker, code)

    def _forget(self, index: int) -> None:
        worker = self.workers.pop(index)
        stream = worker.proc.stdout
        if stream is not None:
            if stream.fileno() in self.selector.get_map():
                self.selector.unregister(stream)
            stream.close()

    def _worker_exited(self, worker: _Worker, code: int) -> None:
        name = f"worker {worker.index} (pid {worker.proc.pid})"
        if self.phase == "stopping":
            if code not in (0, -signal.SIGTERM):
                self.err(f"wsloop: {name} {_exit_status(code)} while stopping")
                self.status = self.status or 1
            return
        if self.phase == "starting":
            self.err(f"wsloop: {name} {_exit_status(code)} before it listened; stopping")
            self.status = code if code > 0 else 1
            self._stop()
            return
        lived = time.monotonic() - worker.started
        if lived < QUICK_DEATH:
            delay = min(MAX_BACKOFF, max(0.25, 2 * self.backoff.get(worker.index, 0.0)))
        else:
            delay = 0.0
        self.backoff[worker.index] = delay
        when = f" in {delay:.2f}s" if delay else ""
        self.err(f"wsloop: {name} {_exit_status(code)}; restarting it{when}")
        self.restarts[worker.index] = time.monotonic() + delay

    def _on_time(self) -> None:
        now = time.monotonic()
        for index, due in list(self.restarts.items()):
            if due <= now and self.phase == "running":
                del self.restarts[index]
                self._spawn(index)
        if now < self.deadline:
            return
        if self.phase == "starting":
            late = [w.index for w in self.workers.values() if not w.ready]
            self.err(f"wsloop: worker(s) {late} did not listen within {READY_TIMEOUT:.0f}s")
            self.status = 1
            self._stop()
        elif self.phase == "stopping":
            self._kill_all(
                f"did not stop within {self.shutdown_timeout + GRACE:.1f}s: killed", status=1
            )

    # -- stopping -------------------------------------------------------------------

    def _handle_signals(self) -> None:
        signals, self.signals = self.signals, []
        for signum in signals:
            if signum == signal.SIGCHLD:
                continue  # _reap looks at every worker
            if self.phase != "stopping":
                self._stop()
            elif signum == signal.SIGINT:
                self._kill_all("killed by a second Ctrl-C", status=130)

    def _stop(self) -> None:
        self.phase = "stopping"
        self.restarts.clear()
        self.deadline = time.monotonic() + self.shutdown_timeout + GRACE
        for worker in self.workers.values():
            try:
                worker.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _kill_all(self, why: str, *, status: int) -> None:
        for index, worker in list(self.workers.items()):
            self.err(f"wsloop: worker {index} (pid {worker.proc.pid}) {why}")
            worker.proc.kill()
            worker.proc.wait()
            self._forget(index)
        self.status = status
        self.deadline = float("inf")
