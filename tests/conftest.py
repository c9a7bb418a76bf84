"""Suite-wide safety: fake AWS credentials (boto3 can never reach AWS) and loopback only."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before anything imports boto3.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 - fake credentials for moto
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ["SENTINEL_LOOPBACK_ONLY"] = "1"
os.environ["POWERTOOLS_SERVICE_NAME"] = "sentinel"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Sentinel")

# Shared fixtures (fake_checks, ...) live in tests/fakes.py.
pytest_plugins = ["tests.fakes", "tests.hs2_fixtures"]


@pytest.fixture(autouse=True)
def _runbook_waits_are_not_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook's in-invocation waits (a restart's polls, VERIFY_PATH's polls, the claim
    tag's settle) go through ``recover.phases.SLEEP``. A test that does not replace it with
    its own simulated clock must not sleep for real: it is a no-op here (tests that care
    patch it again, which wins)."""
    from recover import phases

    monkeypatch.setattr(phases, "SLEEP", lambda seconds: None)



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (SENTINEL_REQUIRE_INTEGRATION=1) an integration test may not skip: a missing
    bind9 or Java there is a broken CI set-up, not a reason to go green."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (report.skipped and os.environ.get("SENTINEL_REQUIRE_INTEGRATION") == "1"
            and item.get_closest_marker("integration") is not None):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped in CI (SENTINEL_REQUIRE_INTEGRATION=1): {report.longrepr}"
