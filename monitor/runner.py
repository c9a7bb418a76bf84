"""Run a target's checks in parallel, each under a hard deadline.

Every check gets its own deadline (its timeout × attempts plus retry delays, never past the
tick's). The runner waits for each result until that deadline plus a grace period; a check
that overruns it (a bug, a driver that ignores its timeout) becomes UNKNOWN: sentinel
cannot judge, so it will not act. The thread is abandoned, never joined, so the tick
itself cannot hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace

from checks import registry
from checks.base import CheckConfig, CheckContext, CheckResult, Deadline, Status

GRACE_S = 1.0


def check_budget(cfg: CheckConfig) -> float:
    attempts = int(getattr(cfg, "attempts", 1))
    delay = float(getattr(cfg, "retry_delay_s", 0.0))
    return cfg.timeout_s * attempts + delay * (attempts - 1) + 0.5


def run_checks(
    checks: Sequence[CheckConfig],
    make_ctx: Callable[[Deadline], CheckContext],
    deadline: Deadline,
) -> list[CheckResult]:
    if not checks:
        return []
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="check")
    try:
        jobs = []
        for cfg in checks:
            own = deadline.sooner(check_budget(cfg))
            jobs.append((cfg, own, pool.submit(_run_one, cfg, make_ctx(own))))
        results = []
        for cfg, own, fut in jobs:
            try:
                results.append(fut.result(timeout=own.remaining() + GRACE_S))
            except FutureTimeout:
                results.append(CheckResult(
                    cfg.name, str(cfg.type), Status.UNKNOWN,
                    f"check did not finish within its deadline ({check_budget(cfg):.1f} s)",
                    error_kind="timeout",
                ))
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_one(cfg: CheckConfig, ctx: CheckContext) -> CheckResult:
    started = time.monotonic()
    type_name = str(cfg.type)
    if ctx.deadline.expired():
        return CheckResult(cfg.name, type_name, Status.UNKNOWN, "no time left in this invocation to run the check",
                           error_kind="timeout")
    try:
        result = registry.build(cfg).run(ctx)
    except Exception as exc:
        return CheckResult(
            cfg.name, type_name, Status.UNKNOWN, f"check crashed: {type(exc).__name__}: {exc}"[:300],
            latency_ms=(time.monotonic() - started) * 1000, error_kind="internal",
        )
    if not result.latency_ms:  # a check that does not time itself: the whole run() is its latency
        result = replace(result, latency_ms=(time.monotonic() - started) * 1000)
    return result
