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
from monitor.core.clock import iso
from monitor.core.errors import UsageError
from monitor.report import TargetReport, TickReport
from monitor.runtime import Services


def plan_report(services: Services, target_name: str | None, *, request_id: str | None = None,
                deadline: Deadline | None = None) -> TickReport:
    """The masked recovery plan of ``target_name`` (secret-looking values shown as ``****``)."""
    from recover.plan import plan_for, render

    cfg = services.config
    names = [t.name for t in cfg.targets]
    if not target_name or target_name not in names:
        raise UsageError(f"usage: unknown target {target_name!r} (configured: {', '.join(names)})")
    target = cfg.target(target_name)
    rep = TickReport(action="plan", started_at=iso(services.clock.now()), request_id=request_id, dry_run=True)
    shown = plan_for(services, target, deadline=deadline)
    rep.targets.append(TargetReport(
        target=target.name, status=Status.OK if shown["ok"] else Status.WARNING,
        recovery={"summary": render(shown)},
    ))
    rep.data = {"plan": shown}
    rep.finished_at = iso(services.clock.now())
    return rep
