"""HiveServer2 check: connect (TLS + SASL), open a session, run the health query, close.

(Skeleton: config model only; the driver code lands with the check implementation.)
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult
from monitor.secrets import Credentials


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: bool = True
    ca_file: str | None = None  # None: the system trust store
    server_hostname: str | None = None  # name to verify instead of ``host`` (e.g. an ELB's cert name)


class HiveServer2Config(CheckConfig):
    type: Literal["hiveserver2"]
    host: str = Field(min_length=1)
    port: int = Field(default=10000, ge=1, le=65535)
    query: str = Field(default="SHOW DATABASES", min_length=1)
    database: str = "default"
    # TLS is on unless written ``tls: false``; verification is on unless ``verify: false``.
    tls: TlsConfig | Literal[False] = Field(default_factory=TlsConfig)
    auth: Literal["CUSTOM", "LDAP", "NONE", "NOSASL"] = "CUSTOM"
    credentials: Credentials | None = None
    username: str | None = None  # for auth NONE/NOSASL (no password)
    attempts: int = Field(default=1, ge=1, le=10)
    retry_delay_s: float = Field(default=10.0, ge=0, le=300)

    @model_validator(mode="after")
    def _credentials_for_password_auth(self) -> HiveServer2Config:
        if self.auth in ("CUSTOM", "LDAP") and self.credentials is None:
            raise ValueError(f"credentials: required for auth {self.auth}")
        return self


class HiveServer2Check(Check):
    type: ClassVar[str] = "hiveserver2"
    config_model: ClassVar[type[CheckConfig]] = HiveServer2Config
    permissions: ClassVar[tuple[str, ...]] = ()  # + the secret provider's (monitor.secrets.PERMISSIONS)

    def run(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError("hiveserver2 check: not implemented yet")
