"""The recovery runbook (DESIGN §7). Not implemented yet: the tick reports that."""

from __future__ import annotations

from monitor.errors import SentinelError
from monitor.state.base import TargetState
from recover.context import RecoveryContext, RecoveryResult


class RecoveryUnavailable(SentinelError):
    pass


def start(rctx: RecoveryContext, state: TargetState, *, reason: str, force: bool = False) -> RecoveryResult:
    raise RecoveryUnavailable("automatic recovery is not available yet")


def advance(rctx: RecoveryContext, state: TargetState) -> RecoveryResult:
    raise RecoveryUnavailable("automatic recovery is not available yet")


def is_active(state: TargetState) -> bool:
    return state.incident is not None and state.incident.get("phase") not in ("DONE", "ESCALATED", None)
