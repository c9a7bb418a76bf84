"""One tick over N targets (3 checks each, 10% of HiveServer2s hung) against moto and local
servers: wall time, peak RSS, AWS and DynamoDB calls per target.

Baseline in the same run: the same tick over 1 healthy target. The ratio
``wall(N) / (N × wall(1))`` says how well the bounded pool overlaps targets (lower is
better; hung checks cost their timeout once per pool slot, not once per target in series).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import table, write

os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                   "SENTINEL_LOOPBACK_ONLY": "1"})


def bind_stats_server() -> ThreadingHTTPServer:
    """A statistics channel per path whose QUERY counter grows by 6000 per request
    (10 queries/s over a 10-minute tick)."""
    state: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state[self.path] += 6000
            body = (f'<statistics version="3.13"><server><boot-time>2026-01-01T00:00:00Z</boot-time>'
                    f'<version>9.18</version><counters type="opcode"><counter name="QUERY">{state[self.path]}</counter>'
                    f"</counters></server></statistics>").encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(n_targets: int, hung_fraction: float, timeout_s: float, workers: int) -> dict[str, Any]:
    import credstash
    from moto import mock_aws

    from checks.base import Deadline
    from monitor.config import parse_config
    from monitor.core.aws import ClientFactory
    from monitor.core.state.dynamodb import create_table
    from monitor.cycle import run_tick
    from monitor.runtime import build_services, new_invocation
    from monitor.sandbox.certs import make_certs
    from monitor.sandbox.demo import SimClock
    from monitor.sandbox.hs2_server import HiveServer2Stub
    from monitor.sandbox.motolock import serialize_all

    calls: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        clients = ClientFactory("us-east-1")
        kms = clients.client("kms")
        kms.create_alias(AliasName="alias/credstash", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
        with contextlib.redirect_stdout(io.StringIO()):
            credstash.createDdbTable(region="us-east-1", table="credential-store")
        credstash.putSecret("pw", "bench-pw", version="1", region="us-east-1", table="credential-store",
                            dynamodb=clients.resource("dynamodb"), kms=kms)
        create_table(clients.client("dynamodb"), "sentinel-state")
        topic = clients.client("sns").create_topic(Name="pages")["TopicArn"]
        emr = clients.client("emr")
        for i in range(n_targets):
            emr.run_job_flow(Name=f"cluster-{i}", ReleaseLabel="emr-6.15.0", JobFlowRole="r", ServiceRole="s",
                             Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                                        "KeepJobFlowAliveWhenNoSteps": True})
        certs = make_certs(tmp, ("localhost", "*.internal.example.com"))
        ok = HiveServer2Stub(password="bench-pw", certfile=certs.cert_file, keyfile=certs.key_file).start()
        hung = HiveServer2Stub(password="bench-pw", certfile=certs.cert_file, keyfile=certs.key_file).start()
        hung.mode = "hang_after_connect"
        stats = bind_stats_server()
        n_hung = round(n_targets * hung_fraction)
        targets = []
        aliases = {}
        for i in range(n_targets):
            host = f"hive-{i}.internal.example.com"
            aliases[host] = f"127.0.0.1:{(hung if i < n_hung else ok).port}"
            targets.append({
                "name": f"t{i:03d}", "cluster": {"name": f"cluster-{i}"},
                "checks": [
                    {"type": "hiveserver2", "name": "hive", "host": host, "port": 443, "timeout_s": timeout_s,
                     "tls": {"ca_file": certs.ca_file},
                     "credentials": {"provider": "credstash", "username": "rcapp", "key": "pw"}},
                    {"type": "emr_state", "name": "emr"},
                    {"type": "dns_query_rate", "name": "dns",
                     "source": {"kind": "bind_stats", "url": f"http://127.0.0.1:{stats.server_address[1]}/t{i}/xml/v3/server"}},
                ],
            })
        config = parse_config({"version": 1, "region": "us-east-1", "state_table": "sentinel-state",
                               "notify": {"page_topic_arn": topic}, "host_aliases": aliases,
                               "max_workers": workers, "targets": targets})

        def count(event_name: str, **_: Any) -> None:
            calls[event_name.split(".")[1]] += 1

        clock = SimClock()
        services = build_services(config, clients=clients, clock=clock)
        for service in ("dynamodb", "emr", "sns", "kms"):
            events = clients.client(service).meta.events
            events.register("before-call.*.*", count)
        serialize_all(clients)  # moto is not thread-safe; see monitor/sandbox/motolock.py
        run_tick(new_invocation(services), deadline=Deadline.after(600))  # warm-up: moto's first calls are slow
        calls.clear()
        clock.advance(timedelta(minutes=10))
        started = time.perf_counter()
        report = run_tick(new_invocation(services), deadline=Deadline.after(600))
        wall = time.perf_counter() - started
        ok.stop()
        hung.stop()
        stats.shutdown()
    statuses = Counter(t.status.name for t in report.targets)
    problems = Counter(f"{c.name} {c.status.name} {c.error_kind}: {c.summary.split(' via ')[0][:60]}" for t in report.targets
                       for c in t.checks if c.status.name in ("UNKNOWN", "CRITICAL"))
    problems.update(f"target error: {(t.error or t.skipped or '')[:80]}" for t in report.targets if t.error or t.skipped)
    return {"targets": n_targets, "hung": n_hung, "wall_s": wall, "statuses": dict(statuses),
            "problems": dict(problems.most_common(12)),
            "calls_per_target": {k: v / n_targets for k, v in sorted(calls.items())}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    base = run(1, 0.0, args.timeout, args.workers)
    big = run(args.targets, 0.10, args.timeout, args.workers)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = big["wall_s"] / (args.targets * base["wall_s"])
    print(table([["1 target (baseline)", base["wall_s"], str(base["statuses"])],
                 [f"{args.targets} targets, {big['hung']} hung", big["wall_s"], str(big["statuses"])]],
                ["tick", "wall s", "target statuses"]))
    print(f"ratio wall({args.targets}) / ({args.targets} x wall(1)): {ratio:.3f}   peak RSS {rss_mb:.0f} MB   "
          f"workers {args.workers}, hive timeout {args.timeout:g} s")
    for text, n in big["problems"].items():
        print(f"  {n:>3} x {text}")
    print("AWS calls per target:", ", ".join(f"{k} {v:.1f}" for k, v in big["calls_per_target"].items()))
    write("scale_tick", {"baseline": base, "scale": big, "ratio": ratio, "peak_rss_mb": rss_mb,
                         "workers": args.workers, "timeout_s": args.timeout})
    return 0


if __name__ == "__main__":
    sys.exit(main())
