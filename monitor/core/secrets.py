"""Secrets: a provider per store, one TTL cache per warm container, nothing ever logged.

credstash is the default (the seed's choice: the password lives in a DynamoDB table,
encrypted with KMS). Values are handed around as ``pydantic.SecretStr`` so an accidental
``repr``/log line shows ``**********``. After an auth failure the caller asks for a
refetch once (the password may just have been rotated).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.core.errors import SecretError


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["credstash", "secretsmanager", "ssm", "env"] = "credstash"
    username: str = Field(min_length=1)
    key: str = Field(min_length=1)
    table: str = "credential-store"  # credstash only
    region: str | None = None
    context: dict[str, str] = Field(default_factory=dict)  # credstash encryption context
    version: str | None = None  # credstash version / secretsmanager VersionId
    json_key: str | None = None  # secretsmanager: read this field of a JSON secret

    def cache_key(self) -> tuple[Any, ...]:
        context = tuple(sorted(self.context.items()))
        return (self.provider, self.key, self.table, self.region, context, self.version, self.json_key)


class ClientSource(Protocol):
    def client(self, service: str, region: str | None = None) -> Any: ...

    def resource(self, service: str, region: str | None = None) -> Any: ...


def _fetch_credstash(creds: Credentials, clients: ClientSource) -> str:
    import credstash  # lazy: pulls in cryptography

    try:
        value = credstash.getSecret(
            creds.key,
            version=creds.version or "",
            region=creds.region,
            table=creds.table,
            context=dict(creds.context) or None,
            dynamodb=clients.resource("dynamodb", creds.region),
            kms=clients.client("kms", creds.region),
        )
    except credstash.ItemNotFound:
        raise SecretError(f"credstash: no secret {creds.key!r} in table {creds.table!r}") from None
    except credstash.KmsError:
        raise SecretError(
            f"credstash: KMS could not decrypt {creds.key!r} (wrong encryption context or no kms:Decrypt)"
        ) from None
    except credstash.IntegrityError:
        raise SecretError(f"credstash: integrity check failed for {creds.key!r} (wrong context?)") from None
    except Exception as exc:  # botocore errors, network
        raise SecretError(f"credstash: cannot read {creds.key!r}: {type(exc).__name__}") from None
    return str(value)


def _fetch_secretsmanager(creds: Credentials, clients: ClientSource) -> str:
    import json

    kwargs: dict[str, Any] = {"SecretId": creds.key}
    if creds.version:
        kwargs["VersionId"] = creds.version
    try:
        resp = clients.client("secretsmanager", creds.region).get_secret_value(**kwargs)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SecretError(f"secretsmanager: cannot read {creds.key!r}: {code}") from None
    text = str(resp.get("SecretString", ""))
    if creds.json_key:
        try:
            return str(json.loads(text)[creds.json_key])
        except (ValueError, KeyError, TypeError):
            raise SecretError(f"secretsmanager: {creds.key!r} has no JSON field {creds.json_key!r}") from None
    return text


def _fetch_ssm(creds: Credentials, clients: ClientSource) -> str:
    try:
        resp = clients.client("ssm", creds.region).get_parameter(Name=creds.key, WithDecryption=True)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SecretError(f"ssm: cannot read parameter {creds.key!r}: {code}") from None
    return str(resp["Parameter"]["Value"])


def _fetch_env(creds: Credentials, clients: ClientSource) -> str:
    try:
        return os.environ[creds.key]
    except KeyError:
        raise SecretError(f"env: variable {creds.key!r} is not set") from None


PROVIDERS: dict[str, Callable[[Credentials, ClientSource], str]] = {
    "credstash": _fetch_credstash,
    "secretsmanager": _fetch_secretsmanager,
    "ssm": _fetch_ssm,
    "env": _fetch_env,
}

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "credstash": ("dynamodb:GetItem", "dynamodb:Query", "kms:Decrypt"),
    "secretsmanager": ("secretsmanager:GetSecretValue",),
    "ssm": ("ssm:GetParameter", "kms:Decrypt"),
    "env": (),
}


class SecretCache:
    """A per-container TTL cache. An optimisation only: a miss just fetches again."""

    def __init__(self, ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: dict[tuple[Any, ...], tuple[float, SecretStr]] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, key: tuple[Any, ...], fetch: Callable[[], str], *, refresh: bool = False) -> SecretStr:
        now = self._clock()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and not refresh and now - hit[0] < self.ttl_s:
                return hit[1]
        value = SecretStr(fetch())
        with self._lock:
            self.fetches += 1
            self._items[key] = (now, value)
        return value

    def known_values(self) -> list[str]:
        """Cached plaintexts, for the redactor that scrubs outgoing text (defence in depth)."""
        with self._lock:
            return [v.get_secret_value() for _, v in self._items.values()]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class SecretResolver:
    """What checks call: ``password(creds)``; ``refresh=True`` after an auth failure."""

    def __init__(self, clients: ClientSource, cache: SecretCache | None = None) -> None:
        self._clients = clients
        self.cache = cache if cache is not None else SecretCache()

    def password(self, creds: Credentials, *, refresh: bool = False) -> SecretStr:
        fetch = PROVIDERS[creds.provider]
        return self.cache.get(creds.cache_key(), lambda: fetch(creds, self._clients), refresh=refresh)
