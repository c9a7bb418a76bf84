"""Start and stop a real BIND 9 ``named`` on 127.0.0.1 for integration tests.

Everything lives in one temporary directory (config, zone, pid file, session key, managed
keys); the server listens on free unprivileged ports, is authoritative for a tiny zone with
recursion off (it never talks to the internet), has no rndc control channel (no fixed port
953 to clash over), and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ZONE = "sentinel.test"
RECORDS = {"hive": "127.0.0.10", "hive-a": "127.0.0.11", "hive-b": "127.0.0.12", "ns": "127.0.0.1"}


def named_binary() -> str | None:
    """The named executable, or None when bind9 is not installed."""
    for candidate in ("/usr/sbin/named", shutil.which("named")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (named binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for TCP and UDP on 127.0.0.1")


def _config(workdir: Path, dns_port: int, stats_port: int) -> str:
    return f"""
options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {dns_port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
statistics-channels {{ inet 127.0.0.1 port {stats_port} allow {{ 127.0.0.1; }}; }};
zone "{ZONE}" {{ type primary; file "{workdir}/{ZONE}.zone"; }};
"""


def _zone() -> str:
    lines = ["$TTL 60", f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 60 60 600 60", f"@ IN NS ns.{ZONE}."]
    lines += [f"{name} IN A {addr}" for name, addr in RECORDS.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Bind9:
    workdir: Path
    dns_port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def stats_url(self, fmt: str = "xml") -> str:
        path = "/json/v1/server" if fmt == "json" else "/xml/v3/server"
        return f"http://127.0.0.1:{self.stats_port}{path}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"named.{self.starts}.log"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = named_binary()
        if binary is None:
            raise RuntimeError("bind9 is not installed (no named)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "named.conf").write_text(_config(self.workdir, self.dns_port, self.stats_port))
        (self.workdir / f"{ZONE}.zone").write_text(_zone())
        self.starts += 1
        with self.log_path.open("wb") as log:
            # -g: foreground, log to stderr; -4: IPv4 only.
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own temp paths
                [binary, "-g", "-4", "-c", str(self.workdir / "named.conf")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"named exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.stats_url(), timeout=1) as resp:  # noqa: S310 - loopback http
                    if resp.status == 200 and "running" in self.log_path.read_text():
                        return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"named not ready within {timeout_s} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM by PID (named shuts down cleanly), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def restart(self) -> None:
        self.stop()
        self.start()
