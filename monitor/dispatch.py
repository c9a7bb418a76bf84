"""Route a :class:`Request` to the code that serves it. Shared by the handler and the CLI."""

from __future__ import annotations

from checks.base import Deadline
from monitor import actions
from monitor.core.errors import UsageError
from monitor.cycle import run_tick
from monitor.events import Request
from monitor.report import TickReport
from monitor.runtime import Invocation


def dispatch(inv: Invocation, req: Request, deadline: Deadline) -> TickReport:
    if req.action in ("tick", "check", "recover"):
        return run_tick(inv, deadline=deadline, targets=req.target_names(), action=req.action, force=req.force)
    if req.action in ("approve", "deny"):
        answering = {k: v for k, v in (("rung", req.rung), ("incident", req.incident)) if v}
        return run_tick(inv, deadline=deadline, targets=req.target_names(), action=req.action, reason=req.reason or "",
                        answering=answering)
    if req.action == "abort":
        return run_tick(inv, deadline=deadline, targets=req.target_names(), action="abort", reason=req.reason or "")
    if req.action == "status":
        return actions.status(inv, req.target_names())
    if req.action == "silence":
        return actions.silence(inv, req.target, req.duration or "", req.reason or "", actions_only=req.actions_only)
    if req.action == "unsilence":
        return actions.unsilence(inv, req.target, reason=req.reason)
    if req.action == "ack":
        return actions.ack(inv, req.target, reason=req.reason)
    raise UsageError(f"usage: action {req.action!r} is not served here")
