"""wsloop beside websockets, aiohttp and picows, measured in one run.

    pip install -e ".[bench]"   # wsloop with every backend, and the peers
    python bench/peers.py [--quick] [--json results.json] [--markdown docs/performance.md]

Everything runs on 127.0.0.1, every client and server in its own process:

1. clients: each library's client against one common echo server (picows on
   uvloop, the fastest here, so the client is what is measured): round trips
   per second with one message in flight, and pipelined messages per second
   with 100 in flight (64 MiB at most), at 64 B, 4 KiB, 256 KiB and 16 MiB;
   beside them the copy floor, no library at all: a bare socket echo of the
   same messages, each copied once in user space;
2. servers: each library's echo server against one common client (picows);
3. idle connections: 10,000 connections held open (client in another
   process): server memory per connection, and the time for one 1 KiB
   broadcast to reach all of them.

At the largest size each row also shows what one connection costs: "RSS
+MiB", the process's peak resident set above its resident set at start
(every library already imported), echoing one message at a time; and "CPU
ns/B", the process's CPU time (user and system) per byte of message echoed
with messages pipelined: the copy floor's row is the least an echo can cost.

Prints tables (and writes JSON/Markdown if asked). Each rate is the median
of ``--rounds`` rounds (3 by default), run one library after another so a
slow spell of a shared machine does not land on one row; the JSON keeps
every sample. Compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
WORKER = [sys.executable, str(HERE / "_workers.py")]
SIZES = [64, 4096, 262144, 16 << 20]
#: Large messages in flight at once in the pipelined columns: 100, but no
#: more than 64 MiB (4 of 16 MiB).
PIPE_BYTES = 64 << 20

CLIENTS = [
    ("wsloop asyncio API", "wsloop-aio", "asyncio"),
    ("wsloop asyncio API", "wsloop-aio", "uvloop"),
    ("wsloop asyncio API, handler", "wsloop-aio-cb", "uvloop"),
    ("wsloop callbacks", "wsloop", "builtin"),
    ("wsloop callbacks", "wsloop", "asyncio"),
    ("wsloop callbacks", "wsloop", "uvloop"),
    ("wsloop callbacks", "wsloop", "libev"),
    ("wsloop callbacks", "wsloop", "libuv"),
    ("wsloop callbacks", "wsloop", "glib"),
    ("websockets", "websockets", "uvloop"),
    ("aiohttp", "aiohttp", "uvloop"),
    ("picows", "picows", "uvloop"),
    ("picows, payload as bytes", "picows-bytes", "uvloop"),
    ("copy floor (no library)", "floor", "-"),
]
SERVERS = [
    ("wsloop callbacks", "wsloop", "builtin"),
    ("wsloop callbacks", "wsloop", "asyncio"),
    ("wsloop callbacks", "wsloop", "uvloop"),
    ("wsloop callbacks", "wsloop", "libev"),
    ("wsloop asyncio API", "wsloop-aio", "asyncio"),
    ("wsloop asyncio API", "wsloop-aio", "uvloop"),
    ("wsloop asyncio API, handler", "wsloop-aio-cb", "uvloop"),
    ("websockets", "websockets", "uvloop"),
    ("aiohttp", "aiohttp", "uvloop"),
    ("picows", "picows", "uvloop"),
]


def tls_env(scratch: Path) -> dict[str, str]:
    """The environment of a wss:// run: a throwaway CA (trustme) that every
    client's default context trusts (SSL_CERT_FILE) and the servers' chain
    and key (WSLOOP_BENCH_TLS, read by _workers.server_tls)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_pem = scratch / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca_pem = scratch / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    return {**os.environ, "WSLOOP_BENCH_TLS": str(server_pem), "SSL_CERT_FILE": str(ca_pem)}


def proc_status(pid: int, field: str) -> int:
    """A /proc/PID/status field in bytes (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(
        self, lib: str, loop: str, role: str = "server", env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [*WORKER, role, lib, loop] if role == "server" else [*WORKER, role, lib],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith(("ws://", "wss://")):
            raise RuntimeError(f"{lib} server did not start")

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5), counted from 1 with
    # the pid and the command: here, after the command, at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ClientRun(NamedTuple):
    rate: float  # messages per second
    rss_growth: int  # peak resident set above the one at start, bytes
    cpu: float  # CPU seconds the client process used for the messages


FAILED = ClientRun(float("nan"), 0, float("nan"))


def client_run(
    lib: str,
    loop: str,
    url: str,
    size: int,
    count: int,
    in_flight: int,
    env: dict[str, str] | None = None,
) -> ClientRun:
    """One client process's messages per second, memory and CPU."""
    try:
        out = subprocess.run(
            [*WORKER, "client", lib, loop, url, str(size), str(count), str(in_flight)],
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"\n{lib} client on {loop} ({url}, {size} B) timed out\n")
        return FAILED
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-2000:])
        return FAILED
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return ClientRun(float(got["rate"]), got["peak_rss"] - got["start_rss"], float(got["cpu"]))


def counts(size: int, quick: bool) -> tuple[int, int]:
    base = 3000 if quick else 20000
    # Large messages: fewer, but not so few that the first ones (heap still
    # growing) dominate: 1,250 per 256 KiB sample, about a third of a second;
    # 16 MiB messages: 30 (quick: 10).
    if size > 1 << 20:
        n = 10 if quick else 30
    else:
        n = max(200, base * 16384 // size) if size > 4096 else base
    if COUNT_SCALE != 1.0:
        n = max(2, int(n * COUNT_SCALE))
    return n, n * 3


def in_flight_for(size: int) -> int:
    return max(1, min(100, PIPE_BYTES // size))


#: Seconds a client worker may take before its cell is reported n/a.
CLIENT_TIMEOUT = 600

#: --count-scale: every count multiplied (a smoke run uses 0.01).
COUNT_SCALE = 1.0


def progress(text: str) -> None:
    sys.stderr.write("\r" + text[:100].ljust(100))
    sys.stderr.flush()


def median(samples: list[float]) -> float:
    ordered = sorted(samples)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarise(rows: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell: the median of its rounds; the samples kept beside it."""
    out = []
    for row in rows.values():
        done = dict(row)
        for key, samples in row.items():
            if isinstance(samples, list):
                done[key] = median(samples)
                done[key + "_samples"] = samples
        out.append(done)
    return out


def measure_clients(
    quick: bool, rounds: int, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    server = Server("picows", "uvloop", env=env)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        # Rounds outermost: each library is measured early and late, so a
        # slow spell of a shared machine does not land on one row.
        for r in range(rounds):
            for name, lib, loop in CLIENTS:
                if env is not None and lib == "floor":
                    continue  # the copy floor is clear text
                row = rows.setdefault((name, loop), {"client": name, "loop": loop})
                for size in SIZES:
                    n_rt, n_pipe = counts(size, quick)
                    progress(f"round {r + 1}/{rounds}: client {name} on {loop}, {size} B")
                    for key, in_flight, n in (
                        ("rt", 1, n_rt),
                        ("pipe", in_flight_for(size), n_pipe),
                    ):
                        run = client_run(lib, loop, server.url, size, n, in_flight, env)
                        row.setdefault(f"{key}_{size}", []).append(run.rate)
                        if size == max(SIZES) and key == "rt":
                            # One connection per client process, one message
                            # in flight: its growth is what echoing one
                            # message of the largest size cost it.
                            row["rss_growth"] = max(row.get("rss_growth", 0), run.rss_growth)
                        elif size == max(SIZES):
                            row.setdefault("cpu_per_byte", []).append(run.cpu / (size * n))
    finally:
        server.stop()
    return summarise(rows)


def measure_servers(
    quick: bool, rounds: int, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in range(rounds):
        for name, lib, loop in SERVERS:
            row = rows.setdefault((name, loop), {"server": name, "loop": loop})
            server = Server(lib, loop, env=env)
            start_rss = proc_status(server.proc.pid, "VmRSS")
            try:
                for size in SIZES:
                    n_rt, n_pipe = counts(size, quick)
                    progress(f"round {r + 1}/{rounds}: server {name} on {loop}, {size} B")
                    for key, in_flight, n in (
                        ("rt", 1, n_rt),
                        ("pipe", in_flight_for(size), n_pipe),
                    ):
                        cpu = cpu_seconds(server.proc.pid)
                        rate = client_run(
                            "picows", "uvloop", server.url, size, n, in_flight, env
                        ).rate
                        cpu = cpu_seconds(server.proc.pid) - cpu
                        row.setdefault(f"{key}_{size}", []).append(rate)
                        if size == max(SIZES) and key == "rt":
                            # The cells ran one connection at a time, the
                            # largest size last: the server's growth so far
                            # is what one connection echoing one such
                            # message cost it.
                            peak = proc_status(server.proc.pid, "VmHWM") - start_rss
                            row["rss_growth"] = max(row.get("rss_growth", 0), peak)
                        elif size == max(SIZES):
                            row.setdefault("cpu_per_byte", []).append(cpu / (size * n))
            finally:
                server.stop()
    return summarise(rows)


def measure_idle(n: int) -> list[dict[str, Any]]:
    rows = []
    for name, lib in [
        ("wsloop callbacks (builtin)", "wsloop"),
        ("wsloop asyncio API (uvloop)", "wsloop-aio"),
        ("websockets (uvloop)", "websockets"),
    ]:
        progress(f"{n} idle connections to {name}")
        server = Server(lib, "", role="memserver")
        client = None
        try:
            before = server.ask("rss")["rss"]
            client = subprocess.Popen(
                [*WORKER, "memclient", server.url, str(n)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("the client could not open its connections")
            time.sleep(0.5)  # let the server settle the last handshakes before reading RSS
            after = server.ask("rss")
            t0 = server.ask("broadcast")["t0"]
            t1 = json.loads(client.stdout.readline())["t1"]
            rows.append(
                {
                    "server": name,
                    "connections": after["connections"],
                    "bytes_per_connection": (after["rss"] - before) / n,
                    "broadcast_ms": (t1 - t0) * 1000,
                }
            )
        finally:
            if client is not None:
                client.terminate()
                client.wait(10)
            server.stop()
    return rows


def wsloop_compiled() -> bool:
    """Whether the workers run wsloop's compiled modules (``scripts/compiled
    python bench/peers.py`` runs the compiled wheel; from the editable
    install they are pure Python)."""
    out = subprocess.run(
        [sys.executable, "-c", "import wsloop; print(wsloop.COMPILED)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() == "True"


def fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:,.0f}"


def render(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}", f"versions: {results['versions']}", ""]
    for title, key, who in [
        ("Clients against a picows/uvloop echo server", "clients", "client"),
        ("Servers against a picows/uvloop client", "servers", "server"),
        ("wss:// clients against a picows/uvloop TLS echo server", "tls_clients", "client"),
        ("wss:// servers against a picows/uvloop TLS client", "tls_servers", "server"),
    ]:
        if key not in results:
            continue
        lines.append(
            f"{title} (messages per second, median of {results['rounds']} rounds; "
            "rt = one in flight, pipe = 100 in flight, 4 of 16 MiB)"
        )
        head = (
            f"{who:<28} {'loop':<8}"
            + "".join(f"{'rt ' + str(s):>12}{'pipe ' + str(s):>14}" for s in SIZES)
            + f"{'RSS +MiB':>10}{'CPU ns/B':>10}"  # at the largest size
        )
        lines.append(head)
        for row in results[key]:
            cells = "".join(f"{fmt(row[f'rt_{s}']):>12}{fmt(row[f'pipe_{s}']):>14}" for s in SIZES)
            rss = row.get("rss_growth", 0) / (1 << 20)
            cpu = row.get("cpu_per_byte", float("nan")) * 1e9
            lines.append(f"{row[who]:<28} {row['loop']:<8}{cells}{rss:>10,.0f}{cpu:>10.2f}")
        lines.append("")
    if results.get("idle"):
        lines.append(f"{results['idle'][0]['connections']} idle connections (no compression)")
        lines.append(f"{'server':<30} {'bytes/connection':>18} {'1 KiB broadcast to all (ms)':>30}")
        for row in results["idle"]:
            per_conn = f"{row['bytes_per_connection']:>18,.0f}"
            lines.append(f"{row['server']:<30} {per_conn} {row['broadcast_ms']:>30.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer messages, 1,000 idle connections"
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds per cell, reported as the median (default 3; 1 quick)"
    )
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument(
        "--tls", action="store_true", help="also measure wss:// (certificates from trustme)"
    )
    parser.add_argument("--skip-clear", action="store_true", help="only the wss:// tables")
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=600,
        help="seconds before a client's cell is given up as n/a (default 600)",
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated message sizes in bytes (default: "
        + ",".join(str(s) for s in SIZES)
        + ")",
    )
    parser.add_argument(
        "--count-scale",
        type=float,
        default=1.0,
        help="multiply every message count (0.01: a smoke run on a busy machine)",
    )
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--markdown", help="write the tables to this Markdown file")
    args = parser.parse_args()
    global COUNT_SCALE, CLIENT_TIMEOUT
    COUNT_SCALE = args.count_scale
    CLIENT_TIMEOUT = args.client_timeout
    if args.sizes:
        SIZES[:] = [int(s) for s in args.sizes.split(",")]
    libs = ["wsloop", "websockets", "aiohttp", "picows", "uvloop", "gevent"]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "versions": ", ".join(f"{lib} {version(lib)}" for lib in libs)
        + f" (wsloop {'compiled' if wsloop_compiled() else 'interpreted'})",
        "date": time.strftime("%Y-%m-%d"),
    }
    rounds = args.rounds or (1 if args.quick else 3)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    results["rounds"] = rounds
    if not args.skip_clear:
        results["clients"] = measure_clients(args.quick, rounds)
        results["servers"] = measure_servers(args.quick, rounds)
    if args.tls:
        with tempfile.TemporaryDirectory(prefix="wsloop-bench-tls-") as scratch:
            env = tls_env(Path(scratch))
            results["tls_clients"] = measure_clients(args.quick, rounds, env)
            results["tls_servers"] = measure_servers(args.quick, rounds, env)
    if not args.skip_idle:
        results["idle"] = measure_idle(1000 if args.quick else 10_000)
    sys.stderr.write("\r" + " " * 100 + "\r")
    text = render(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        out = Path(args.markdown)
        # Everything from the page's first section heading on (other
        # benchmarks' tables, the notes) survives a rerun.
        old = out.read_text() if out.exists() else ""
        notes = old[old.index("\n## ") + 1 :] if "\n## " in old else ""
        out.write_text(
            "# Performance\n\n"
            f"Measured on {results['date']} with `python bench/peers.py` (each cell the median\n"
            f"of {results['rounds']} rounds, the rounds interleaved across libraries; a shared\n"
            "2-core machine is noisy: compare rows within the table, not across runs).\n\n"
            "```\n" + text + "\n```\n" + ("\n" + notes if notes else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
