"""`sentinel sandbox` runs the whole story offline and ends recovered."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

from checks.base import Status
from monitor.sandbox.demo import run_sandbox


def test_sandbox_detects_relaunches_repoints_and_retires() -> None:
    before = dict(os.environ)
    out = io.StringIO()
    assert run_sandbox(out) == 0
    text = out.getvalue()
    assert "verdict: failing (1 in a row)" in text
    assert "CRITICAL hive-via-elb   no_backend:" in text  # the dead backend, as seen through the ELB
    assert "recovery started" in text
    assert "VERIFY_NEW -> REPOINT" in text and "VERIFY_PATH -> RETIRE_OLD" in text
    assert "RETIRE_OLD -> DONE" in text
    assert "Recovered: incident" in text
    assert dict(os.environ) == before  # the fake credentials are not left behind


def test_sandbox_prints_the_final_tick_report() -> None:
    import json

    out = io.StringIO()
    run_sandbox(out)
    text = out.getvalue()
    start = text.index("The last tick's TickReport")
    body = text[text.index("{", start): text.index("\nRecovered:", start)]
    report = json.loads(body)
    assert report["exit_code"] == 0 and report["targets"][0]["recovery"]["phase"] == "DONE"


def test_sandbox_topology_dead_backend_is_no_backend_and_verify_new_uses_the_master_endpoint(
        tmp_path: Path) -> None:
    """The demo's world as production is wired: a dead HiveServer2 behind the TLS-terminating
    load balancer is CRITICAL no_backend (and starts the recovery after 2 ticks); VERIFY_NEW
    reaches the new master on its own port and certificate, not the ELB's."""
    from moto import mock_aws

    from checks.base import Deadline
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation
    from monitor.sandbox.demo import _progress_new_clusters, _sandbox_env, build_world

    with _sandbox_env(), mock_aws():
        w = build_world(str(tmp_path))
        try:
            reports = []
            for n in range(1, 10):
                if n == 3:
                    w.old.stop()
                if n > 1:
                    w.clock.advance(timedelta(minutes=10))
                    _progress_new_clusters(w.seeded.cluster_id)
                reports.append(run_tick(new_invocation(w.services, request_id=f"t{n}"), deadline=Deadline.after(60)))
                if (w.services.store.get("prod-hive").incident or {}).get("phase") in ("DONE", "ESCALATED"):
                    break
            events = w.services.store.events("prod-hive", limit=60)
            phase = (w.services.store.get("prod-hive").incident or {}).get("phase")
        finally:
            w.stop()
    hive = next(c for c in reports[2].targets[0].checks if c.name == "hive-via-elb")
    assert (hive.status, hive.error_kind) == (Status.CRITICAL, "no_backend"), hive.summary
    assert hive.observed["phase"] == "auth" and hive.observed["load_balancer"] is True
    assert w.elb.closed_without_backend >= 1
    verified = next(e for e in events if e.message.startswith("VERIFY_NEW -> REPOINT"))
    assert f".ec2.internal:{w.new.port}" in verified.message  # the master's own port, not the ELB's 443
    assert phase == "DONE"
    assert w.new.counters.logins >= 2  # VERIFY_NEW directly (its *.ec2.internal cert), then VERIFY_PATH via the ELB
