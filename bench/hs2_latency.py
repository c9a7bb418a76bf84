"""HiveServer2 check latency vs beeline, and time to verdict on a frozen server, on a real server.

Why these numbers: the system sentinel replaces ran ``beeline`` from Nagios and hung for
minutes on a stuck server until the Lambda timed out. So the claims to back are (1) the
in-process check is much cheaper than a beeline run against the same server, and (2) against
a frozen server the verdict comes within the configured ``timeout_s`` (ratio to timeout ≤ 1.05),
not "eventually".

One run, one real server (pyspark's Spark Thrift Server with SSL + CUSTOM auth, started and
stopped here by ``tests/integration/realhs2/server.py``):

1. the check in-process (connect + TLS + SASL + session + ``SHOW DATABASES`` + close), ~20 runs;
2. ``bin/beeline -u jdbc:hive2://…;ssl=true;sslTrustStore=… -e 'SHOW DATABASES'``, ~5 runs;
3. the check against the SIGSTOPped JVM with ``timeout_s`` 3 and 5: wall time / timeout_s;
4. for contrast, beeline against the frozen server, cut off at ``BEELINE_FROZEN_CAP_S``;
5. the production topology's two hops: the check through a TLS-terminating load-balancer
   stand-in (``monitor.sandbox.elb.TlsTerminatingProxy``: TLS with its own certificate, then
   re-encrypted TLS to the server) vs the same check direct, alternated run by run in the
   same process: the ratio says what the extra hop costs a verdict (loopback, so it is the
   proxy's TLS work, not network latency).

Run: ``.venv/bin/python -m bench.hs2_latency`` (or ``python bench/hs2_latency.py``); needs
``pip install -r requirements-integration.txt`` and Java 17. Bounded: ~1–2 minutes.
Writes ``bench/results/hs2_latency.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import summary, table, write
from checks.base import CheckContext, CheckResult, Deadline, Status
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config
from monitor.config import ClusterRef
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.memory import MemoryStateStore
from monitor.sandbox.certs import make_certs
from monitor.sandbox.elb import TlsTerminatingProxy
from tests.integration.realhs2.server import RealHiveServer2, ServerUnavailable

IN_PROCESS_RUNS = 20
TWO_HOP_RUNS = 20  # each: one direct, one through the proxy
ELB_NAME = "hive.internal.example.com"
BEELINE_RUNS = 5
FROZEN_TIMEOUTS_S = (3.0, 5.0)
FROZEN_RUNS = 2
BEELINE_TIMEOUT_S = 90.0
BEELINE_FROZEN_CAP_S = 15.0
GOAL_RATIO = 1.05
PASSWORD_ENV = "SENTINEL_BENCH_HIVE_PASSWORD"  # the variable holding the password, not the password


class _NoClients:
    """The env secret provider needs no AWS client; anything else would be a bug here."""

    def client(self, service: str, region: str | None = None) -> Any:
        raise RuntimeError(f"unexpected AWS client {service}")

    def resource(self, service: str, region: str | None = None) -> Any:
        raise RuntimeError(f"unexpected AWS resource {service}")


def make_check(server: RealHiveServer2, timeout_s: float) -> HiveServer2Check:
    return HiveServer2Check(HiveServer2Config.model_validate({
        "type": "hiveserver2", "name": "hive", "host": server.host, "port": server.port, "query": "SHOW DATABASES",
        "tls": {"verify": True, "ca_file": server.ca_pem}, "auth": "CUSTOM",
        "credentials": {"provider": "env", "username": server.username, "key": PASSWORD_ENV},
        "timeout_s": timeout_s, "attempts": 1,
    }))


def make_elb_check(ca_file: str, timeout_s: float) -> HiveServer2Check:
    return HiveServer2Check(HiveServer2Config.model_validate({
        "type": "hiveserver2", "name": "hive-via-elb", "host": ELB_NAME, "port": 443, "query": "SHOW DATABASES",
        "tls": {"verify": True, "ca_file": ca_file}, "auth": "CUSTOM",
        "credentials": {"provider": "env", "username": os.environ.get("SENTINEL_BENCH_HIVE_USER", "rcapp"),
                        "key": PASSWORD_ENV},
        "timeout_s": timeout_s, "attempts": 1,
    }))


def run_check(check: HiveServer2Check, aliases: dict[str, str] | None = None) -> tuple[CheckResult, float]:
    clients = _NoClients()
    ctx = CheckContext(target="bench", cluster=ClusterRef(name="RC.HIVE"), clients=clients,
                       secrets=SecretResolver(clients), resolver=HostResolver(aliases or {}), store=MemoryStateStore(),
                       clock=SystemClock(), deadline=Deadline.after(60))
    started = time.perf_counter()
    result = check.run(ctx)
    return result, time.perf_counter() - started


def beeline(server: RealHiveServer2, conf_dir: Path, timeout_s: float) -> tuple[float, int | None, str]:
    """One beeline run, as a Nagios plugin would do it: wall time, exit code (None: cut off), output tail."""
    url = (f"jdbc:hive2://{server.host}:{server.port}/default;ssl=true;"
           f"sslTrustStore={server.truststore};trustStorePassword={server.truststore_password}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "HIVE_", "PYSPARK_"))}
    env.update(SPARK_HOME=str(server.dist.home), SPARK_CONF_DIR=str(conf_dir))
    argv = [str(server.dist.beeline), "-u", url, "-n", server.username, "-p", server.password,
            "--silent=true", "-e", "SHOW DATABASES"]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, cwd=conf_dir)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        code = None
    return time.perf_counter() - started, code, out.decode(errors="replace")[-600:]


def main() -> int:
    logging.getLogger("thrift").setLevel(logging.CRITICAL)  # thrift logs every failed connect to stderr
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-hs2-"))
    server = RealHiveServer2(workdir / "server")
    try:
        try:
            startup = server.start()
        except ServerUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
        os.environ[PASSWORD_ENV] = server.password
        print(f"server up in {startup:.1f} s (pid {server.pid}, RSS {server.rss_mb() or 0:.0f} MB)")
        beeline_conf = workdir / "beeline-conf"
        beeline_conf.mkdir()

        # 1. in-process check
        check = make_check(server, timeout_s=10.0)
        run_check(check)  # warm-up: imports, first TLS context
        in_proc = []
        for _ in range(IN_PROCESS_RUNS):
            result, took = run_check(check)
            if result.status is not Status.OK:
                raise RuntimeError(f"check not OK against a healthy server: {result.summary}")
            in_proc.append(took)

        # 5. two hops (through a TLS-terminating load balancer) vs direct, alternated
        os.environ["SENTINEL_BENCH_HIVE_USER"] = server.username
        elb_certs = make_certs(workdir / "elb", (ELB_NAME, "localhost"), ca_name="bench ELB CA", prefix="elb-")
        proxy = TlsTerminatingProxy(lambda: (server.host, server.port), certfile=elb_certs.cert_file,
                                    keyfile=elb_certs.key_file, backend_tls=True).start()
        try:
            via_elb = make_elb_check(elb_certs.ca_file, timeout_s=10.0)
            aliases = {ELB_NAME: f"127.0.0.1:{proxy.port}"}
            run_check(via_elb, aliases)  # warm-up
            direct: list[float] = []
            two_hop: list[float] = []
            for _ in range(TWO_HOP_RUNS):
                for runs, chk, al in ((direct, check, None), (two_hop, via_elb, aliases)):
                    result, took = run_check(chk, al)
                    if result.status is not Status.OK:
                        raise RuntimeError(f"check not OK ({chk.name}): {result.summary}")
                    runs.append(took)
        finally:
            proxy.stop()

        # 2. beeline, the Nagios way
        bl = []
        for _ in range(BEELINE_RUNS):
            took, code, out = beeline(server, beeline_conf, BEELINE_TIMEOUT_S)
            if code != 0 or "default" not in out:
                raise RuntimeError(f"beeline failed (exit {code}):\n{out}")
            bl.append(took)

        # 3. time to verdict on a frozen server, 4. beeline on a frozen server
        frozen: dict[str, Any] = {}
        server.freeze()
        try:
            for timeout_s in FROZEN_TIMEOUTS_S:
                walls, verdicts = [], set()
                for _ in range(FROZEN_RUNS):
                    result, took = run_check(make_check(server, timeout_s))
                    walls.append(took)
                    verdicts.add(f"{result.status.name}/{result.error_kind}")
                frozen[f"{timeout_s:g}"] = {"timeout_s": timeout_s, "wall_s": walls, "max_wall_s": max(walls),
                                            "ratio": max(walls) / timeout_s, "verdicts": sorted(verdicts)}
            bl_frozen, bl_frozen_code, _ = beeline(server, beeline_conf, BEELINE_FROZEN_CAP_S)
        finally:
            server.thaw()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ip, b = summary(in_proc), summary(bl)
    ratio = b["median"] / ip["median"]
    d, th = summary(direct), summary(two_hop)
    hop_ratio = th["median"] / d["median"]
    rows: list[list[Any]] = [
        ["server start → first query (s)", startup, "", ""],
        [f"check in-process, healthy (ms, n={ip['n']})", ip["median"] * 1000, ip["p95"] * 1000, ""],
        [f"beeline -e, healthy (ms, n={b['n']})", b["median"] * 1000, b["p95"] * 1000, f"{ratio:.1f}x in-process"],
    ]
    for key, f in frozen.items():
        rows.append([f"check, frozen server, timeout_s {key} (s)", f["max_wall_s"], "",
                     f"ratio {f['ratio']:.3f} {', '.join(f['verdicts'])}"])
    hung = "still hung, killed" if bl_frozen_code is None else f"exit {bl_frozen_code}"
    rows.append(["beeline, frozen server (s)", bl_frozen, "", hung])
    rows.append([f"check direct, alternated (ms, n={d['n']})", d["median"] * 1000, d["p95"] * 1000, ""])
    rows.append([f"check via TLS-terminating LB (ms, n={th['n']})", th["median"] * 1000, th["p95"] * 1000,
                 f"ratio {hop_ratio:.2f} to direct"])
    print(table(rows, ["what", "median", "p95", "note"]))
    worst = max(f["ratio"] for f in frozen.values())
    verdict_ok = all(v == ["CRITICAL/timeout"] for v in (f["verdicts"] for f in frozen.values()))
    print(f"time-to-verdict / timeout_s: worst {worst:.3f} (goal ≤ {GOAL_RATIO}); verdicts CRITICAL/timeout: {verdict_ok}")
    path = write("hs2_latency", {
        "server_startup_s": startup,
        "in_process_check_s": ip,
        "beeline_s": b,
        "beeline_over_in_process": ratio,
        "frozen": frozen,
        "frozen_worst_ratio": worst,
        "frozen_goal_ratio": GOAL_RATIO,
        "beeline_frozen": {"wall_s": bl_frozen, "exit": bl_frozen_code, "cap_s": BEELINE_FROZEN_CAP_S},
        "direct_alternated_s": d,
        "two_hop_s": th,
        "two_hop_over_direct": hop_ratio,
    })
    print(f"wrote {path}")
    return 0 if worst <= GOAL_RATIO and verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
