"""Fan-out through the work queue (dispatch: queue): N targets dispatched through moto SQS and
worked by concurrent worker processes running the real Lambda handler, one message each.

Measured in one run, on one machine:

- dispatch: the scheduled invocation that enqueues one message per target (batched sends)
  and reads every target's last tick (``SecondsSinceTick``): wall time and AWS calls;
- per queued tick (in a worker): wall, AWS calls by service and operation, peak RSS;
- throughput (ticks/s) for 1..N worker processes draining the same dispatch;
- baseline in the same run: ``dispatch: inline``, one invocation ticking ``--inline-targets``
  targets on its thread pool, and the capacity that implies within a 300-s Lambda budget.

moto runs as one in-process HTTP server on 127.0.0.1, *serialised* (moto's backends are not
thread-safe): it is a shared bottleneck real AWS is not, so worker scaling here is a lower
bound. Each worker is the 3.11 venv (the handler's code, not the zip). Checks: ``emr_state``
against moto's EMR (the same calls as production).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, table, write

ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "SENTINEL_LOOPBACK_ONLY": "1",
       "POWERTOOLS_SERVICE_NAME": "sentinel-bench", "POWERTOOLS_METRICS_NAMESPACE": "Sentinel"}
TABLE = "sentinel-bench-state"
QUEUE = "sentinel-bench-ticks"
LAMBDA_BUDGET_S = 290.0  # a 300-s function minus the handler's safety margin


class SerialMotoServer:
    """moto's HTTP server with one request at a time (``threaded=False``)."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log(self, *args: Any) -> None:  # one line per request would drown the results
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), False,
                                  request_handler=Quiet)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint)


def seed(endpoint: str, n: int, tmp: Path, dispatch: str, **top: Any) -> Path:
    from monitor.core.state.dynamodb import create_table

    ddb = client(endpoint, "dynamodb")
    with contextlib.suppress(Exception):
        create_table(ddb, TABLE)
    topic = client(endpoint, "sns").create_topic(Name="sentinel-bench-pages")["TopicArn"]
    emr = client(endpoint, "emr")
    if not emr.list_clusters(ClusterStates=["WAITING"]).get("Clusters"):
        emr.run_job_flow(Name="RC.HIVE.BENCH", ReleaseLabel="emr-6.15.0", JobFlowRole="EMR_EC2_DefaultRole",
                         ServiceRole="EMR_DefaultRole",
                         Instances={"InstanceGroups": [{"Name": "m", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                                                        "InstanceCount": 1}], "KeepJobFlowAliveWhenNoSteps": True})
    raw = {"version": 1, "region": "us-east-1", "state_table": TABLE, "notify": {"page_topic_arn": topic},
           "dispatch": dispatch, **top,
           "targets": [{"name": f"t{i:04d}", "cluster": {"name": "RC.HIVE.BENCH"},
                        "checks": [{"type": "emr_state", "name": "cluster-state"}]} for i in range(n)]}
    path = tmp / f"sentinel-{dispatch}-{n}{''.join(f'-{k}{v}' for k, v in top.items())}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ---------------------------------------------------------------- in the worker / dispatcher processes

COUNT_HOOK = """
import botocore.client, collections
CALLS = collections.Counter()
_orig = botocore.client.BaseClient._make_api_call
def _counted(self, op, params):
    CALLS[self.meta.service_model.service_name + ":" + op] += 1
    return _orig(self, op, params)
botocore.client.BaseClient._make_api_call = _counted
"""


class Context:
    function_name = "sentinel-bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentinel-bench"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def peak_rss_mb() -> float:
    """VmHWM of this process. Not ru_maxrss: Linux keeps the parent's high-water mark across
    fork + exec, so a worker would report the bench's own (moto) peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet() -> None:
    """Lambda sends stdout to CloudWatch Logs; here it would only flood the terminal."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)


def worker_main(out: str, queue_url: str, endpoint: str, limit: str = "0") -> None:
    """Drain the queue like the event-source mapping (batch size 1): receive, invoke the
    handler with the SQS record, delete unless it is reported as a batch item failure."""
    ns: dict[str, Any] = {}
    exec(COUNT_HOOK, ns)
    calls: Counter[str] = ns["CALLS"]
    _quiet()
    from monitor.handler import lambda_handler

    sqs = client(endpoint, "sqs")
    ticks: list[float] = []
    cpu: list[float] = []
    failures = empty = 0
    started = time.perf_counter()
    while empty < 2 and (int(limit) <= 0 or len(ticks) < int(limit)):
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, MessageAttributeNames=["All"],
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            empty += 1
            continue
        empty = 0
        m = got[0]
        record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                  "attributes": m.get("Attributes", {}), "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                  "messageAttributes": {k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                                        for k, v in m.get("MessageAttributes", {}).items()}}
        t, c = time.perf_counter(), time.process_time()
        resp = lambda_handler({"Records": [record]}, Context(m["MessageId"]))
        ticks.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if resp.get("batchItemFailures"):
            failures += 1
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    handler_calls = Counter({k: v for k, v in calls.items()
                             if k not in ("sqs:ReceiveMessage", "sqs:DeleteMessage")})
    Path(out).write_text(json.dumps({
        "ticks": ticks, "cpu": cpu, "failures": failures, "wall": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(), "calls": dict(handler_calls),
    }))


def dispatcher_main(out: str, event: str) -> None:
    ns: dict[str, Any] = {}
    exec(COUNT_HOOK, ns)
    calls: Counter[str] = ns["CALLS"]
    _quiet()
    from monitor.handler import lambda_handler

    ev = json.loads(event)
    lambda_handler(ev, Context("warm-up")) if ev.get("warm") else None
    t = time.perf_counter()
    report = lambda_handler({k: v for k, v in ev.items() if k != "warm"}, Context("dispatch"))
    wall = time.perf_counter() - t
    Path(out).write_text(json.dumps({
        "wall": wall, "calls": dict(calls), "peak_rss_mb": peak_rss_mb(),
        "enqueued": (report.get("data") or {}).get("enqueued"), "targets": len(report.get("targets", [])),
        "probes": (report.get("data") or {}).get("probes"),
        "errors": report.get("errors", [])[:5],
        "target_errors": sum(1 for t in report.get("targets", []) if t.get("error")),
    }))


# ---------------------------------------------------------------- the parent

def _spawn(fn: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = f"import sys; from bench.fanout import {fn}; {fn}(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env)


def _run(fn: str, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    proc = _spawn(fn, args, env)
    if proc.wait(timeout=timeout) != 0:
        raise RuntimeError(f"{fn} exited {proc.returncode}")
    return dict(json.loads(Path(args[0]).read_text()))


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--max-workers", type=int, default=4, help="worker processes (≤ 4 on a 2-core box)")
    parser.add_argument("--inline-targets", type=int, default=100, help="targets of the inline baseline tick")
    args = parser.parse_args()
    server = SerialMotoServer()
    try:
        os.environ.update(ENV)
        env = {**os.environ, **ENV, "AWS_ENDPOINT_URL": server.url}
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            sqs = client(server.url, "sqs")
            queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
            qenv = {**env, "SENTINEL_QUEUE_URL": queue_url}

            # Baseline, same run: the inline tick (a warm container's second invocation).
            icfg = seed(server.url, args.inline_targets, tmp, "inline")
            inline = _run("dispatcher_main", [str(tmp / "inline.json"), json.dumps({**SCHEDULED, "warm": True})],
                          {**env, "SENTINEL_CONFIG": str(icfg)}, 900)
            per_target_inline = inline["wall"] / args.inline_targets
            inline_capacity = int(LAMBDA_BUDGET_S / per_target_inline)

            qcfg = seed(server.url, args.targets, tmp, "queue")
            runs = []
            # One dispatch of every target; the runs with 1, 2, ... workers drain it in turn
            # (a share each, the largest last: it works whatever is left).
            d = _run("dispatcher_main", [str(tmp / "dispatch.json"), json.dumps(SCHEDULED)],
                     {**qenv, "SENTINEL_CONFIG": str(qcfg)}, 900)
            assert d["enqueued"] == args.targets, d
            dispatches = [d]
            # Baseline for the probes, same run: the same dispatch without them, to a queue
            # nobody drains (tick_every_s: 600 = one look per 10-min schedule).
            bare_url = sqs.create_queue(QueueName=f"{QUEUE}-bare")["QueueUrl"]
            bcfg = seed(server.url, args.targets, tmp, "queue", tick_every_s=600)
            bare = _run("dispatcher_main", [str(tmp / "dispatch-bare.json"), json.dumps(SCHEDULED)],
                        {**qenv, "SENTINEL_QUEUE_URL": bare_url, "SENTINEL_CONFIG": str(bcfg)}, 900)
            counts = sorted({1, 2, args.max_workers} if args.max_workers >= 2 else {1})
            share = args.targets // (len(counts) + 1)
            for n in counts:
                last = n == counts[-1]
                limit = 0 if last else max(1, share // n)
                started, cpu0 = time.perf_counter(), time.process_time()
                procs = [(_spawn("worker_main", [str(tmp / f"w{n}-{i}.json"), queue_url, server.url, str(limit)],
                                 {**qenv, "SENTINEL_CONFIG": str(qcfg)}), tmp / f"w{n}-{i}.json") for i in range(n)]
                for p, _ in procs:
                    p.wait(timeout=1800)
                wall = time.perf_counter() - started
                moto_busy = (time.process_time() - cpu0) / wall  # this process only serves moto now
                results = [json.loads(path.read_text()) for _, path in procs]
                ticks = [t for r in results for t in r["ticks"]]
                cpu = [t for r in results for t in r["cpu"]]
                runs.append({"workers": n, "ticks": len(ticks), "wall_s": wall, "throughput": len(ticks) / wall,
                             "tick_ms_median": statistics.median(ticks) * 1000,
                             "tick_ms_p95": sorted(ticks)[int(0.95 * (len(ticks) - 1))] * 1000,
                             "tick_cpu_ms_median": statistics.median(cpu) * 1000,
                             "failures": sum(r["failures"] for r in results), "moto_busy": moto_busy,
                             "peak_rss_mb_max": max(r["peak_rss_mb"] for r in results),
                             "calls": dict(sum((Counter(r["calls"]) for r in results), Counter()))})
    finally:
        server.stop()

    base = runs[0]["throughput"]
    rows = [[r["workers"], r["ticks"], r["wall_s"], r["throughput"], r["throughput"] / base, r["tick_ms_median"],
             r["tick_ms_p95"], r["tick_cpu_ms_median"], r["peak_rss_mb_max"], r["moto_busy"], r["failures"]] for r in runs]
    print(table(rows, ["workers", "ticks", "wall s", "ticks/s", "vs 1 worker", "tick ms median", "tick ms p95",
                       "tick CPU ms (worker)",
                       "peak RSS MB (1 worker)", "moto server CPU busy", "failed"]))
    one = runs[0]
    per_tick_calls = {k: v / one["ticks"] for k, v in sorted(one["calls"].items())}
    d_calls = Counter(dispatches[0]["calls"])
    dispatch_s = statistics.median(d["wall"] for d in dispatches)
    print(f"dispatch of {args.targets} targets: median {dispatch_s:.2f} s "
          f"({d_calls['sqs:SendMessageBatch']} SendMessageBatch, {d_calls['dynamodb:GetItem']} GetItem for "
          f"SecondsSinceTick), peak RSS {dispatches[0]['peak_rss_mb']:.0f} MB; probes {dispatches[0]['probes']}; "
          f"without probes (same run) {bare['wall']:.2f} s → ratio {dispatch_s / bare['wall']:.2f}")
    print("AWS calls per queued tick: " + ", ".join(f"{k} {v:.2f}" for k, v in per_tick_calls.items()))
    print(f"inline baseline: {args.inline_targets} targets in one invocation {inline['wall']:.2f} s "
          f"({per_target_inline * 1000:.0f} ms/target on {8} threads, peak RSS {inline['peak_rss_mb']:.0f} MB, "
          f"{inline['target_errors']} target errors) → ~{inline_capacity} targets per 290-s invocation; "
          f"queue: {one['throughput']:.1f} ticks/s with 1 worker, {runs[-1]['throughput']:.1f} with {runs[-1]['workers']}")
    # On Lambda each worker has its own CPU and AWS is not one serialised process: throughput
    # is concurrency / tick wall. Projected with the 1-worker tick wall (moto's latency included).
    projected = {c: c / (one["tick_ms_median"] / 1000) for c in (1, 10, 50)}
    print("projected on Lambda (concurrency / 1-worker tick wall): " +
          ", ".join(f"{c} → {v:.0f} ticks/s" for c, v in projected.items()) +
          f"; 1000 targets at concurrency 10: {args.targets / projected[10]:.0f} s of a 600-s interval")
    write("fanout", {"projected_ticks_per_s": projected, "args": vars(args), "runs": runs, "dispatch_s": dispatch_s,
                     "dispatch": dispatches[0], "dispatch_without_probes": bare,
                     "per_tick_calls": per_tick_calls, "inline": inline, "inline_per_target_s": per_target_inline,
                     "inline_capacity_per_invocation": inline_capacity,
                     "note": "moto serialised in one server: worker scaling is a lower bound"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
