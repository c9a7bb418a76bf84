"""DNS query rate from counters (bind9 statistics channel or CloudWatch), as a rate between
this tick's sample and the previous one persisted in the state store."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult


class BindStatsSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bind_stats"]
    url: str = Field(pattern=r"^https?://")
    format: Literal["xml", "json"] = "xml"


class CloudWatchSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["cloudwatch"]
    namespace: str
    metric: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: Literal["Sum", "Maximum", "Average"] = "Sum"
    # drops: any increase is CRITICAL (e.g. ethtool_linklocal_allowance_exceeded); queries: a rate
    mode: Literal["drops", "queries"] = "drops"


Source = Annotated[BindStatsSource | CloudWatchSource, Field(discriminator="kind")]


class DnsQueryRateConfig(CheckConfig):
    type: Literal["dns_query_rate"]
    source: Source
    warn_per_s: float = Field(default=700, gt=0)
    # The VPC resolver drops packets above 1024/s per network interface.
    critical_per_s: float = Field(default=900, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DnsQueryRateConfig:
        if self.warn_per_s > self.critical_per_s:
            raise ValueError("warn_per_s: must be <= critical_per_s")
        return self


class DnsQueryRateCheck(Check):
    type: ClassVar[str] = "dns_query_rate"
    config_model: ClassVar[type[CheckConfig]] = DnsQueryRateConfig
    permissions: ClassVar[tuple[str, ...]] = ("cloudwatch:GetMetricStatistics",)

    def run(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError("dns_query_rate check: not implemented yet")
