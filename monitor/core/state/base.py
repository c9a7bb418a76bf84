"""The state store contract (DESIGN §6), shared by the DynamoDB and in-memory stores.

Single-table layout, ``pk = target#<name>``:

- ``sk = state``: the versioned :class:`TargetState`; writes are conditional on the version
  *and* on the caller still holding the lease (fencing token), so a paused invocation that
  lost its lease cannot overwrite a newer decision.
- ``sk = lease``: owner, expiry and a fencing token that grows on every acquisition.
- ``sk = event#<iso-ts>#<seq>``: the audit log (TTL attribute ``expires_at``).
- ``sk = sample#<check>``: counter samples for rate checks.
- ``sk = spec``: the last known good cluster spec.

Any failure to read or write surfaces as :class:`~monitor.core.errors.StateError`; callers fail
closed (no destructive action, UNKNOWN, page).
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

EVENT_TTL_DAYS = 90


@dataclass
class Lease:
    target: str
    owner: str
    token: int
    expires_at: float  # epoch seconds


@dataclass
class TargetState:
    """Everything sentinel remembers about one target between ticks."""

    version: int = 0
    consecutive_failures: int = 0  # the longest of ``streaks`` (kept for reports and metrics)
    consecutive_unknown: int = 0
    # Consecutive CRITICAL results per trigger check (``recovery.when.checks``).
    streaks: dict[str, int] = field(default_factory=dict)
    # When (ISO) each check's streak was last added to: a CRITICAL look sooner than
    # ``recovery.when.min_gap_s`` after it is reported but not counted (monitor/policy.py).
    streak_at: dict[str, str] = field(default_factory=dict)
    # Flap detection per check (monitor/flap.py): {"looks": "OCOC…" (oldest first), "at": ISO of
    # the last recorded look, "share": weighted state change, "since": ISO while flapping,
    # "paged": ISO once the flapping page went out}.
    flap: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_tick_at: str | None = None
    last_decision: str | None = None
    last_results: list[dict[str, Any]] = field(default_factory=list)
    failing_since: str | None = None
    # Manual silences (CLI / event); config silences live in the config file.
    silences: list[dict[str, Any]] = field(default_factory=list)
    # Set when automation gave up; cleared only by `sentinel ack`.
    escalated: dict[str, Any] | None = None
    # The recovery runbook's persisted record (owned by recover/); None when idle.
    incident: dict[str, Any] | None = None
    # ISO timestamps of relaunch (replace rung) starts, for the budget.
    recoveries: list[str] = field(default_factory=list)
    # ISO timestamps of other rungs' starts, per rung (``restart_service``), for their budgets.
    rung_uses: dict[str, list[str]] = field(default_factory=dict)
    # Incidents a rung ended (DONE, recovered), newest last, bounded: {rung, at, incident,
    # diagnostics (one line)}; written in the same conditional write as the DONE it records, so
    # a lost write loses both and the re-driven DONE writes it again (deduplicated by incident).
    fixes: list[dict[str, Any]] = field(default_factory=list)
    # Rungs skipped because they keep fixing this target (recovery.limits.recurring, then:
    # pause): rung name → {at, reason, incidents}; cleared only by `sentinel ack`.
    paused_rungs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What was paged last (to page on change, not on every tick).
    last_page: dict[str, Any] | None = None
    # A delayed follow-up (a re-check of a first failure, or the next advance of a recovery)
    # is queued and due until then (ISO); none is queued again before it, so at most one is
    # pending per target (monitor/queue.py).
    recheck_pending_until: str | None = None
    # Pages SNS has not accepted yet (monitor.notify.pending_entry), oldest first: every tick
    # sends them again until SNS takes them (a page is never recorded as sent when it was not).
    pending_pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active_incident(self) -> dict[str, Any] | None:
        """{id, phase} of an incident still running (not DONE/ESCALATED), else None."""
        inc = self.incident
        if not isinstance(inc, dict) or inc.get("phase") in (None, "DONE", "ESCALATED"):
            return None
        return {"id": inc.get("id"), "phase": inc.get("phase"), "since": inc.get("phase_started_at")}

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("version")
        return json.dumps(data, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, version: int) -> TargetState:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "version"}
        return cls(version=version, **known)


@dataclass
class Event:
    """An audit event: what happened to a target, when, and who or what did it."""

    at: str
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    actor: str = "sentinel"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateStore(abc.ABC):
    """Implemented by :class:`DynamoStateStore` and :class:`MemoryStateStore`."""

    @abc.abstractmethod
    def get(self, target: str) -> TargetState: ...

    @abc.abstractmethod
    def put(
        self,
        target: str,
        state: TargetState,
        *,
        lease: Lease | None,
        events: list[Event] | None = None,
        now: datetime,
    ) -> TargetState:
        """Write ``state`` if the stored version is still ``state.version`` and ``lease``
        (when given) is still the current lease. Returns the state with its new version.
        Raises ConflictError when either moved on."""

    @abc.abstractmethod
    def acquire_lease(self, target: str, owner: str, ttl_s: float, now: datetime) -> Lease:
        """Take the lease if free, expired or already ours; raises LeaseHeld otherwise."""

    @abc.abstractmethod
    def release_lease(self, lease: Lease) -> None: ...

    @abc.abstractmethod
    def events(self, target: str, limit: int = 50) -> list[Event]:
        """Newest first."""

    @abc.abstractmethod
    def get_item(self, target: str, sk: str) -> dict[str, Any] | None:
        """A free-form JSON document (``sample#<check>``, ``spec``)."""

    @abc.abstractmethod
    def put_item(self, target: str, sk: str, data: dict[str, Any], *, lease: Lease | None) -> None: ...

    @abc.abstractmethod
    def active_incidents(self) -> dict[str, dict[str, Any]]:
        """Every target with an incident that is not DONE/ESCALATED: {target: {id, phase}}.
        Finds incidents of targets no longer in the config (orphans)."""

    # Convenience names used by checks and recovery.
    def get_sample(self, target: str, check: str) -> dict[str, Any] | None:
        return self.get_item(target, f"sample#{check}")

    def put_sample(self, target: str, check: str, sample: dict[str, Any], *, lease: Lease | None) -> None:
        self.put_item(target, f"sample#{check}", sample, lease=lease)

    def get_spec(self, target: str) -> dict[str, Any] | None:
        return self.get_item(target, "spec")

    def put_spec(self, target: str, spec: dict[str, Any], *, lease: Lease | None) -> None:
        self.put_item(target, "spec", spec, lease=lease)
