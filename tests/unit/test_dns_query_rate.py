"""dns_query_rate: rates from persisted samples (freezegun moves time), bind statistics over a
local HTTP server on 127.0.0.1 that serves canned BIND documents, CloudWatch on moto."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from freezegun import freeze_time
from moto import mock_aws

from checks import registry
from checks.base import CheckContext, Deadline, Status
from checks.dns_bindstats import BindStatsError, parse_json, parse_xml
from checks.dns_query_rate import DnsQueryRateCheck, DnsQueryRateConfig
from checks.dns_rate import Sample, compare
from monitor.config import ClusterRef
from monitor.core.aws import ClientFactory
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.base import StateStore
from monitor.core.state.memory import MemoryStateStore

T0 = "2026-03-01T12:00:00Z"
BOOT = "2026-03-01T08:00:00.123Z"


def bind_xml(queries: int, boot: str = BOOT) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><statistics version="3.13"><server>'
        f"<boot-time>{boot}</boot-time><config-time>{boot}</config-time><version>9.18.49</version>"
        f'<counters type="opcode"><counter name="QUERY">{queries}</counter><counter name="NOTIFY">7</counter></counters>'
        '<counters type="nsstat"><counter name="Requestv4">99999999</counter></counters>'
        "</server></statistics>"
    ).encode()


def bind_json(queries: int, boot: str = BOOT) -> bytes:
    return json.dumps({"json-stats-version": "1.7", "boot-time": boot, "version": "9.18.49",
                       "opcodes": {"QUERY": queries, "NOTIFY": 7}}).encode()


class FakeBind:
    """A tiny statistics channel: serves ``body`` (or ``status``), records Host headers."""

    def __init__(self) -> None:
        self.body = bind_xml(0)
        self.status = 200
        self.hang_s = 0.0
        self.hosts: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.hosts.append(self.headers.get("Host", ""))
                if fake.hang_s:
                    time.sleep(fake.hang_s)
                try:
                    self.send_response(fake.status)
                    self.send_header("Content-Type", "text/xml")
                    self.end_headers()
                    self.wfile.write(fake.body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/xml/v3/server", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bind() -> Iterator[FakeBind]:
    fake = FakeBind()
    yield fake
    fake.close()


def make_ctx(store: StateStore, *, factory: Any = None, resolver: HostResolver | None = None,
             deadline_s: float = 10.0) -> CheckContext:
    factory = factory or ClientFactory("us-east-1")
    return CheckContext(
        target="prod-hive", cluster=ClusterRef(name="RC.HIVE.ADHOC"), clients=factory, secrets=SecretResolver(factory),
        resolver=resolver or HostResolver(), store=store, clock=SystemClock(), deadline=Deadline.after(deadline_s),
    )


def bind_check(url: str, **kw: Any) -> DnsQueryRateCheck:
    fmt = kw.pop("format", "xml")
    return DnsQueryRateCheck(DnsQueryRateConfig(type="dns_query_rate", name="resolver-pps",
                                                source={"kind": "bind_stats", "url": url, "format": fmt}, **kw))


def run(check_factory: Any, store: StateStore, **kw: Any) -> Any:
    """A fresh check object per tick: nothing may carry over in memory, only in the store."""
    return check_factory().run(make_ctx(store, **kw))


# ---------------------------------------------------------------- the rate arithmetic (bind)

def test_first_sample_is_ok_baseline_then_counter_delta_gives_the_rate(bind: FakeBind) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        bind.body = bind_xml(1_000_000)
        first = run(lambda: bind_check(bind.url()), store)
        assert first.status is Status.OK
        assert "baseline recorded" in first.summary
        assert first.observed["queries_per_s"] is None
        saved = store.get_sample("prod-hive", "resolver-pps")
        assert saved == {"at": "2026-03-01T12:00:00.000000Z", "value": 1_000_000.0, "boot": BOOT,
                         "source": f"bind:xml:{bind.url()}"}

        clock.tick(600)
        bind.body = bind_xml(1_006_000)
        second = run(lambda: bind_check(bind.url()), store)
    assert second.status is Status.OK, second.summary
    assert second.observed["queries_per_s"] == 10.0
    assert second.observed["elapsed_s"] == 600 and second.observed["increase"] == 6000
    assert "10.0 DNS queries/s" in second.summary


@pytest.mark.parametrize(("increase", "status"), [(419_999, Status.OK), (420_000, Status.WARNING), (540_000, Status.CRITICAL)])
def test_thresholds_in_queries_per_second(bind: FakeBind, increase: int, status: Status) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        run(lambda: bind_check(bind.url()), store)
        clock.tick(600)
        bind.body = bind_xml(increase)
        r = run(lambda: bind_check(bind.url(), warn_per_s=700, critical_per_s=900), store)
    assert r.status is status, r.summary


def test_restart_changes_boot_time_and_is_a_new_baseline_not_a_negative_rate(bind: FakeBind) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        bind.body = bind_xml(5_000_000)
        run(lambda: bind_check(bind.url()), store)
        clock.tick(600)
        bind.body = bind_xml(120, boot="2026-03-01T12:05:00.000Z")
        r = run(lambda: bind_check(bind.url()), store)
        assert r.status is Status.OK and "counter reset" in r.summary
        assert r.observed["queries_per_s"] is None
        clock.tick(600)
        bind.body = bind_xml(120 + 1200, boot="2026-03-01T12:05:00.000Z")
        after = run(lambda: bind_check(bind.url()), store)
    assert after.observed["queries_per_s"] == 2.0


def test_counter_going_down_without_boot_change_is_a_reset(bind: FakeBind) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        bind.body = bind_xml(9000)
        run(lambda: bind_check(bind.url()), store)
        clock.tick(600)
        bind.body = bind_xml(10)
        r = run(lambda: bind_check(bind.url()), store)
    assert r.status is Status.OK and "went down" in r.summary
    assert r.observed["queries_per_s"] is None


def test_stale_previous_sample_rebaselines(bind: FakeBind) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        run(lambda: bind_check(bind.url()), store)
        clock.tick(3 * 600 + 1)  # three missed ticks: an average over them would hide a burst
        bind.body = bind_xml(5_000_000)
        r = run(lambda: bind_check(bind.url(), max_sample_age_s=1800), store)
        assert r.status is Status.OK and "new baseline" in r.summary
        assert r.observed["queries_per_s"] is None
        clock.tick(600)
        bind.body = bind_xml(5_000_000 + 60_000)
        r = run(lambda: bind_check(bind.url(), max_sample_age_s=1800), store)
    assert r.observed["queries_per_s"] == 100.0


def test_json_channel(bind: FakeBind) -> None:
    store = MemoryStateStore()
    with freeze_time(T0) as clock:
        bind.body = bind_json(100)
        run(lambda: bind_check(bind.url("/json/v1/server"), format="json"), store)
        clock.tick(300)
        bind.body = bind_json(100 + 1500)
        r = run(lambda: bind_check(bind.url("/json/v1/server"), format="json"), store)
    assert r.observed["queries_per_s"] == 5.0
    assert r.observed["boot_time"] == BOOT


def test_parsers_pick_opcode_query_and_reject_other_documents() -> None:
    assert parse_xml(bind_xml(42)).queries == 42  # not nsstat Requestv4 (also counts NOTIFY/UPDATE)
    assert parse_xml(bind_xml(42)).boot_time == BOOT
    assert parse_json(bind_json(42)).queries == 42
    with pytest.raises(BindStatsError):
        parse_xml(b"<html>not stats</html>")
    with pytest.raises(BindStatsError):
        parse_xml(b"<statistics")
    with pytest.raises(BindStatsError):
        parse_json(b'{"memory": {}}')


# ---------------------------------------------------------------- fetching

def test_connection_goes_through_the_resolver_and_keeps_the_host_header(bind: FakeBind) -> None:
    resolver = HostResolver({"bind-stats.internal": f"127.0.0.1:{bind.port}"}, loopback_only=True)
    r = bind_check("http://bind-stats.internal:954/xml/v3/server").run(make_ctx(MemoryStateStore(), resolver=resolver))
    assert r.status is Status.OK, r.summary
    assert bind.hosts == ["bind-stats.internal:954"]


def test_non_loopback_address_in_tests_is_unknown_config() -> None:
    r = bind_check("http://10.20.30.40:954/xml/v3/server").run(make_ctx(MemoryStateStore(),
                                                                       resolver=HostResolver(loopback_only=True)))
    assert r.status is Status.UNKNOWN and r.error_kind == "config"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fetch_errors_are_unknown_and_keep_the_previous_sample(bind: FakeBind) -> None:
    store = MemoryStateStore()
    run(lambda: bind_check(bind.url()), store)
    before = store.get_sample("prod-hive", "resolver-pps")

    bind.status = 500
    r = run(lambda: bind_check(bind.url()), store)
    assert r.status is Status.UNKNOWN and r.error_kind == "query" and "HTTP 500" in r.summary

    bind.status, bind.body = 200, b"<html>oops</html>"
    r = run(lambda: bind_check(bind.url()), store)
    assert r.status is Status.UNKNOWN and r.error_kind == "query"

    r = run(lambda: bind_check(f"http://127.0.0.1:{_closed_port()}/xml/v3/server"), store)
    assert r.status is Status.UNKNOWN and r.error_kind == "refused"
    assert store.get_sample("prod-hive", "resolver-pps") == before


def test_hung_statistics_channel_times_out_within_the_check_timeout(bind: FakeBind) -> None:
    bind.hang_s = 3.0
    started = time.monotonic()
    r = bind_check(bind.url(), timeout_s=0.5).run(make_ctx(MemoryStateStore()))
    assert r.status is Status.UNKNOWN and r.error_kind == "timeout"
    assert time.monotonic() - started < 1.5


def test_sample_write_carries_the_lease_from_facts(bind: FakeBind) -> None:
    store = MemoryStateStore()
    now = datetime.now(UTC)
    lease = store.acquire_lease("prod-hive", "me", 60, now)
    store.acquire_lease("prod-hive", "other", 60, now + timedelta(seconds=120))  # we lost it
    ctx = make_ctx(store)
    ctx.facts["lease"] = lease
    r = bind_check(bind.url()).run(ctx)
    assert r.status is Status.OK
    assert r.observed["sample_saved"] is False and "not saved" in r.summary
    assert store.get_sample("prod-hive", "resolver-pps") is None


def test_compare_never_yields_a_negative_rate() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    prev = Sample(t, 100.0, "b", "s")
    assert compare(prev, Sample(t + timedelta(seconds=60), 50.0, "b", "s"), max_age_s=1800).kind == "reset"
    assert compare(prev, Sample(t - timedelta(seconds=60), 500.0, "b", "s"), max_age_s=1800).kind == "stale"
    assert compare(prev, Sample(t + timedelta(seconds=60), 500.0, "b", "other"), max_age_s=1800).kind == "baseline"
    assert compare(prev, Sample(t + timedelta(seconds=60), 700.0, "b", "s"), max_age_s=1800).per_s == 10.0


# ---------------------------------------------------------------- CloudWatch

def cw_check(**source: Any) -> DnsQueryRateCheck:
    base = {"kind": "cloudwatch", "namespace": "CWAgent", "metric": "ethtool_linklocal_allowance_exceeded",
            "dimensions": {"InstanceId": "i-0abc", "driver": "ena", "interface": "eth0"}}
    return DnsQueryRateCheck(DnsQueryRateConfig(type="dns_query_rate", name="resolver-pps", source={**base, **source}))


def put_points(values: dict[datetime, float], metric: str = "ethtool_linklocal_allowance_exceeded") -> None:
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    dims = [{"Name": "InstanceId", "Value": "i-0abc"}, {"Name": "driver", "Value": "ena"}, {"Name": "interface", "Value": "eth0"}]
    cw.put_metric_data(Namespace="CWAgent", MetricData=[
        {"MetricName": metric, "Dimensions": dims, "Value": v, "Timestamp": ts} for ts, v in values.items()])


START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minutes(first: int, last: int, value: float) -> dict[datetime, float]:
    return {START + timedelta(minutes=m): value for m in range(first, last)}


def test_cloudwatch_drops_zero_is_ok_and_any_increase_is_critical() -> None:
    with mock_aws(), freeze_time(START + timedelta(minutes=11, seconds=5)) as clock:
        store = MemoryStateStore()
        put_points(minutes(0, 20, 0.0))
        r = run(cw_check, store)  # first run: the last 10 whole minutes, ending a minute ago
        assert r.status is Status.OK, r.summary
        assert r.observed["window_start"].startswith("2026-03-01T12:00")
        assert r.observed["window_end"].startswith("2026-03-01T12:10")
        assert r.observed["queries_per_s"] is None  # drops are not queries: no DnsQueriesPerSecond
        put_points({START + timedelta(minutes=14): 37.0})
        clock.tick(600)
        r = run(cw_check, store)
    assert r.status is Status.CRITICAL, r.summary
    assert r.observed["increase"] == 37.0
    assert r.observed["window_continues_previous"] is True
    assert r.observed["window_start"].startswith("2026-03-01T12:10") and r.observed["window_end"].startswith("2026-03-01T12:20")
    assert "37 packets dropped" in r.summary


def test_cloudwatch_queries_mode_is_a_rate() -> None:
    with mock_aws(), freeze_time(START + timedelta(minutes=11)):
        put_points(minutes(0, 10, 600.0), metric="dns_queries")
        r = run(lambda: cw_check(metric="dns_queries", mode="queries"), MemoryStateStore())
    assert r.status is Status.OK, r.summary
    assert r.observed["queries_per_s"] == 10.0


def test_cloudwatch_cumulative_counter_uses_the_difference_and_handles_a_reset() -> None:
    with mock_aws(), freeze_time(START + timedelta(minutes=1)) as clock:
        store = MemoryStateStore()
        check = lambda: cw_check(metric="dns_queries_total", mode="queries", counter="cumulative", statistic="Maximum")  # noqa: E731
        put_points({START: 50_000.0}, metric="dns_queries_total")
        assert "baseline" in run(check, store).summary
        put_points({START + timedelta(minutes=10): 50_000.0 + 12_000}, metric="dns_queries_total")
        clock.tick(600)
        r = run(check, store)
        assert r.observed["queries_per_s"] == 20.0, r.summary
        put_points({START + timedelta(minutes=20): 30.0}, metric="dns_queries_total")
        clock.tick(600)
        r = run(check, store)
    assert r.status is Status.OK and "counter reset" in r.summary


def test_cloudwatch_without_datapoints_is_unknown_and_api_errors_carry_the_code() -> None:
    with mock_aws(), freeze_time(START):
        store = MemoryStateStore()
        r = run(cw_check, store)
        assert r.status is Status.UNKNOWN and "no datapoints" in r.summary
        assert store.get_sample("prod-hive", "resolver-pps") is None
        from botocore.stub import Stubber

        factory = ClientFactory("us-east-1")
        with Stubber(factory.client("cloudwatch")) as stub:
            stub.add_client_error("get_metric_statistics", service_error_code="AccessDenied", http_status_code=403)
            r = cw_check().run(make_ctx(store, factory=factory))
    assert r.status is Status.UNKNOWN and r.error_kind == "api" and r.observed["error_code"] == "AccessDenied"


def test_declares_the_iam_actions_it_calls() -> None:
    assert registry.check_class("dns_query_rate") is DnsQueryRateCheck
    assert DnsQueryRateCheck.permissions == ("cloudwatch:GetMetricStatistics",)


def test_per_tick_cost(bind: FakeBind) -> None:
    store = MemoryStateStore()
    check = bind_check(bind.url())
    runs = sorted(check.run(make_ctx(store)).latency_ms for _ in range(7))
    print(f"\ndns_query_rate per tick (local HTTP stats channel): median {runs[3]:.1f} ms")
    assert runs[3] < 500
