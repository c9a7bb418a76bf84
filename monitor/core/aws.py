"""The one place boto3 clients are made. Never at import time; tests pass moto-backed ones.

Clients are cached per (service, region, retries) for the life of the factory (a warm Lambda
container keeps its factory), created under a lock because boto3 client creation is not
thread-safe and the tick runs targets on a thread pool.

Every client has bounded timeouts: botocore's defaults (60 s connect, 60 s read, retried)
let one AWS endpoint that accepts and never answers hold ``sentinel check`` for minutes and
eat a Lambda tick's budget. Here a call gives up after at most ``max_attempts`` ×
(``connect_timeout`` + ``read_timeout``) plus the standard retry backoff; DynamoDB (the state
table, read before every verdict) is tighter still, so ``check`` and ``status`` answer within
10 s even when the table's endpoint hangs. ``retries=False`` gives a client that never
retries: for the calls that change the world (a retried RunJobFlow may launch twice).
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config as BotoConfig

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 2  # the first call included (botocore ``total_max_attempts``): one retry
# Per service (read timeout, attempts): reads whose answer is small and normally takes
# milliseconds, on the path of every verdict (the state table; the password: credstash reads
# DynamoDB and decrypts with KMS, or Secrets Manager / SSM).
SERVICE_LIMITS: dict[str, tuple[float, int]] = {
    "dynamodb": (2.0, 2), "kms": (3.0, 2), "secretsmanager": (3.0, 2), "ssm": (3.0, 2),
}


class ClientFactory:
    def __init__(
        self,
        region: str,
        *,
        profile: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        import boto3

        self.region = region
        self.endpoint_url = endpoint_url
        self._session = session or boto3.session.Session(profile_name=profile)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    def config(self, service: str, *, retries: bool = True) -> BotoConfig:
        """The botocore config of ``service``'s clients: bounded connect, read and retries."""
        read_timeout, attempts = SERVICE_LIMITS.get(service, (self._read_timeout, self._max_attempts))
        read_timeout = min(read_timeout, self._read_timeout)
        attempts = min(attempts, self._max_attempts) if retries else 1
        return BotoConfig(connect_timeout=self._connect_timeout, read_timeout=read_timeout,
                          retries={"total_max_attempts": attempts, "mode": "standard"})

    def client(self, service: str, region: str | None = None, *, retries: bool = True) -> Any:
        """A cached client. ``retries=False``: one attempt per call, for changing calls whose
        retry could act twice (the caller decides what to do about a lost answer)."""
        return self._cached("client", service, region, retries)

    def changing_client(self, service: str, region: str | None = None) -> Any:
        """The client for calls that change the world (``recover.calls``): no retries."""
        return self.client(service, region, retries=False)

    def resource(self, service: str, region: str | None = None) -> Any:
        """A boto3 resource (credstash wants a DynamoDB resource, not a client)."""
        return self._cached("resource", service, region, True)

    def _cached(self, kind: str, service: str, region: str | None, retries: bool) -> Any:
        key = (f"{kind}:{service}", region or self.region, retries)
        with self._lock:
            if key not in self._clients:
                kwargs: dict[str, Any] = {"region_name": key[1], "config": self.config(service, retries=retries)}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                self._clients[key] = getattr(self._session, kind)(service, **kwargs)
            return self._clients[key]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
     "TooManyRequestsException", "ProvisionedThroughputExceededException", "PriorRequestNotComplete"}
)
