"""Proof that a code path made no AWS call: every boto3 client made and every botocore API
call is recorded, and the call fails. A test that ends with an empty list made none."""

from __future__ import annotations

from typing import Any

import pytest


def forbid_aws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import boto3
    from botocore.client import BaseClient

    made: list[str] = []

    def api_call(self: Any, operation: str, params: Any) -> Any:
        made.append(f"call {operation}")
        raise AssertionError(f"AWS call {operation} made")

    real_client = boto3.session.Session.client

    def client(self: Any, service: str, *a: Any, **k: Any) -> Any:
        made.append(f"client {service}")
        return real_client(self, service, *a, **k)

    monkeypatch.setattr(BaseClient, "_make_api_call", api_call)
    monkeypatch.setattr(boto3.session.Session, "client", client)
    return made
