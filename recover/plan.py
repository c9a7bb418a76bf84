"""``sentinel plan``: the recovery plan, printed. It is a dry run of the whole runbook from
SNAPSHOT (:func:`recover.runbook.build_plan`): the same phase functions, real reads, the
changing calls recorded with their parameters instead of sent.

Secret configuration properties (e.g. a metastore password in hive-site; the rule is
recover/sealed.py's) are masked in the request a plan shows (``****``: a dry run seals by
masking) and in every call's parameters; a real LAUNCH sends the clear value, unsealed
right before RunJobFlow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from checks.base import CheckResult, Deadline, EndpointOverride
from monitor.core.errors import StateError
from monitor.core.state.base import TargetState
from monitor.core.state.readonly import ReadOnlyStore
from monitor.metrics import MetricsRecorder
from monitor.notify import Notifier
from recover import secret_keys
from recover.context import RecoveryContext
from recover.runbook import build_plan

PLAN_DEADLINE_S = 120.0


# A read that failed with a transient fault (network, timeout, throttling: monitor.core.faults) or
# one of these says nothing about the plan, only that AWS could not be read (credentials):
# sentinel cannot judge, exit 3.
UNREADABLE_CODES = {
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "NoCredentialsError",
}


def aws_unreadable(plan: dict[str, Any]) -> list[str]:
    """The reads (sent, not changing) that failed because AWS could not be read."""
    return [f"{c['call']}: {c['error']}" for c in plan.get("calls") or []
            if c.get("sent") and not c.get("mutating") and c.get("error")
            and (c.get("fault") == "transient" or c.get("error") in UNREADABLE_CODES)]


def plan_for(services: Any, target: Any, *, deadline: Deadline | None = None) -> dict[str, Any]:
    """The masked recovery plan of ``target``: the dry run of every ladder rung (real reads,
    changes recorded, nothing persisted or sent). Shared by ``sentinel plan`` and the Lambda
    ``plan`` action. Keys added to :func:`recover.runbook.build_plan`'s: ``warnings`` and
    ``aws_unreadable`` (reads that failed because AWS could not be read)."""
    cfg = services.config
    store = ReadOnlyStore(services.store)
    warnings: list[str] = []
    try:
        state = store.get(target.name)
    except StateError as exc:
        state = TargetState()
        warnings.append(f"state unreadable ({exc}): planned as if no recovery ever ran")
    limit = Deadline.after(PLAN_DEADLINE_S)
    if deadline is not None and deadline.remaining() < limit.remaining():
        limit = deadline
    rctx = RecoveryContext(
        config=cfg, target=target, clients=services.clients, store=store, lease=None, clock=services.clock,
        deadline=limit, resolver=services.resolver,
        notifier=Notifier(None, cfg.notify.page_topic_arn, cfg.notify.info_topic_arn, dry_run=True),
        metrics=MetricsRecorder(cfg.metrics_namespace, emit=False), run_checks=_checks_not_run,
        dry_run=True, requested_by="sentinel plan",
    )
    plan = build_plan(rctx, state, reason="sentinel plan")
    plan["warnings"] = warnings
    plan["aws_unreadable"] = [] if plan["ok"] else aws_unreadable(plan)
    shown: dict[str, Any] = mask(plan)
    return shown


def print_plan(services: Any, target_name: str, *, as_json: bool) -> int:
    """Exit 0 when the plan reaches DONE, 1 when it would fail, 3 when it could not be built
    because AWS could not be read (a plan that "fails" on a timeout says nothing about the
    recovery), 2 on usage."""
    cfg = services.config
    try:
        target = cfg.target(target_name)
    except KeyError:
        names = ", ".join(t.name for t in cfg.targets)
        print(f"usage: unknown target {target_name!r} (configured: {names})", file=sys.stderr)
        return 2
    shown = plan_for(services, target)
    print(json.dumps(shown, indent=2, default=str) if as_json else render(shown))
    if shown["ok"]:
        return 0
    return 3 if shown["aws_unreadable"] else 1


def _checks_not_run(names: Sequence[str], endpoint: EndpointOverride | None) -> list[CheckResult]:
    return []  # a dry run never runs checks (Run.verify records them instead)


def mask(value: Any, key: str = "") -> Any:
    """The plan with secret values masked: the one rule of recover/secret_keys.py (the spec in
    the plan is already sealed; this also covers anything else that looks like a secret)."""
    return secret_keys.mask(value, key)


def render(plan: dict[str, Any]) -> str:
    old = plan.get("old_cluster") or {}
    lines = [f"Recovery plan for {plan['target']}: strategy {plan['strategy']}, spec from {plan['spec_source']}",
             f"Old cluster: {old.get('cluster_id', 'none')} {old.get('name') or ''} {old.get('state') or ''}".rstrip()]
    phase = None
    for call in plan["calls"]:
        if call["phase"] != phase:
            phase = call["phase"]
            lines.append(f"\n{phase}")
        if call["mutating"]:
            kind = "CHANGE"
        elif call["call"].startswith("sentinel."):
            kind = "check "
        else:
            kind = "sim   " if call.get("simulated") else "read  "
        if call["call"] == "emr.run_job_flow":  # the request itself: worth reading, so readable
            params = json.dumps(call.get("params", {}), indent=2, sort_keys=True, default=str).replace("\n", "\n    ")
        else:
            params = json.dumps(call.get("params", {}), sort_keys=True, default=str)
        lines.append(f"  {kind} {call['call']} {params}")
    lines.append("")
    lines.append("Phases: " + " -> ".join(p["phase"] for p in plan["phases"]))
    if plan.get("approval"):  # recovery.approval: a person's yes first (phase APPROVAL)
        lines.append(f"Approval: {plan['approval']}")
    if plan.get("not_copied"):
        lines.append("\nNot copied:")
        for gap in plan["not_copied"]:
            lines.append(f"  - {gap['field']}{' (BLOCKING)' if gap.get('blocking') else ''}: {gap['reason']}")
    for note in plan.get("notes") or []:
        lines.append(f"Note: {note}")
    for item in plan.get("would_not_start_now") or []:
        lines.append(f"Would not start now: {item}")
    for item in plan.get("warnings") or []:
        lines.append(f"Warning: {item}")
    writes = sum(1 for c in plan["calls"] if c["mutating"])
    reads = sum(1 for c in plan["calls"] if c["sent"])
    lines.append("\n(sim = a read about the cluster the dry run only pretended to launch: answered, not sent)")
    if plan["ok"]:
        lines.append(f"Plan OK: {reads} read(s) made now, {writes} change(s) it would make.")
    elif plan.get("aws_unreadable"):
        lines.append(f"\nNo plan: AWS could not be read ({'; '.join(plan['aws_unreadable'])}): "
                     f"stopped in {plan['final_phase']}: {plan['error']}")
    else:
        lines.append(f"\nPlan FAILS in {plan['final_phase']}: {plan['error']}")
    return "\n".join(lines)
