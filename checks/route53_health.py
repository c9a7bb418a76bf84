"""Route 53 health check status: the fraction of Route 53 checkers that report success.

Route 53 itself calls an endpoint healthy when more than 18% of its checkers (one per checker
region and IP) report success, so a few failing regions are normal internet weather and only a
majority failure means the endpoint is down for Route 53's DNS failover. This check applies the
same rule with a configurable fraction, and names the failing regions so on-call can tell
"our server is down" from "one checker region cannot reach us".

Optionally it also reads the ``AWS/Route53 HealthCheckStatus`` CloudWatch metric (Minimum over
the last 5 minutes): it catches a flap that recovered between two ticks. Route 53 publishes it
**only in us-east-1**, whatever region sentinel runs in, so it is read there.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from checks.aws_calls import api_error_summary, call_with_backoff, configured_region, regional_client, worst
from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from monitor.core.aws import error_code

METRIC_REGION = "us-east-1"
METRIC_WINDOW = timedelta(minutes=5)


class Route53HealthConfig(CheckConfig):
    type: Literal["route53_health"]
    health_check_id: str = Field(min_length=1, max_length=64)
    # Route 53's own rule: healthy when more than 18% of checkers say so (strictly greater).
    min_healthy_fraction: float = Field(default=0.18, ge=0, le=1)
    # Also read the HealthCheckStatus CloudWatch metric (published in us-east-1 only).
    cloudwatch_metric: bool = False


class Route53HealthCheck(Check):
    type: ClassVar[str] = "route53_health"
    config_model: ClassVar[builtins.type[CheckConfig]] = Route53HealthConfig
    permissions: ClassVar[tuple[str, ...]] = ("route53:GetHealthCheckStatus", "cloudwatch:GetMetricStatistics")

    @property
    def cfg(self) -> Route53HealthConfig:
        assert isinstance(self.config, Route53HealthConfig)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:  # latency: measured by monitor.runner
        def done(status: Status, summary: str, observed: dict[str, Any], kind: ErrorKind | None = None) -> CheckResult:
            return self.result(status, summary, observed=observed, error_kind=kind)

        hc_id = self.cfg.health_check_id
        observed: dict[str, Any] = {"health_check_id": hc_id}
        route53 = regional_client(ctx, "route53")
        try:
            response = call_with_backoff(lambda: route53.get_health_check_status(HealthCheckId=hc_id), ctx.deadline)
        except Exception as exc:
            code = error_code(exc)
            observed["error_code"] = code
            if code in ("NoSuchHealthCheck", "InvalidInput"):
                return done(Status.UNKNOWN, f"health check {hc_id!r} not found ({code}): check health_check_id",
                            observed, ErrorKind.CONFIG)
            return done(Status.UNKNOWN, api_error_summary("route53 GetHealthCheckStatus", exc), observed, ErrorKind.API)

        status, summary = self._judge(response.get("HealthCheckObservations") or [], observed)
        kind: ErrorKind | None = None
        if self.cfg.cloudwatch_metric:
            status, summary, kind = self._with_metric(ctx, status, summary, observed)
        return done(status, summary, observed, kind)

    def _judge(self, observations: list[dict[str, Any]], observed: dict[str, Any]) -> tuple[Status, str]:
        total = len(observations)
        failing = [
            {"region": o.get("Region"), "ip": o.get("IPAddress"), "status": (o.get("StatusReport") or {}).get("Status", "")}
            for o in observations
            if not str((o.get("StatusReport") or {}).get("Status", "")).startswith("Success")
        ]
        healthy = total - len(failing)
        observed.update(checkers_total=total, checkers_healthy=healthy, failing=failing,
                        min_healthy_fraction=self.cfg.min_healthy_fraction)
        if total == 0:
            observed["fraction"] = None
            return Status.UNKNOWN, "Route 53 returned no checker observations: health cannot be judged"
        fraction = healthy / total
        observed["fraction"] = round(fraction, 4)
        text = f"{healthy}/{total} Route 53 checkers healthy ({fraction:.0%})"
        if fraction > self.cfg.min_healthy_fraction:
            if failing:
                text += "; failing: " + ", ".join(sorted({str(f["region"]) for f in failing}))
            return Status.OK, text
        regions = ", ".join(sorted({str(f["region"]) for f in failing}))
        sample = str(failing[0]["status"])[:120] if failing else ""
        return (Status.CRITICAL,
                f"{text}, need more than {self.cfg.min_healthy_fraction:.0%}; failing in {regions}: {sample}")

    def _with_metric(
        self, ctx: CheckContext, status: Status, summary: str, observed: dict[str, Any]
    ) -> tuple[Status, str, ErrorKind | None]:
        """Fold the HealthCheckStatus metric (us-east-1) into the verdict."""
        region = configured_region(ctx)
        observed["cloudwatch_region"] = METRIC_REGION
        where = ""
        if region is not None and region != METRIC_REGION:
            observed["cloudwatch_note"] = (
                f"HealthCheckStatus is published only in {METRIC_REGION}; read there although the config region is {region}"
            )
            where = f" (read in {METRIC_REGION}, config region {region})"
        now = ctx.clock.now()
        cloudwatch = regional_client(ctx, "cloudwatch", METRIC_REGION)
        request = {
            "Namespace": "AWS/Route53",
            "MetricName": "HealthCheckStatus",
            "Dimensions": [{"Name": "HealthCheckId", "Value": self.cfg.health_check_id}],
            "StartTime": now - METRIC_WINDOW,
            "EndTime": now,
            "Period": 60,
            "Statistics": ["Minimum"],
        }
        try:
            points = call_with_backoff(lambda: cloudwatch.get_metric_statistics(**request), ctx.deadline)["Datapoints"]
        except Exception as exc:
            observed["cloudwatch_error"] = error_code(exc)
            new = worst(status, Status.UNKNOWN)
            return new, f"{summary}; {api_error_summary('cloudwatch GetMetricStatistics' + where, exc)}", ErrorKind.API
        if not points:
            observed["metric_min_5m"] = None
            return status, f"{summary}; no HealthCheckStatus datapoints in the last 5 min{where}", None
        minimum = min(float(p["Minimum"]) for p in points)
        observed["metric_min_5m"] = minimum
        if minimum < 1 and status is Status.OK:
            return Status.WARNING, f"{summary}; but HealthCheckStatus was 0 (unhealthy) within the last 5 min{where}", None
        return status, f"{summary}; HealthCheckStatus min over 5 min = {minimum:g}{where}", None
