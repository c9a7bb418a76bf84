"""The Lambda entry point: event → request → tick → report. Thin by design.

Warm-container caches (config for a short TTL, boto3 clients, the secret cache) live in
``_WARM``; every invocation gets a fresh :class:`~monitor.runtime.Invocation`, so nothing
one invocation saw reaches the next except through the state table.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from aws_lambda_powertools import Logger

from checks.base import Deadline
from monitor import fanout, queue, triggers
from monitor.core.clock import SystemClock, iso
from monitor.core.errors import ConfigError, UsageError
from monitor.dispatch import dispatch
from monitor.events import Door, door_of, parse_event, refusal, sqs_records
from monitor.loader import ConfigCache, config_source
from monitor.plan_report import plan_report
from monitor.report import TickReport
from monitor.runtime import Services, build_services, new_invocation

logger = Logger(service="sentinel")

SAFETY_MARGIN_S = 10.0


class _Warm:
    """Per-container caches; an optimisation only."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configs = ConfigCache()
        self.services: Services | None = None

    def services_for(self, source: str) -> Services:
        config = self.configs.get(source)
        with self.lock:
            if self.services is None or self.services.config is not config:
                old = self.services
                self.services = build_services(config, clients=old.clients if old and old.config.region == config.region
                                               else None)
                if old is not None and old.config.region == config.region:
                    self.services.secrets = old.secrets
            return self.services


_WARM = _Warm()


def deadline_from(context: Any) -> Deadline:
    """Stop work with a margin before Lambda kills us (so the report and metrics go out)."""
    try:
        remaining = float(context.get_remaining_time_in_millis()) / 1000.0
    except (AttributeError, TypeError, ValueError):
        remaining = 300.0
    margin = min(SAFETY_MARGIN_S, remaining * 0.2)
    return Deadline.after(max(1.0, remaining - margin))


def _error_report(action: str, request_id: str | None, message: str) -> dict[str, Any]:
    rep = TickReport(action=action, started_at=iso(SystemClock().now()), request_id=request_id)
    rep.errors.append(message)
    rep.finished_at = rep.started_at
    return rep.to_dict()


def _short(value: Any, limit: int = 64) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def caller_identity(context: Any) -> dict[str, str]:
    """What Lambda itself says about the caller. Lambda does not hand a function the IAM
    principal that invoked it; what it gives is the Cognito identity (set by Lambda from the
    caller's Cognito credentials, so trustworthy) and the client context (sent by the caller,
    so as self-declared as ``requested_by``). The request id ties the invocation to
    CloudTrail's ``Invoke`` data event, which does name the IAM principal."""
    out: dict[str, str] = {}
    identity = getattr(context, "identity", None)
    for attr in ("cognito_identity_id", "cognito_identity_pool_id"):
        value = getattr(identity, attr, None)
        if value:
            out[attr] = _short(value)
    client = getattr(getattr(context, "client_context", None), "client", None)
    for attr in ("installation_id", "app_title"):
        value = getattr(client, attr, None)
        if value:
            out[f"client_{attr}"] = _short(value)
    return out


def who(requested_by: str | None, door: Door, request_id: str | None, caller: dict[str, str]) -> str:
    """The audit trail's "who": the self-declared name, marked as such, with the door and
    what Lambda knows (a name alone proves nothing: anyone may write "alice")."""
    parts = [f"via {door} door"]
    if request_id:
        parts.append(f"request {_short(request_id)}")
    if "cognito_identity_id" in caller:
        parts.append(f"cognito {caller['cognito_identity_id']}")
    if "client_installation_id" in caller:
        parts.append(f"client {caller['client_installation_id']} (self-declared)")
    return f"{_short(requested_by or 'anonymous', 128)} (self-declared; {', '.join(parts)})"


def _jsonable(report: dict[str, Any]) -> dict[str, Any]:
    """What Lambda will serialise: a value json cannot encode becomes its str, never a
    runtime error after the work is done."""
    out: dict[str, Any] = json.loads(json.dumps(report, default=str))
    return out


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Never raises: any failure becomes a report with an error and an exit code (a raise
    would make Lambda return a stack trace and, for async invokes, retry)."""
    request_id = getattr(context, "aws_request_id", None)
    request_id = _short(request_id) if request_id is not None else None
    try:
        return _jsonable(_handle(event, context, request_id))
    except Exception as exc:  # the last line of defence: report, never raise
        logger.exception("internal error")
        return _error_report("internal", request_id, f"internal error: {type(exc).__name__}: {_short(exc, 300)}")


def _handle(event: Any, context: Any, request_id: str | None) -> dict[str, Any]:
    deadline = deadline_from(context)
    door = door_of(context)
    try:
        source = config_source(None)
        config = _WARM.configs.get(source)
    except ConfigError as exc:
        logger.error("config invalid", extra={"errors": exc.errors})
        return _error_report("config", request_id,
                             "config: " + "; ".join(e.removeprefix("config: ") for e in exc.errors))
    records = sqs_records(event)
    if records is not None:  # the work queue: one internal tick per message (read-only door's `tick`)
        return queue.consume(records, config, lambda q: _queued_tick(q, source, door, request_id, deadline))
    if triggers.is_aws_event(event):  # EMR / alarm state changes: a tick of the targets they concern
        report = triggers.handle(event, config, lambda: _WARM.services_for(source), request_id=request_id,
                                 deadline=deadline)
        logger.info("event done", extra={"exit_code": report.exit_code, "data": report.data, "errors": report.errors})
        return report.to_dict()
    # The event is judged before any AWS client exists: a malformed or refused request
    # costs nothing and touches nothing.
    try:
        req = parse_event(event, config)
    except UsageError as exc:
        logger.error("malformed event", extra={"error": str(exc), "door": door})
        return _error_report("event", request_id, str(exc))
    refused = refusal(req, door)
    if refused:
        logger.warning("refused", extra={"action": req.action, "door": door})
        return _error_report(req.action, request_id, refused)
    services = _WARM.services_for(source)
    caller = caller_identity(context)
    requested_by = req.requested_by if req.source != "manual" else who(req.requested_by, door, request_id, caller)
    inv = new_invocation(services, request_id=request_id, dry_run=req.dry_run, emit_metrics=True,
                         requested_by=requested_by)
    logger.append_keys(action=req.action, source=req.source, door=door, requested_by=requested_by, caller=caller)
    try:
        if req.action == "plan":
            report = plan_report(services, req.target, request_id=request_id, deadline=deadline)
        elif queue.fans_out(inv, req):
            report = fanout.fan_out(inv, req, deadline)
        else:
            report = dispatch(inv, req, deadline)
    except UsageError as exc:
        return _error_report(req.action, request_id, str(exc))
    finally:
        inv.metrics.flush()
    for t in report.targets:
        logger.info("target", extra={"target": t.target, "status": t.status.name,
                                     "verdict": (t.decision or {}).get("verdict"), "skipped": t.skipped,
                                     "error": t.error, "actions": t.actions})
    logger.info("done", extra={"status": report.status, "exit_code": report.exit_code,
                               "duration_ms": round(report.duration_ms, 1)})
    return report.to_dict()


def _queued_tick(queued: queue.Queued, source: str, door: Door, request_id: str | None,
                 deadline: Deadline) -> TickReport:
    """One queued message: a tick of one target, refused like any event the door does not
    serve (the body is always a ``tick``, which the read-only door allows)."""
    req = queued.request
    refused = refusal(req, door)
    if refused:
        raise UsageError(refused)
    services = _WARM.services_for(source)
    inv = new_invocation(services, request_id=request_id, emit_metrics=True, requested_by="queue")
    inv.due_at = queued.due_at
    inv.queued_kind = queued.kind or None
    if queued.evidence:
        inv.evidence = {req.target or "": queued.evidence}
    try:
        report = dispatch(inv, req, deadline)
    finally:
        inv.metrics.flush()
    for t in report.targets:
        logger.info("target", extra={"target": t.target, "status": t.status.name, "message_id": queued.message_id,
                                     "verdict": (t.decision or {}).get("verdict"), "skipped": t.skipped,
                                     "error": t.error, "actions": t.actions})
    return report
