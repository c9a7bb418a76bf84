"""Cost per target-month at a 10-minute schedule (with ``dispatch: queue`` each target is
looked at ``1 + probes`` times per schedule: twice with the default ``tick_every_s: 300``),
from what bench/fanout.py measured (tick duration, AWS calls per tick, dispatch time) and
stated prices, against a t3.micro Nagios host.

Prices assumed (us-east-1, on-demand, no free tier; change them with the flags):
- Lambda (x86_64): $0.0000166667 per GB-second, $0.20 per million requests;
- SQS standard: $0.40 per million requests (a batch of 10 sends is one request);
- DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read units
  (transactional writes and their condition checks cost 2 units per item);
- CloudWatch Logs ingestion $0.50 per GB (~3 KB of log and EMF lines per tick, assumed);
  CloudWatch custom metrics $0.30 per metric-month, shown apart (the same in both modes, and
  a Nagios host has no equivalent);
- t3.micro $0.0104/h (730 h) + 8 GB gp3 ($0.08/GB-month) for the Nagios host.

Billed duration is the tick's measured wall time against moto on 127.0.0.1: real AWS calls are
slower than loopback moto for EMR (tens of ms) and similar for DynamoDB, so ``--latency-factor``
scales it (default 2).
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.common import RESULTS, table, write
from monitor.queue import DEFAULT_SCHEDULE_S, probe_delays

TICKS_PER_MONTH = 730 * 6  # a 10-minute schedule: scheduled dispatches per month


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--memory-mb", type=int, default=512, help="the template's MemorySize")
    p.add_argument("--latency-factor", type=float, default=2.0, help="real AWS vs loopback moto, on tick duration")
    p.add_argument("--gb-s", type=float, default=0.0000166667)
    p.add_argument("--lambda-request", type=float, default=0.20 / 1e6)
    p.add_argument("--sqs-request", type=float, default=0.40 / 1e6)
    p.add_argument("--wru", type=float, default=0.625 / 1e6)
    p.add_argument("--rru", type=float, default=0.125 / 1e6)
    p.add_argument("--log-gb", type=float, default=0.50)
    p.add_argument("--log-kb-per-tick", type=float, default=3.0)
    p.add_argument("--metric-month", type=float, default=0.30)
    p.add_argument("--metrics-per-target", type=int, default=5,
                   help="CheckStatus + CheckLatencyMs per check (1 here), TargetStatus, ConsecutiveFailures, "
                        "SecondsSinceTick")
    p.add_argument("--t3-micro-hour", type=float, default=0.0104)
    p.add_argument("--ebs-gb-month", type=float, default=0.08)
    p.add_argument("--tick-every-s", type=int, default=300, help="tick_every_s (dispatch: queue): probes per schedule")
    args = p.parse_args()

    src = RESULTS / "fanout.json"
    if not src.exists():
        print("run bench/fanout.py first (bench/results/fanout.json)", file=sys.stderr)
        return 1
    f = json.loads(src.read_text())
    one = f["runs"][0]
    calls = f["per_tick_calls"]
    n_targets = f["args"]["targets"]
    gb = args.memory_mb / 1024

    def dynamodb(per_tick: dict[str, float]) -> float:
        wru = per_tick.get("dynamodb:UpdateItem", 0) + per_tick.get("dynamodb:PutItem", 0) \
            + 2 * per_tick.get("dynamodb:TransactWriteItems", 0)  # the state Put, transactional
        rru = per_tick.get("dynamodb:GetItem", 0) + per_tick.get("dynamodb:Query", 0) \
            + 2 * per_tick.get("dynamodb:TransactWriteItems", 0)  # its lease ConditionCheck
        return wru * args.wru + rru * args.rru

    tick_s = one["tick_ms_median"] / 1000 * args.latency_factor
    dispatch_share_s = f["dispatch_s"] * args.latency_factor / n_targets
    looks = 1 + len(probe_delays(DEFAULT_SCHEDULE_S, args.tick_every_s))  # queued ticks per target per schedule

    def queue_parts_for(n_looks: int) -> dict[str, float]:
        """One schedule's cost for one target: ``n_looks`` queued ticks and its share of the
        dispatch (whose sends grow with the probes: counted as ``n_looks`` dispatch shares)."""
        return {
            "lambda duration": n_looks * (tick_s + dispatch_share_s) * gb * args.gb_s,
            "lambda requests": (n_looks + 1 / n_targets) * args.lambda_request,
            # per tick: its share of a batched send, the mapping's receive and delete
            "sqs requests": n_looks * (0.1 + 1 + 1) * args.sqs_request,
            "dynamodb": n_looks * dynamodb(calls) + args.rru,  # + the dispatcher's GetItem (SecondsSinceTick)
            "logs": n_looks * args.log_kb_per_tick / 1024 / 1024 * args.log_gb,
        }

    queue_parts = queue_parts_for(looks)
    unprobed_total = sum(queue_parts_for(1).values()) * TICKS_PER_MONTH
    inline_s = f["inline_per_target_s"] * args.latency_factor
    inline_parts = {
        "lambda duration": inline_s * gb * args.gb_s,
        "lambda requests": args.lambda_request / f["args"]["inline_targets"],
        "sqs requests": 0.0,
        "dynamodb": dynamodb(calls),
        "logs": args.log_kb_per_tick / 1024 / 1024 * args.log_gb,
    }
    month = {k: v * TICKS_PER_MONTH for k, v in queue_parts.items()}
    month_inline = {k: v * TICKS_PER_MONTH for k, v in inline_parts.items()}
    queue_total, inline_total = sum(month.values()), sum(month_inline.values())
    metrics = args.metrics_per_target * args.metric_month
    host = args.t3_micro_hour * 730 + 8 * args.ebs_gb_month
    rows = [[k, month[k], month_inline[k]] for k in month]
    rows.append(["total (without custom metrics)", queue_total, inline_total])
    rows.append(["CloudWatch custom metrics", metrics, metrics])
    print(table(rows, ["$ per target-month", "dispatch: queue", "dispatch: inline"]))
    print(f"tick billed {tick_s * 1000:.0f} ms at {args.memory_mb} MB (measured {one['tick_ms_median']:.0f} ms against "
          f"moto x {args.latency_factor:g}); {TICKS_PER_MONTH} schedules per month, queue: {looks} ticks per target "
          f"per schedule (tick_every_s {args.tick_every_s}); without probes the queue costs ${unprobed_total:.3f}")
    per_host = {n: host / n for n in (10, 100, 1000)}
    print(f"t3.micro Nagios host: ${host:.2f}/month → per target " +
          ", ".join(f"${v:.3f} at {n} targets" for n, v in per_host.items()))
    sentinel_10 = queue_total + 0.26 / 10  # the mapping's idle long polling (~650k requests/month) shared by 10
    print(f"ratio sentinel queue / Nagios host per target-month (without custom metrics): at 10 targets "
          f"{sentinel_10 / per_host[10]:.3f}, at 100 {queue_total / per_host[100]:.3f}, at 1000 "
          f"{queue_total / per_host[1000]:.3f}; with custom metrics at 100 targets "
          f"{(queue_total + metrics) / per_host[100]:.2f}")
    write("cost", {"args": vars(args), "queue_month": month, "inline_month": month_inline, "queue_total": queue_total,
                   "inline_total": inline_total, "queue_total_without_probes": unprobed_total,
                   "looks_per_schedule": looks, "custom_metrics": metrics, "nagios_host_month": host,
                   "nagios_per_target": per_host})
    return 0


if __name__ == "__main__":
    sys.exit(main())
