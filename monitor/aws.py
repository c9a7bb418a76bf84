"""The one place boto3 clients are made. Never at import time; tests pass moto-backed ones.

Clients are cached per (service, region) for the life of the factory (a warm Lambda
container keeps its factory), created under a lock because boto3 client creation is not
thread-safe and the tick runs targets on a thread pool.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config as BotoConfig


class ClientFactory:
    def __init__(
        self,
        region: str,
        *,
        profile: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_attempts: int = 3,
    ) -> None:
        import boto3

        self.region = region
        self.endpoint_url = endpoint_url
        self._session = session or boto3.session.Session(profile_name=profile)
        self._config = BotoConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        return self._cached("client", service, region)

    def resource(self, service: str, region: str | None = None) -> Any:
        """A boto3 resource (credstash wants a DynamoDB resource, not a client)."""
        return self._cached("resource", service, region)

    def _cached(self, kind: str, service: str, region: str | None) -> Any:
        key = (f"{kind}:{service}", region or self.region)
        with self._lock:
            if key not in self._clients:
                kwargs: dict[str, Any] = {"region_name": key[1], "config": self._config}
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
