"""Simulated incident: time from a HiveServer2 failure to the page and to traffic on a
healthy new cluster, with sentinel's real code on a simulated clock (moto + local servers),
vs the Nagios set-up it replaces (computed from its defaults) plus a manual relaunch.

sentinel: EventBridge every 10 min, 2 consecutive failures, EMR launch + setup taking
``--launch-min``. The failure happens at several offsets inside the 10-minute schedule.
Nagios defaults: check_interval 10 min, retry_interval 2 min, max_check_attempts 3 (the
page goes out on the third failed check); then the manual process of the seed — paging a
person, an emergency release, approvals (``--manual-min``, an assumption stated in the
output), the same EMR launch, and re-pointing by hand (``--repoint-min``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import timedelta
from typing import Any

from bench.common import table, write
from monitor.sandbox.demo import SANDBOX_ENV, _emr_backend, build_world

TICK_MIN = 10


def nagios_minutes(offset_min: float, launch_min: float, manual_min: float, repoint_min: float) -> tuple[float, float]:
    first_failed_check = (TICK_MIN - offset_min) % TICK_MIN or TICK_MIN
    page = first_failed_check + 2 * 2  # two retries, 2 minutes apart, then HARD → notification
    return page, page + manual_min + launch_min + repoint_min


def sentinel_minutes(offset_min: float, launch_min: float) -> tuple[float, float, int]:
    """Run the real tick loop; returns (minutes to page, minutes to traffic on the new cluster, ticks)."""
    import os

    from moto import mock_aws

    from checks.base import Deadline
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation

    os.environ.update(SANDBOX_ENV)
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        w = build_world(tmp)
        seeded, old, clock, services = w.seeded, w.old, w.clock, w.services
        start = clock.now()
        failure_at = start + timedelta(minutes=offset_min)
        launched: dict[str, Any] = {}
        page_at = traffic_at = None
        try:
            for n in range(40):
                now = clock.now()
                if now >= failure_at:
                    old.mode = "hang_after_connect"
                _simulate_emr(seeded.cluster_id, launched, now, launch_min)
                run_tick(new_invocation(services, request_id=f"t{n}"), deadline=Deadline.after(60))
                _simulate_emr(seeded.cluster_id, launched, now, launch_min)  # a launch in this tick starts now
                if page_at is None and seeded.pages():
                    page_at = now
                phase = (services.store.get("prod-hive").incident or {}).get("phase")
                if traffic_at is None and phase in ("RETIRE_OLD", "DONE"):
                    traffic_at = now
                if phase in ("DONE", "ESCALATED"):
                    break
                clock.advance(timedelta(minutes=TICK_MIN))
        finally:
            w.stop()
    if page_at is None or traffic_at is None:
        raise RuntimeError(f"incident did not complete (offset {offset_min} min)")
    minutes = lambda t: (t - failure_at).total_seconds() / 60  # noqa: E731
    return minutes(page_at), minutes(traffic_at), n + 1


def _simulate_emr(old_id: str, launched: dict[str, Any], now: Any, launch_min: float) -> None:
    """A new cluster is STARTING until ``launch_min`` after it was first seen, then WAITING
    with its setup steps COMPLETED (moto would make it WAITING at once)."""
    for cid, cluster in _emr_backend().clusters.items():
        if cid == old_id or cluster.state.startswith("TERMINAT"):
            continue
        first_seen = launched.setdefault(cid, now)
        if now - first_seen < timedelta(minutes=launch_min):
            cluster.state = "STARTING"
        else:
            cluster.state = "WAITING"
            for step in cluster.steps:
                step.state = "COMPLETED"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launch-min", type=float, default=15.0, help="EMR launch + setup steps")
    parser.add_argument("--manual-min", type=float, default=120.0,
                        help="assumed: on-call response, emergency release and approvals (seed: 'hours')")
    parser.add_argument("--repoint-min", type=float, default=15.0, help="assumed: re-pointing ELB/DNS by hand")
    args = parser.parse_args()
    offsets = [0.5, 3.0, 6.0, 9.5]  # minutes after a scheduled tick
    rows, s_page, s_traffic, n_page, n_traffic = [], [], [], [], []
    for off in offsets:
        page, traffic, ticks = sentinel_minutes(off, args.launch_min)
        npage, ntraffic = nagios_minutes(off, args.launch_min, args.manual_min, args.repoint_min)
        s_page.append(page)
        s_traffic.append(traffic)
        n_page.append(npage)
        n_traffic.append(ntraffic)
        rows.append([f"{off:g}", page, traffic, npage, ntraffic, ticks])
    print(table(rows, ["failure offset min", "sentinel page", "sentinel traffic", "nagios page",
                       "nagios+manual traffic", "ticks"]))
    med = statistics.median
    ratio = med(s_traffic) / med(n_traffic)
    print(f"median minutes: sentinel page {med(s_page):.1f}, traffic {med(s_traffic):.1f}; nagios page {med(n_page):.1f}, "
          f"traffic {med(n_traffic):.1f} (assumes {args.manual_min:g} min manual process, {args.repoint_min:g} min "
          f"re-pointing)")
    print(f"ratio time-to-traffic sentinel / (nagios + manual): {ratio:.2f}; EMR launch {args.launch_min:g} min")
    write("incident", {"args": vars(args), "offsets_min": offsets, "sentinel_page_min": s_page,
                       "sentinel_traffic_min": s_traffic, "nagios_page_min": n_page, "nagios_traffic_min": n_traffic,
                       "ratio_traffic": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
