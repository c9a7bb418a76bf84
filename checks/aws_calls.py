"""AWS call helpers shared by ``route53_health``, ``dns_query_rate`` and ``emr_state``.

Why a retry loop on top of botocore's own: botocore's standard retry mode gives up after a
fixed number of attempts and knows nothing of the check's deadline. A throttled read-only API
(ListClusters, GetHealthCheckStatus) usually succeeds a second later, so a few more tries are
worth it — but never past ``ctx.deadline``: a check that overruns becomes UNKNOWN anyway and
delays the whole tick. Only throttling codes are retried; anything else is permanent for this
tick and surfaces at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from checks.base import CheckContext, Deadline, Status
from monitor.core.aws import THROTTLING_CODES, error_code

T = TypeVar("T")

# Full-jitter exponential backoff (AWS Architecture Blog): sleep U(0, min(cap, base * 2**n)).
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
MAX_ATTEMPTS = 6
# Leave this much of the deadline for the call itself after a sleep.
MIN_CALL_BUDGET_S = 0.1

# Severity order for combining a primary verdict with a secondary one: a measured CRITICAL
# beats "could not measure a detail", which beats WARNING and OK.
_RANK = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(*statuses: Status) -> Status:
    return max(statuses, key=lambda s: _RANK[s])


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def call_with_backoff(
    fn: Callable[[], T],
    deadline: Deadline,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a throttling error sleep with full jitter and retry.

    Re-raises the last error when attempts run out or when the next sleep (plus a minimal
    budget for the call) would cross ``deadline`` — it never sleeps past the deadline.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            attempt += 1
            if not is_throttling(exc) or attempt >= max_attempts:
                raise
            delay = random.uniform(0.0, min(cap_s, base_s * 2 ** (attempt - 1)))
            if delay + MIN_CALL_BUDGET_S >= deadline.remaining():
                raise
            sleep(delay)


def regional_client(ctx: CheckContext, service: str, region: str | None = None) -> Any:
    """``ctx.clients.client(service, region)`` (None: the config's region)."""
    return ctx.clients.client(service, region)


def configured_region(ctx: CheckContext) -> str | None:
    """The region clients default to (ClientFactory.region), when the factory tells."""
    region = getattr(ctx.clients, "region", None)
    return region if isinstance(region, str) else None


def api_error_summary(what: str, exc: BaseException) -> str:
    return f"{what} failed: {error_code(exc)}: {str(exc)[:200]}"
