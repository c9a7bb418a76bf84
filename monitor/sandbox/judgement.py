"""The sandbox's judgement around the fixes (issue 21): diagnostics collected before a fix and
shown on its page, and a relaunch that waits for a person's yes, answered by the command the
approval page names. Kept apart from the story (monitor/sandbox/demo.py) so that each stays
readable: this is what on-call does and sees, the story is what the world does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# With the ladder, the story also collects evidence before each fix (recovery.diagnostics) and
# asks a person before the relaunch (recovery.approval), answered by `sentinel approve`.
DEMO_JUDGEMENT: dict[str, Any] = {
    "diagnostics": {"via": "ssm", "timeout_s": 60},
    "approval": {"rungs": ["replace"], "timeout_min": 30, "on_timeout": "escalate"},
}
# What the diagnostics command prints on the wedged master (moto runs no command).
DEMO_DIAGNOSTICS = """== systemctl status hive-server2
Active: active (running) since 09:12; Main PID: 4242 (java)
== open files of the HiveServer2 JVM: 61234
== connections to the metastore (9083): 512 ESTABLISHED
== thread dump (jstack 4242)
"HiveServer2-Handler-Pool: Thread-171" #171 prio=5 BLOCKED on org.apache.hadoop.hive.metastore.HiveMetaStoreClient
"HiveServer2-Handler-Pool: Thread-172" #172 prio=5 BLOCKED on org.apache.hadoop.hive.metastore.HiveMetaStoreClient
"""

SANDBOX_APPROVER = "on-call (sandbox)"
APPROVE_ARGV = ["approve", "--target", "prod-hive", "--rung", "replace", "--reason",
                "the restart did not help; relaunch approved"]


def approve(p: Any, services: Any, now: datetime) -> None:
    """On-call answers the approval page with the command the page names. The story runs what
    ``sentinel approve`` runs once its arguments are parsed (the same request, dispatch and
    report; the CLI module itself imports the sandbox, so the sandbox does not import it back),
    and the relaunch starts in that command."""
    from checks.base import Deadline
    from monitor import render
    from monitor.dispatch import dispatch
    from monitor.events import request_from
    from monitor.runtime import new_invocation

    plan = ((services.store.get("prod-hive").incident or {}).get("approval") or {}).get("plan") or []
    p.event(now, f"on-call reads the approval page: the relaunch would make {len(plan)} changing calls, "
                         "one line each, e.g.:")
    for line in plan[:4]:
        p.detail("  " + " ".join(str(line).split()))
    p.event(now, "on-call answers with the command the page names: sentinel " + " ".join(APPROVE_ARGV[:5])
            + f' --reason "{APPROVE_ARGV[6]}"')
    req = request_from({"action": "approve", "target": "prod-hive", "rung": APPROVE_ARGV[4],
                        "reason": APPROVE_ARGV[6], "requested_by": SANDBOX_APPROVER})
    report = dispatch(new_invocation(services, requested_by=req.requested_by), req, Deadline.after(120))
    for line in [ln for ln in render.text(report).splitlines() if ln.strip()][:4]:
        p.detail(line)
    p.detail(f"(sentinel approve exit {report.exit_code}; the relaunch started in that command: "
             f"{(services.store.get('prod-hive').incident or {}).get('phase')})")


def evidence(p: Any, pages: list[dict[str, Any]]) -> None:
    """The diagnostics the first fix's page carried (act 1): what HiveServer2 looked like
    before the restart destroyed it."""
    for page in pages:
        body = str(page.get("Message") or "")
        if "Diagnostics:" in body:
            p.detail(f"attached to '{page.get('Subject')}':")
            for line in body[body.index("Diagnostics:"):].splitlines()[:5]:
                p.detail("  " + line)
            return
