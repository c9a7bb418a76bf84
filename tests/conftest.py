"""Suite-wide safety: fake AWS credentials (boto3 can never reach AWS) and loopback only."""

from __future__ import annotations

import os

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
pytest_plugins = ["tests.fakes"]
