"""The Lambda entry point: event → request → tick → report. Thin by design.

Warm-container caches (config for a short TTL, boto3 clients, the secret cache) live in
``_WARM``; every invocation gets a fresh :class:`~monitor.runtime.Invocation`, so nothing
one invocation saw reaches the next except through the state table.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger

from checks.base import Deadline
from monitor.clock import SystemClock, iso
from monitor.dispatch import dispatch
from monitor.errors import ConfigError, UsageError
from monitor.events import parse_event
from monitor.loader import ConfigCache, config_source
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


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None)
    deadline = deadline_from(context)
    try:
        services = _WARM.services_for(config_source(None))
    except ConfigError as exc:
        logger.error("config invalid", extra={"errors": exc.errors})
        return _error_report("config", request_id, "config: " + "; ".join(exc.errors))
    try:
        req = parse_event(event, services.config)
    except UsageError as exc:
        logger.error("malformed event", extra={"error": str(exc)})
        return _error_report("event", request_id, str(exc))
    inv = new_invocation(services, request_id=request_id, dry_run=req.dry_run, emit_metrics=True,
                         requested_by=req.requested_by)
    logger.append_keys(action=req.action, source=req.source)
    try:
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
