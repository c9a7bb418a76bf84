"""What the recovery runbook receives from the tick: config, clients, the lease it must
fence every write with, time left, and a way to run the target's checks (for VERIFY_*)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.base import CheckResult, ClientSource, Deadline, EndpointOverride
from monitor.config import Config, Target
from monitor.core.clock import Clock
from monitor.core.outages import OutageNotes
from monitor.core.resolve import HostResolver
from monitor.core.state.base import Lease, StateStore, TargetState
from monitor.metrics import MetricsRecorder
from monitor.notify import Notifier
from recover.claim import deployment_id

# run_checks(names, endpoint) -> results; ``endpoint`` points the checks at a new master
# (VERIFY_NEW), None runs them as configured (the normal path).
RunChecks = Callable[[Sequence[str], EndpointOverride | None], list[CheckResult]]


@dataclass
class RecoveryContext:
    config: Config
    target: Target
    clients: ClientSource
    store: StateStore
    lease: Lease | None
    clock: Clock
    deadline: Deadline
    resolver: HostResolver
    notifier: Notifier
    metrics: MetricsRecorder
    run_checks: RunChecks
    dry_run: bool = False
    requested_by: str | None = None
    log: Callable[..., None] = field(default=lambda *a, **k: None)
    # The invocation's outage notes (monitor.core.outages): a page that needs a state write it
    # cannot make (the stall marker) is paged through them, once per outage. None: paged at once.
    outages: OutageNotes | None = None
    # This deployment's id (recover.claim): the claim tag names it, so two deployments watching
    # one cluster never both act on it.
    deployment: str = field(default_factory=deployment_id)
    # Secret values this invocation knows (the checks' passwords, from the secrets cache):
    # masked out of what DIAGNOSE keeps, whatever name they appear under.
    secrets: Callable[[], list[str]] = field(default=lambda: [])


@dataclass
class RecoveryResult:
    """The latest persisted state, and what this call did (for the TickReport)."""

    state: TargetState
    report: dict[str, Any]
