"""Route 53 health check status: the fraction of Route 53 checkers that report success."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from checks.base import Check, CheckConfig, CheckContext, CheckResult


class Route53HealthConfig(CheckConfig):
    type: Literal["route53_health"]
    health_check_id: str = Field(min_length=1)
    # Route 53's own rule: healthy when more than 18% of checkers say so.
    min_healthy_fraction: float = Field(default=0.18, ge=0, le=1)
    # Also read the HealthCheckStatus CloudWatch metric (published in us-east-1 only).
    cloudwatch_metric: bool = False


class Route53HealthCheck(Check):
    type: ClassVar[str] = "route53_health"
    config_model: ClassVar[type[CheckConfig]] = Route53HealthConfig
    permissions: ClassVar[tuple[str, ...]] = ("route53:GetHealthCheckStatus",)

    def run(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError("route53_health check: not implemented yet")
