"""The ``plan`` Lambda action: the recovery plan (every AWS call it would make) as a report.

``sentinel plan`` prints the plan (:func:`recover.plan.print_plan`); the Lambda must return
it instead, so this builds the same dry run (:func:`recover.runbook.build_plan`: real reads,
changes recorded, nothing persisted or sent) and wraps the masked plan in a
:class:`~monitor.report.TickReport`. The plan is read-only, so it is on the read-only door.

Exit codes as the CLI's: 0 the plan reaches DONE, 1 it would fail (one target row with
status WARNING carries that), 2 an unknown target.
"""

from __future__ import annotations

from checks.base import Deadline, Status
from monitor.clock import iso
from monitor.errors import StateError, UsageError
from monitor.metrics import MetricsRecorder
from monitor.notify import Notifier
from monitor.report import TargetReport, TickReport
from monitor.runtime import Services
from monitor.state.base import TargetState
from monitor.state.readonly import ReadOnlyStore

PLAN_DEADLINE_S = 120.0


def plan_report(services: Services, target_name: str | None, *, request_id: str | None = None,
                deadline: Deadline | None = None) -> TickReport:
    """The masked recovery plan of ``target_name`` (secret-looking values shown as ``****``)."""
    from recover.context import RecoveryContext
    from recover.plan import _checks_not_run, mask, render
    from recover.runbook import build_plan

    cfg = services.config
    names = [t.name for t in cfg.targets]
    if not target_name or target_name not in names:
        raise UsageError(f"usage: unknown target {target_name!r} (configured: {', '.join(names)})")
    target = cfg.target(target_name)
    rep = TickReport(action="plan", started_at=iso(services.clock.now()), request_id=request_id, dry_run=True)
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
    shown = mask(plan)
    rep.targets.append(TargetReport(
        target=target.name, status=Status.OK if plan["ok"] else Status.WARNING,
        recovery={"summary": render(shown)},
    ))
    rep.data = {"plan": shown}
    rep.finished_at = iso(services.clock.now())
    return rep
