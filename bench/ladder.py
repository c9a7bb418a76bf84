"""The remediation ladder: failure → traffic healthy again when a HiveServer2 restart fixes it
(``ladder: [restart_service, replace]``) vs the relaunch (``[replace]``), same run, on
sentinel's real tick loop (moto, the sandbox's HiveServer2 stubs and TLS load balancer, a
simulated clock).

The world: the old master's HiveServer2 hangs at the failure offset; a ``SendCommand`` to the
master (the restart) un-hangs it (what a restart of a process wedged by metastore load does);
a relaunch takes ``--launch-min`` of EMR time. Ticks every 10 min (EventBridge); with
``--recheck`` a failing tick schedules the next one ``recovery.when.recheck_after_s`` later
(the fast confirmation of the queue issue), so both schedules are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import timedelta
from typing import Any

from bench.common import table, write

TICK_MIN = 10


def minutes_to_healthy(offset_min: float, *, ladder: list[dict[str, Any]], launch_min: float,
                       recheck_s: float | None) -> tuple[float, str]:
    """Minutes from the failure until clients are served again (the incident's
    ``recovered_at``: VERIFY after a restart, VERIFY_PATH after a relaunch), and the rung."""
    from moto import mock_aws

    from bench.incident import _simulate_emr
    from checks.base import Deadline
    from monitor.clock import parse_iso
    from monitor.config import parse_config
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation
    from monitor.sandbox.demo import SANDBOX_ENV, build_world
    from recover import phases

    os.environ.update(SANDBOX_ENV)
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        w = build_world(tmp)
        clock, services, old = w.clock, w.services, w.old
        raw = services.config.model_dump(mode="json", exclude_none=True, serialize_as_any=True)
        raw["targets"][0]["recovery"]["ladder"] = ladder
        services.config = parse_config(raw)
        restarted: list[Any] = []

        def restart_hook(model: Any, **_: Any) -> None:
            if model.name == "SendCommand":
                restarted.append(clock.now())
                old.mode = "ok"  # the restart un-wedges HiveServer2

        for c in (services.clients.client("ssm"), services.clients.changing_client("ssm")):
            c.meta.events.register("after-call", restart_hook)
        sleep = phases.SLEEP
        phases.SLEEP = lambda s: clock.advance(timedelta(seconds=s))  # waiting is simulated time
        launched: dict[str, Any] = {}
        failure_at = clock.now() + timedelta(minutes=offset_min)
        try:
            for n in range(60):
                if clock.now() >= failure_at and not restarted:
                    old.mode = "hang_after_connect"
                _simulate_emr(w.seeded.cluster_id, launched, clock.now(), launch_min)
                report = run_tick(new_invocation(services, request_id=f"t{n}"), deadline=Deadline.after(120))
                inc = services.store.get("prod-hive").incident or {}
                if inc.get("recovered_at"):  # clients served again (VERIFY / VERIFY_PATH passed)
                    rung = (inc.get("rungs") or [{}])[-1].get("rung", "replace")
                    healthy_at = parse_iso(str(inc["recovered_at"]))
                    return (healthy_at - failure_at).total_seconds() / 60, str(rung)
                failing = any((t.decision or {}).get("verdict") == "failing" for t in report.targets)
                step = timedelta(seconds=recheck_s) if recheck_s and failing else timedelta(minutes=TICK_MIN)
                clock.advance(step)
        finally:
            phases.SLEEP = sleep
            w.stop()
    raise RuntimeError(f"no recovery within 60 ticks (offset {offset_min}, ladder {ladder})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launch-min", type=float, default=15.0, help="EMR launch + setup steps")
    parser.add_argument("--recheck-s", type=float, default=120.0, help="recovery.when.recheck_after_s")
    args = parser.parse_args()
    offsets = [0.5, 3.0, 6.0, 9.5]
    restart: list[dict[str, Any]] = [{"rung": "restart_service", "via": "ssm", "warmup_s": 60}, {"rung": "replace"}]
    replace: list[dict[str, Any]] = [{"rung": "replace"}]
    rows, out = [], {}
    for label, recheck in (("10-min schedule", None), (f"re-check {args.recheck_s:g} s", args.recheck_s)):
        r_min, p_min = [], []
        for off in offsets:
            r, rung = minutes_to_healthy(off, ladder=restart, launch_min=args.launch_min, recheck_s=recheck)
            p, _ = minutes_to_healthy(off, ladder=replace, launch_min=args.launch_min, recheck_s=recheck)
            assert rung == "restart_service", rung
            r_min.append(r)
            p_min.append(p)
            rows.append([label, f"{off:g}", r, p, r / p])
        ratio = statistics.median(r_min) / statistics.median(p_min)
        out[label] = {"restart_min": r_min, "replace_min": p_min, "ratio_median": ratio}
        rows.append([label, "median", statistics.median(r_min), statistics.median(p_min), ratio])
    print(table(rows, ["schedule", "failure offset min", "restart rung: healthy after min",
                       "replace: healthy after min", "ratio"]))
    write("ladder", {"args": vars(args), "offsets_min": offsets, **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
