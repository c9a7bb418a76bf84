"""Secret providers (credstash in moto first), the warm-container TTL cache, refresh."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import credstash
import pytest
from moto import mock_aws

from monitor.core.aws import ClientFactory
from monitor.core.errors import SecretError
from monitor.core.secrets import Credentials, SecretCache, SecretResolver

PASSWORD = "s3cr3t-Pa55word!"  # noqa: S105 - test value


@pytest.fixture
def aws() -> Iterator[ClientFactory]:
    with mock_aws():
        credstash.reset_sessions() if hasattr(credstash, "reset_sessions") else None
        factory = ClientFactory("us-east-1")
        kms = factory.client("kms")
        key = kms.create_key(Description="credstash")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/credstash", TargetKeyId=key)
        credstash.createDdbTable(region="us-east-1", table="credential-store")
        credstash.putSecret("hive.rcapp.password", PASSWORD, version="1", region="us-east-1",
                            table="credential-store", context={"env": "prod"},
                            dynamodb=factory.resource("dynamodb"), kms=factory.client("kms"))
        yield factory


def creds(**kw: Any) -> Credentials:
    base = {"provider": "credstash", "username": "rcapp", "key": "hive.rcapp.password",
            "context": {"env": "prod"}, "region": "us-east-1"}
    base.update(kw)
    return Credentials.model_validate(base)


def test_credstash_secret_read_with_context(aws: ClientFactory) -> None:
    value = SecretResolver(aws).password(creds())
    assert value.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(value) and PASSWORD not in str(value)


def test_credstash_wrong_context_is_secret_error_without_value(aws: ClientFactory) -> None:
    with pytest.raises(SecretError) as info:
        SecretResolver(aws).password(creds(context={"env": "dev"}))
    assert "hive.rcapp.password" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_credstash_missing_key(aws: ClientFactory) -> None:
    with pytest.raises(SecretError, match="no secret 'nope'"):
        SecretResolver(aws).password(creds(key="nope"))


def test_secretsmanager_plain_and_json(aws: ClientFactory) -> None:
    sm = aws.client("secretsmanager")
    sm.create_secret(Name="hive/plain", SecretString=PASSWORD)
    sm.create_secret(Name="hive/json", SecretString=json.dumps({"password": PASSWORD}))
    r = SecretResolver(aws)
    assert r.password(creds(provider="secretsmanager", key="hive/plain")).get_secret_value() == PASSWORD
    assert r.password(creds(provider="secretsmanager", key="hive/json", json_key="password")).get_secret_value() == PASSWORD
    with pytest.raises(SecretError, match="ResourceNotFoundException"):
        r.password(creds(provider="secretsmanager", key="hive/none"))


def test_ssm_secure_string(aws: ClientFactory) -> None:
    aws.client("ssm").put_parameter(Name="/hive/pw", Value=PASSWORD, Type="SecureString")
    assert SecretResolver(aws).password(creds(provider="ssm", key="/hive/pw")).get_secret_value() == PASSWORD


def test_env_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_PW", PASSWORD)
    r = SecretResolver(clients=None)  # type: ignore[arg-type]
    assert r.password(creds(provider="env", key="HIVE_PW")).get_secret_value() == PASSWORD
    with pytest.raises(SecretError, match="'NOPE' is not set"):
        r.password(creds(provider="env", key="NOPE"))


def test_cache_hits_within_ttl_and_refetches_after() -> None:
    now = [0.0]
    cache = SecretCache(ttl_s=300, clock=lambda: now[0])
    values = iter(["one", "two", "three"])
    fetch = lambda: next(values)  # noqa: E731
    assert cache.get(("k",), fetch).get_secret_value() == "one"
    now[0] = 299
    assert cache.get(("k",), fetch).get_secret_value() == "one"
    now[0] = 301
    assert cache.get(("k",), fetch).get_secret_value() == "two"
    assert cache.get(("k",), fetch, refresh=True).get_secret_value() == "three"
    assert cache.fetches == 3


def test_failed_fetch_is_not_cached() -> None:
    cache = SecretCache()
    calls = []

    def fetch() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise SecretError("boom")
        return "ok"

    with pytest.raises(SecretError):
        cache.get(("k",), fetch)
    assert cache.get(("k",), fetch).get_secret_value() == "ok"


def test_resolver_caches_per_key(aws: ClientFactory) -> None:
    r = SecretResolver(aws)
    r.password(creds())
    r.password(creds())
    assert r.cache.fetches == 1
    r.password(creds(), refresh=True)
    assert r.cache.fetches == 2
    assert boto3  # clients came from the factory, not a global session
