"""The check plugin contract: what a check gets, what it returns, what it declares.

Checks only *read* the world. They return observations and a status; they never decide
about recovery (that is monitor.policy) and never change anything (that is recover/).
"""

from __future__ import annotations

import builtins
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from monitor.core.clock import Clock
    from monitor.core.resolve import HostResolver
    from monitor.core.secrets import SecretResolver
    from monitor.core.state.base import StateStore


class Status(enum.IntEnum):
    """Nagios semantics: the value is the plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class ErrorKind(str, enum.Enum):
    """Why a check failed. Only server-side kinds justify a relaunch (DESIGN §3)."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    # TLS/TCP accepted (by a load balancer), then closed before the protocol answered: no
    # healthy backend behind it (DESIGN §10).
    NO_BACKEND = "no_backend"
    QUERY = "query"
    # The name did not resolve (NXDOMAIN, no answer, resolver hung): CRITICAL because clients
    # cannot connect either, but a relaunch cannot fix it (not in ``recovery.when.kinds``).
    DNS = "dns"
    TLS = "tls"
    AUTH = "auth"
    CONFIG = "config"
    SECRET = "secret"  # noqa: S105 - an error kind, not a password
    API = "api"
    STATE = "state"

    @property
    def server_broken(self) -> bool:
        """The server (or the path to it) is broken: CRITICAL, and worth another attempt."""
        return self in (ErrorKind.TIMEOUT, ErrorKind.REFUSED, ErrorKind.NO_BACKEND, ErrorKind.QUERY)

    @property
    def critical(self) -> bool:
        """Clients are failing too: CRITICAL. ``dns`` is CRITICAL without being server-broken:
        clients cannot reach the service, but neither a retry nor a relaunch would help."""
        return self.server_broken or self is ErrorKind.DNS


@dataclass(frozen=True)
class CheckResult:
    name: str
    type: str
    status: Status
    summary: str
    observed: dict[str, Any] = field(default_factory=dict)
    latency_ms: float = 0.0
    error_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status.name,
            "summary": self.summary,
            "observed": self.observed,
            "latency_ms": round(self.latency_ms, 1),
            "error_kind": self.error_kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            status=Status[str(data["status"])],
            summary=str(data.get("summary", "")),
            observed=dict(data.get("observed") or {}),
            latency_ms=float(data.get("latency_ms", 0.0)),
            error_kind=data.get("error_kind"),
        )


class CheckConfig(BaseModel):
    """Fields every check has. Subclasses add theirs and a ``type`` Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str  # each check narrows it to a Literal of its registry name
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    timeout_s: float = Field(default=15.0, gt=0, le=600)


@dataclass
class Deadline:
    """An absolute monotonic deadline shared by everything in one check or tick."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def sooner(self, seconds: float) -> Deadline:
        return Deadline(min(self.expires_at, time.monotonic() + seconds))


class ClientSource(Protocol):
    def client(self, service: str, region: str | None = None) -> Any: ...


@dataclass(frozen=True)
class EndpointOverride:
    """Where VERIFY_NEW sends a check: the new master's private name, and (from
    ``recovery.verify.master``) the master's own port and TLS settings. ``None`` keeps the
    check's own value. ``tls`` is a partial mapping (verify, ca_file, server_hostname) or
    ``False`` for plaintext."""

    host: str
    port: int | None = None
    tls: dict[str, Any] | Literal[False] | None = None


@dataclass
class CheckContext:
    """Everything a check may use. Built per target per tick; nothing global."""

    target: str
    cluster: Any  # the target's ClusterRef (.name or .id)
    clients: ClientSource
    secrets: SecretResolver
    resolver: HostResolver
    store: StateStore
    clock: Clock
    deadline: Deadline
    # Overrides for verification against a specific host (recovery VERIFY_NEW).
    host_override: str | None = None
    # VERIFY_NEW: the new master's own endpoint (``recovery.verify.master``): its port and TLS
    # settings replace the check's (which describe the load balancer's listener).
    endpoint: EndpointOverride | None = None
    # How a primary is reached directly (``recovery.verify.master``'s port and TLS; the host is
    # filled per primary): what a ``per_primary`` check uses. None: the check's own port and TLS.
    primary_endpoint: EndpointOverride | None = None
    # What the tick knows about the path (filled by ``monitor.cycle``; a check never reads the
    # state table for it, and both stay empty when the table is unreadable).
    # ``behind_load_balancer``: the target routes through a load balancer (``recovery.routing``),
    # so an EOF right after TLS means "no healthy backend", not a settings mismatch.
    # ``last_ok_settings``: check name -> the settings fingerprint (``observed["settings"]``) of
    # its previous saved result when that was OK: a check that passed with the same settings
    # cannot suddenly have a settings mismatch either.
    behind_load_balancer: bool = False
    last_ok_settings: Mapping[str, str] = field(default_factory=dict)
    # Facts a check learns for others (e.g. emr_state records the master instance).
    facts: dict[str, Any] = field(default_factory=dict)


class Check:
    """Base class of a check plugin.

    ``type`` is the YAML name, ``config_model`` the pydantic model of its block and
    ``permissions`` the IAM actions it calls (used to build and audit the IAM policy).
    """

    type: ClassVar[str]
    config_model: ClassVar[builtins.type[CheckConfig]]
    permissions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: CheckConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def run(self, ctx: CheckContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def result(
        self,
        status: Status,
        summary: str,
        *,
        observed: dict[str, Any] | None = None,
        latency_ms: float = 0.0,
        error_kind: ErrorKind | str | None = None,
    ) -> CheckResult:
        kind = error_kind.value if isinstance(error_kind, ErrorKind) else error_kind
        return CheckResult(
            name=self.config.name,
            type=self.type,
            status=status,
            summary=summary,
            observed=observed or {},
            latency_ms=latency_ms,
            error_kind=kind,
        )
