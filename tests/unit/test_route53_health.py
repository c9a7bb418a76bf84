"""route53_health against moto, with failing checker reports injected (moto always says Success)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from checks import registry
from checks.base import CheckContext, Deadline, Status
from checks.route53_health import Route53HealthCheck, Route53HealthConfig
from monitor.config import ClusterRef
from monitor.core.aws import ClientFactory
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.memory import MemoryStateStore

FAILURE = "Failure: Connection timed out. The endpoint or the internet connection is down"
REGIONS = ["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1"]


def make_ctx(factory: ClientFactory, deadline_s: float = 10.0) -> CheckContext:
    return CheckContext(
        target="prod-hive", cluster=ClusterRef(name="RC.HIVE.ADHOC"), clients=factory, secrets=SecretResolver(factory),
        resolver=HostResolver(), store=MemoryStateStore(), clock=SystemClock(), deadline=Deadline.after(deadline_s),
    )


def make_check(health_check_id: str, **kw: Any) -> Route53HealthCheck:
    return Route53HealthCheck(Route53HealthConfig(type="route53_health", name="hive-dns-health",
                                                  health_check_id=health_check_id, **kw))


def observations(healthy: int, failing: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(healthy + failing):
        ok = i < healthy
        out.append({
            "Region": REGIONS[i % len(REGIONS)],
            "IPAddress": f"15.177.{i}.1",
            "StatusReport": {
                "Status": "Success: HTTP Status Code 200, OK" if ok else FAILURE,
                "CheckedTime": now,
            },
        })
    return out


def inject(client: Any, healthy: int, failing: int) -> None:
    """Answer GetHealthCheckStatus with our observations instead of moto's all-Success."""
    def handler(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("https://route53.amazonaws.com", 200, {}, None), {
            "HealthCheckObservations": observations(healthy, failing)}
    client.meta.events.register("before-call.route53.GetHealthCheckStatus", handler)


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        factory = ClientFactory("us-east-1")
        hc = factory.client("route53").create_health_check(
            CallerReference="sentinel-test",
            HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "hive.internal.example.com", "Port": 443,
                               "ResourcePath": "/"},
        )
        yield factory, hc["HealthCheck"]["Id"]


def test_all_checkers_healthy_is_ok(aws: Any) -> None:
    factory, hc_id = aws
    r = make_check(hc_id).run(make_ctx(factory))
    assert r.status is Status.OK, r.summary
    assert r.observed["fraction"] == 1.0
    assert r.observed["checkers_total"] == r.observed["checkers_healthy"] >= 1
    assert r.observed["failing"] == []


def test_majority_failing_but_above_18_percent_is_ok_and_names_failing_regions(aws: Any) -> None:
    factory, hc_id = aws
    inject(factory.client("route53"), healthy=3, failing=13)  # 18.75% > 18%
    r = make_check(hc_id).run(make_ctx(factory))
    assert r.status is Status.OK, r.summary
    assert r.observed["checkers_healthy"] == 3 and r.observed["checkers_total"] == 16
    assert {f["region"] for f in r.observed["failing"]} <= set(REGIONS)
    assert "failing:" in r.summary


def test_at_or_below_the_fraction_is_critical_with_regions_and_status_text(aws: Any) -> None:
    factory, hc_id = aws
    inject(factory.client("route53"), healthy=9, failing=41)  # exactly 18%: Route 53 needs *more* than 18%
    r = make_check(hc_id).run(make_ctx(factory))
    assert r.status is Status.CRITICAL, r.summary
    assert r.observed["fraction"] == 0.18
    assert "Connection timed out" in r.summary
    assert r.observed["failing"][0]["status"].startswith("Failure")
    assert r.error_kind is None


def test_all_failing_is_critical(aws: Any) -> None:
    factory, hc_id = aws
    inject(factory.client("route53"), healthy=0, failing=8)
    r = make_check(hc_id).run(make_ctx(factory))
    assert r.status is Status.CRITICAL
    assert r.observed["checkers_healthy"] == 0


def test_no_observations_is_unknown_not_ok(aws: Any) -> None:
    factory, hc_id = aws
    inject(factory.client("route53"), healthy=0, failing=0)
    r = make_check(hc_id).run(make_ctx(factory))
    assert r.status is Status.UNKNOWN


def test_missing_health_check_is_unknown_config(aws: Any) -> None:
    factory, _ = aws
    r = make_check("00000000-dead-beef-0000-000000000000").run(make_ctx(factory))
    assert r.status is Status.UNKNOWN
    assert r.error_kind == "config"
    assert r.observed["error_code"] == "NoSuchHealthCheck"


def _ok_response() -> dict[str, Any]:
    return {"HealthCheckObservations": observations(healthy=8, failing=0)}


def test_throttling_is_retried_with_backoff_then_succeeds(aws: Any) -> None:
    factory, hc_id = aws
    client = factory.client("route53")
    with Stubber(client) as stub:
        stub.add_client_error("get_health_check_status", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_client_error("get_health_check_status", service_error_code="Throttling", http_status_code=400)
        stub.add_response("get_health_check_status", _ok_response(), {"HealthCheckId": hc_id})
        r = make_check(hc_id).run(make_ctx(factory))
        stub.assert_no_pending_responses()
    assert r.status is Status.OK, r.summary


def test_throttling_forever_gives_unknown_within_the_deadline(aws: Any) -> None:
    factory, hc_id = aws
    client = factory.client("route53")
    with Stubber(client) as stub:
        for _ in range(20):
            stub.add_client_error("get_health_check_status", service_error_code="ThrottlingException", http_status_code=400)
        started = time.monotonic()
        r = make_check(hc_id).run(make_ctx(factory, deadline_s=0.6))
        elapsed = time.monotonic() - started
    assert r.status is Status.UNKNOWN
    assert r.error_kind == "api"
    assert r.observed["error_code"] == "ThrottlingException"
    assert elapsed < 0.6, f"slept past the deadline: {elapsed:.2f} s"


def test_other_api_errors_are_unknown_and_not_retried(aws: Any) -> None:
    factory, hc_id = aws
    client = factory.client("route53")
    with Stubber(client) as stub:
        stub.add_client_error("get_health_check_status", service_error_code="AccessDenied", http_status_code=403)
        r = make_check(hc_id).run(make_ctx(factory))
        stub.assert_no_pending_responses()
    assert r.status is Status.UNKNOWN
    assert r.error_kind == "api"
    assert "AccessDenied" in r.summary


def _put_status(region: str, hc_id: str, values: list[float]) -> None:
    import boto3

    cw = boto3.client("cloudwatch", region_name=region)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cw.put_metric_data(Namespace="AWS/Route53", MetricData=[
        {"MetricName": "HealthCheckStatus", "Dimensions": [{"Name": "HealthCheckId", "Value": hc_id}],
         "Value": v, "Timestamp": now - timedelta(minutes=len(values) - i)} for i, v in enumerate(values)])


def test_metric_is_read_in_us_east_1_even_when_the_config_region_differs() -> None:
    with mock_aws():
        factory = ClientFactory("eu-west-1")
        hc_id = factory.client("route53").create_health_check(
            CallerReference="x", HealthCheckConfig={"Type": "HTTP", "FullyQualifiedDomainName": "h.example.com", "Port": 80},
        )["HealthCheck"]["Id"]
        _put_status("eu-west-1", hc_id, [0, 0, 0])  # decoy: Route 53 never publishes here
        _put_status("us-east-1", hc_id, [1, 1, 1])
        r = make_check(hc_id, cloudwatch_metric=True).run(make_ctx(factory))
        assert r.status is Status.OK, r.summary
        assert r.observed["metric_min_5m"] == 1.0
        assert r.observed["cloudwatch_region"] == "us-east-1"
        assert "us-east-1" in r.observed["cloudwatch_note"] and "eu-west-1" in r.observed["cloudwatch_note"]
        assert "read in us-east-1" in r.summary


def test_metric_dip_in_last_5_min_turns_ok_into_warning() -> None:
    with mock_aws():
        factory = ClientFactory("us-east-1")
        hc_id = factory.client("route53").create_health_check(
            CallerReference="x", HealthCheckConfig={"Type": "HTTP", "FullyQualifiedDomainName": "h.example.com", "Port": 80},
        )["HealthCheck"]["Id"]
        _put_status("us-east-1", hc_id, [1, 0, 1])
        r = make_check(hc_id, cloudwatch_metric=True).run(make_ctx(factory))
        assert r.status is Status.WARNING, r.summary
        assert "cloudwatch_note" not in r.observed  # same region: nothing to explain


def test_metric_unreadable_makes_ok_unknown_but_keeps_critical(aws: Any) -> None:
    factory, hc_id = aws
    cw = factory.client("cloudwatch", "us-east-1")
    with Stubber(cw) as stub:
        stub.add_client_error("get_metric_statistics", service_error_code="AccessDenied", http_status_code=403)
        r = make_check(hc_id, cloudwatch_metric=True).run(make_ctx(factory))
    assert r.status is Status.UNKNOWN and r.error_kind == "api"
    inject(factory.client("route53"), healthy=0, failing=8)
    with Stubber(cw) as stub:
        stub.add_client_error("get_metric_statistics", service_error_code="AccessDenied", http_status_code=403)
        r = make_check(hc_id, cloudwatch_metric=True).run(make_ctx(factory))
    assert r.status is Status.CRITICAL


def test_declares_the_iam_actions_it_calls() -> None:
    assert registry.check_class("route53_health") is Route53HealthCheck
    assert set(Route53HealthCheck.permissions) == {"route53:GetHealthCheckStatus", "cloudwatch:GetMetricStatistics"}


def test_per_tick_cost_against_moto(aws: Any) -> None:
    factory, hc_id = aws
    check = make_check(hc_id, cloudwatch_metric=True)
    check.run(make_ctx(factory))  # first call per service pays moto's warm-up
    runs = [check.run(make_ctx(factory)).latency_ms for _ in range(5)]
    print(f"\nroute53_health per tick (moto, with metric): median {sorted(runs)[2]:.1f} ms")
    assert sorted(runs)[2] < 1000
