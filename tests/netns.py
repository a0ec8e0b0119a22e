"""Simulated hosts for multi-host tests: Linux network namespaces.

``NetHosts(["a", "b", "redis"])`` makes one namespace per host and one more
for a switch (a bridge), links each host to it with a veth pair, and gives
host i the address ``10.99.0.i+1/24`` on its ``eth0`` (its loopback is up
too). Nothing is added to the test machine's own namespace, so the
addresses cannot clash with its networks, and tests running at the same time
each have their own switch. Processes started with :meth:`NetHosts.popen`
run inside a host and are stopped at teardown, before the namespaces are
deleted (which deletes their links). :meth:`NetHosts.netem` adds delay or
loss on a host's link where the kernel has netem.

Needs root and iproute2's ``ip netns``; :func:`require_netns` skips the
test with the reason when namespaces cannot be made (not root, no ``ip``,
or a container without the capability).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

SUBNET = "10.99.0"


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


_checked: list[str] = []  # the reason namespaces cannot be made ("" if they can), once


def netns_unavailable() -> str:
    """Why network namespaces cannot be made here, or "" if they can."""
    if _checked:
        return _checked[0]
    reason = ""
    if os.name != "posix" or not os.path.exists("/proc/self/ns/net"):
        reason = "network namespaces are Linux-only"
    elif os.geteuid() != 0:
        reason = "making network namespaces needs root"
    elif shutil.which("ip") is None:
        reason = "iproute2's ip command is not installed"
    else:
        probe = f"wslprobe{os.getpid()}{secrets.token_hex(3)}"
        try:
            _ip("netns", "add", probe)
        except OSError as exc:
            reason = f"cannot make a network namespace: {exc}"
        else:
            try:
                _ip("-n", probe, "link", "add", "br0", "type", "bridge")
                _ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
            except OSError as exc:
                reason = f"cannot make bridges and veth links: {exc}"
            finally:
                _ip("netns", "delete", probe)
    _checked.append(reason)
    return reason


def require_netns() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"multi-host test skipped: {reason}")


class NetHosts:
    """Hosts (network namespaces) on one switch; a context manager."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if len(set(hosts)) != len(hosts) or not 1 <= len(hosts) <= 250:
            raise ValueError("hosts must be 1 to 250 distinct names")
        prefix = f"wsl{os.getpid()}{secrets.token_hex(3)}"
        self.switch = f"{prefix}-sw"
        #: host name -> namespace name
        self.ns = {host: f"{prefix}-{host}" for host in hosts}
        #: host name -> its address on the switch
        self.addr = {host: f"{SUBNET}.{i + 1}" for i, host in enumerate(hosts)}
        self.procs: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []

    def __enter__(self) -> NetHosts:
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, (host, ns) in enumerate(self.ns.items()):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Both ends made where they live: nothing in the machine's namespace.
            port = f"p{i}"
            _ip(
                "-n",
                self.switch,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``."""
        return ["ip", "netns", "exec", self.ns[host], *argv]

    def run(
        self, host: str, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.command(host, argv), **kwargs)

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host``; stopped at teardown if still running."""
        proc = subprocess.Popen(self.command(host, argv), **kwargs)
        self.procs.append(proc)
        return proc

    def netem(self, host: str, *args: str) -> str:
        """``tc ... netem ARGS`` on ``host``'s link, e.g. ``netem("a", "delay",
        "50ms")``; "" once done, else why it could not be (some kernels have
        no netem: "Specified qdisc kind is unknown")."""
        result = subprocess.run(
            self.command(host, ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *args]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        return "" if result.returncode == 0 else (result.stderr.strip() or "tc failed")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        for ns in reversed(self._made):
            try:
                _ip("netns", "delete", ns)
            except OSError:
                pass
        self._made.clear()


def net_hosts_for(hosts: Sequence[str]) -> Iterator[NetHosts]:
    """For a fixture: skip where namespaces cannot be made, else the hosts,
    deleted after the test."""
    require_netns()
    with NetHosts(hosts) as net:
        yield net
