"""Run Autobahn|Testsuite against wsloop, both ways, and print the results.

    python compliance/run.py [--mode both|server|client] [--loop builtin]
                             [--cases all|ci|'1.*,2.*'] [--write-docs] [--check]

``server`` mode runs wstest's fuzzing client against ``wsloop serve`` (an
echo server in a separate process); ``client`` mode runs wstest's fuzzing
server and drives every case with a wsloop client on ``--loop``. Everything
listens on 127.0.0.1. Needs ``compliance/setup`` (Python 2.7 + wstest) first;
``compliance/check`` does both. ``--cases ci`` is the subset CI runs: every
group but the slow permessage-deflate groups 12 and 13, plus a sample of
those. ``--check`` exits 1 unless every case is OK or INFORMATIONAL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WSTEST = HERE / ".venv2" / "bin" / "wstest"
DEFAULT_REPORTS = HERE / "reports"
RESULTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CI_SAMPLE = [
    "12.1.1",
    "12.1.11",
    "12.2.5",
    "12.3.9",
    "12.4.14",
    "12.5.18",
    "13.1.1",
    "13.2.7",
    "13.3.12",
    "13.4.5",
    "13.5.18",
    "13.6.3",
    "13.7.10",
]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def case_lists(which: str) -> tuple[list[str], list[str]]:
    if which == "all":
        return ["*"], []
    if which == "ci":
        groups = [f"{g}.*" for g in range(1, 12)]
        return groups + CI_SAMPLE, []
    return [c.strip() for c in which.split(",") if c.strip()], []


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port that a child process is opening
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def agent_name(loop: str) -> str:
    return f"wsloop-{loop}"


def run_server_mode(
    loop: str, cases: list[str], exclude: list[str], reports: Path
) -> dict[str, Any]:
    """wstest's fuzzing client against a wsloop echo server."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsloop",
            "serve",
            "--port",
            "0",
            "--mode",
            "echo",
            "--loop",
            loop,
            "--max-size",
            str(64 << 20),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        outdir = reports / "servers"
        shutil.rmtree(outdir, ignore_errors=True)
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": agent_name(loop), "url": url.rstrip("/")}],
            "cases": cases,
            "exclude-cases": exclude,
            "exclude-agent-cases": {},
        }
        spec_path = reports / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run(
            [str(WSTEST), "-m", "fuzzingclient", "-s", str(spec_path)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=reports,
        )
        return json.loads((outdir / "index.json").read_text())[agent_name(loop)]
    finally:
        server.terminate()
        server.wait(10)


def run_client_mode(
    loop_name: str, cases: list[str], exclude: list[str], reports: Path
) -> dict[str, Any]:
    """wstest's fuzzing server against wsloop clients on ``loop_name``."""
    import wsloop

    port = free_port()
    outdir = reports / "clients"
    shutil.rmtree(outdir, ignore_errors=True)
    spec = {
        "url": f"ws://127.0.0.1:{port}",
        "outdir": str(outdir),
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    spec_path = reports / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec))
    fuzzer = subprocess.Popen(
        [str(WSTEST), "-m", "fuzzingserver", "-s", str(spec_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=reports,
    )
    try:
        wait_port(port)
        base = f"ws://127.0.0.1:{port}"
        agent = agent_name(loop_name)
        loop = wsloop.get_loop(loop_name)

        def run_one(url: str, echo: bool) -> list[str | bytes]:
            got: list[str | bytes] = []

            def on_message(ws: wsloop.WebSocket, data: str | bytes) -> None:
                got.append(data)
                if echo:
                    ws.send(data)

            client = wsloop.connect(
                url,
                loop=loop,
                on_message=on_message,
                on_state=lambda c, s, d: loop.stop() if s in ("closed", "gave_up") else None,
                max_message_size=64 << 20,
                ping_interval=None,
                close_timeout=5,
            )
            loop.run()
            client.wait_closed(1)
            return got

        count = int(run_one(f"{base}/getCaseCount", echo=False)[0])
        progress = sys.stderr.isatty()
        for i in range(1, count + 1):
            if progress:
                sys.stderr.write(f"\r  client case {i}/{count}")
                sys.stderr.flush()
            run_one(f"{base}/runCase?case={i}&agent={agent}", echo=True)
        if progress:
            sys.stderr.write("\n")
        run_one(f"{base}/updateReports?agent={agent}", echo=False)
        loop.close()
        return json.loads((outdir / "index.json").read_text())[agent]
    finally:
        fuzzer.terminate()
        fuzzer.wait(10)


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(p) for p in case.split("."))


def table(
    results: dict[str, Any],
) -> tuple[list[tuple[str, dict[str, int]]], dict[str, int], list[str]]:
    groups: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    for case in sorted(results, key=case_key):
        behavior = results[case]["behavior"]
        group = case.split(".")[0]
        row = groups.setdefault(group, dict.fromkeys(RESULTS, 0))
        row[behavior if behavior in row else "FAILED"] += 1
        if behavior not in ("OK", "INFORMATIONAL"):
            bad.append(f"{case}: {behavior} (close: {results[case].get('behaviorClose')})")
    totals = dict.fromkeys(RESULTS, 0)
    for row in groups.values():
        for k, v in row.items():
            totals[k] += v
    return sorted(groups.items(), key=lambda kv: int(kv[0])), totals, bad


def render(title: str, results: dict[str, Any]) -> str:
    rows, totals, bad = table(results)
    head = f"{'group':>6} " + " ".join(f"{r:>13}" for r in RESULTS)
    lines = [title, head]
    for group, row in rows:
        lines.append(f"{group:>6} " + " ".join(f"{row[r]:>13}" for r in RESULTS))
    lines.append(f"{'total':>6} " + " ".join(f"{totals[r]:>13}" for r in RESULTS))
    lines.append(f"{sum(totals.values())} cases")
    lines.extend(f"  not OK: {b}" for b in bad)
    return "\n".join(lines)


def write_docs(args: argparse.Namespace, outputs: list[str]) -> None:
    doc = ROOT / "docs" / "conformance.md"
    stamp = time.strftime("%Y-%m-%d")
    body = "\n\n".join(f"```\n{o}\n```" for o in outputs)
    command = f"python compliance/run.py --cases {args.cases} --loop {args.loop} --write-docs"
    if args.append and doc.exists():
        with doc.open("a") as f:
            f.write(f"\nAdded by `{command} --append` on {stamp}:\n\n{body}\n")
        return
    doc.write_text(
        "# Conformance: Autobahn|Testsuite\n\n"
        f"Generated by `{command}` on {stamp} ({os.uname().machine}, "
        f"Python {sys.version.split()[0]}), wstest 25.10.1 (autobahntestsuite) on CPython "
        "2.7.18. OK and INFORMATIONAL are passes; NON-STRICT, UNIMPLEMENTED and FAILED are "
        "not. `compliance/check` runs it; CI runs `--cases ci` (every group but 12 and 13, "
        "plus a sample of those) through `tests/test_compliance.py`.\n\n" + body + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["both", "server", "client"], default="both")
    parser.add_argument("--loop", default="builtin", help="a backend, or several: builtin,libev")
    parser.add_argument(
        "--cases", default="all", help="all, ci, or a comma-separated list such as '1.*,7.1.5'"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every case is OK or INFORMATIONAL"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="write the tables to docs/conformance.md"
    )
    parser.add_argument("--append", action="store_true", help="with --write-docs: add, not replace")
    parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help="where wstest writes")
    args = parser.parse_args()
    reports = args.reports.resolve()
    if not WSTEST.exists():
        print("compliance/run.py: wstest is missing; run compliance/setup first", file=sys.stderr)
        return 2
    reports.mkdir(parents=True, exist_ok=True)
    cases, exclude = case_lists(args.cases)
    outputs = []
    failed = False
    for loop in args.loop.split(","):
        for mode in ["server", "client"] if args.mode == "both" else [args.mode]:
            started = time.monotonic()
            results = (run_server_mode if mode == "server" else run_client_mode)(
                loop, cases, exclude, reports
            )
            took = time.monotonic() - started
            title = f"wsloop as {mode}, {loop} loop, cases {args.cases} ({took:.0f}s)"
            text = render(title, results)
            print(text + "\n", flush=True)
            outputs.append(text)
            failed = failed or bool(table(results)[2])
    if args.write_docs:
        write_docs(args, outputs)
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
