"""The TickReport: what one tick saw, decided and did. Returned by the Lambda, printed by
the CLI (``--json``), and the source of the exit code."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from checks.base import CheckResult, Status

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3


@dataclass
class TargetReport:
    target: str
    status: Status = Status.UNKNOWN
    checks: list[CheckResult] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    actions: list[str] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    state_version: int | None = None
    # Facts about this run that do not change its verdict (e.g. ``check`` with the state table
    # unreadable): shown, never turned into an exit code.
    notes: list[str] = field(default_factory=list)
    # Pages to this target SNS has not accepted yet, kept in its state and retried every tick.
    pages_pending: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "status": self.status.name,
            "checks": [c.to_dict() for c in self.checks],
            "decision": self.decision,
            "recovery": self.recovery,
            "actions": self.actions,
            "skipped": self.skipped,
            "error": self.error,
            "state_version": self.state_version,
            "notes": self.notes,
        }
        if self.pages_pending:
            out["pages_pending"] = self.pages_pending
        return out


@dataclass
class TickReport:
    action: str
    started_at: str
    finished_at: str = ""
    duration_ms: float = 0.0
    request_id: str | None = None
    dry_run: bool = False
    targets: list[TargetReport] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    data: dict[str, Any] | None = None  # action-specific payload (status, silence, ...)

    @property
    def exit_code(self) -> int:
        if self.errors and not self.targets:
            return EXIT_USAGE if any(e.startswith(("usage:", "config:")) for e in self.errors) else EXIT_UNKNOWN
        statuses = [t.status for t in self.targets if t.skipped is None]
        if any(t.error for t in self.targets) or self.errors:
            return EXIT_UNKNOWN if not any(s in (Status.WARNING, Status.CRITICAL) for s in statuses) else EXIT_PROBLEM
        if any(s in (Status.WARNING, Status.CRITICAL) for s in statuses):
            return EXIT_PROBLEM
        if any(s == Status.UNKNOWN for s in statuses):
            return EXIT_UNKNOWN
        return EXIT_OK

    @property
    def status(self) -> str:
        return {EXIT_OK: "ok", EXIT_PROBLEM: "problem", EXIT_USAGE: "error", EXIT_UNKNOWN: "unknown"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "action": self.action,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": round(self.duration_ms, 1),
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "targets": [t.to_dict() for t in self.targets],
            "notifications": self.notifications,
            "metrics": self.metrics,
            "errors": self.errors,
        }
        if self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)
