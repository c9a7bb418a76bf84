"""dns_query_rate against a real BIND 9 (named on 127.0.0.1, free ports, tmp dir).

Accuracy is stated two ways:

- with a controlled clock (samples exactly 600 s apart) the rate must be *exact*: BIND counts
  every query we send (loopback UDP, each query waits for its answer) and nothing else queries
  this server, so any error would be the check's;
- with real time the check's interval is the wall time between its two samples, which includes
  the sending plus one fetch (~2 ms) — tolerance ±2 % against count / send time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from checks.base import CheckContext, CheckResult, Deadline, Status
from checks.dns_query_rate import DnsQueryRateCheck, DnsQueryRateConfig
from monitor.config import ClusterRef
from monitor.core.aws import ClientFactory
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.memory import MemoryStateStore
from tests.integration.bind9 import ZONE, Bind9, named_binary

pytestmark = pytest.mark.integration

RATE_TOLERANCE = 0.02  # ±2 % with real elapsed time


@dataclass
class FakeClock:
    t: datetime

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind9]:
    if named_binary() is None:
        pytest.skip("bind9 is not installed (no /usr/sbin/named): apt-get install bind9 bind9-utils")
    server = Bind9(tmp_path / "bind")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def send_queries(server: Bind9, count: int, per_s: float) -> float:
    """Send ``count`` A queries at about ``per_s``; returns the wall time it took."""
    import dns.message
    import dns.query

    names = [f"{h}.{ZONE}" for h in ("hive", "hive-a", "hive-b")]
    started = time.monotonic()
    for i in range(count):
        reply = dns.query.udp(dns.message.make_query(names[i % 3], "A"), "127.0.0.1", port=server.dns_port, timeout=2)
        assert reply.answer, "bind did not answer from its zone"
        ahead = (i + 1) / per_s - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    return time.monotonic() - started


def make_check(server: Bind9, fmt: str = "xml") -> DnsQueryRateCheck:
    return DnsQueryRateCheck(DnsQueryRateConfig(
        type="dns_query_rate", name="resolver-pps", source={"kind": "bind_stats", "url": server.stats_url(fmt), "format": fmt},
        warn_per_s=700, critical_per_s=900))


def tick(check: DnsQueryRateCheck, store: MemoryStateStore, clock: Any) -> CheckResult:
    factory = ClientFactory("us-east-1")
    ctx = CheckContext(target="prod-hive", cluster=ClusterRef(name="RC.HIVE.ADHOC"), clients=factory,
                       secrets=SecretResolver(factory), resolver=HostResolver(), store=store, clock=clock,
                       deadline=Deadline.after(10))
    return check.run(ctx)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_rate_with_a_controlled_clock_is_exact(bind: Bind9, fmt: str) -> None:
    store, clock = MemoryStateStore(), FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    check = make_check(bind, fmt)
    first = tick(check, store, clock)
    assert first.status is Status.OK and "baseline" in first.summary, first.summary
    send_queries(bind, 3000, per_s=2000)
    clock.advance(600)
    second = tick(check, store, clock)
    assert second.status is Status.OK, second.summary
    assert second.observed["increase"] == 3000
    assert second.observed["queries_per_s"] == 5.0


def test_rate_with_real_time_matches_what_was_sent(bind: Bind9) -> None:
    """Real clock: every query sent is counted, and the rate is the count over the sampling
    window. The window is the sending time plus the check's own fetch time, which grows on a
    loaded 2-core CI machine; so the rate may read low by that overhead, never high."""
    store, check = MemoryStateStore(), make_check(bind)
    tick(check, store, SystemClock())
    sent, seconds = 3000, send_queries(bind, 3000, per_s=600)
    r = tick(check, store, SystemClock())
    sent_rate = sent / seconds
    measured = r.observed["queries_per_s"]
    window = r.observed["elapsed_s"]
    error = (measured - sent_rate) / sent_rate
    print(f"\nbind9 rate: sent {sent} in {seconds:.3f} s = {sent_rate:.1f}/s, check measured {measured:.1f}/s "
          f"over {window:.3f} s, error {error:+.2%}")
    assert r.observed["increase"] == sent
    assert measured == pytest.approx(sent / window, rel=1e-3)
    assert seconds <= window < seconds + 2.0
    assert measured <= sent_rate * (1 + RATE_TOLERANCE)
    assert r.status is Status.OK  # 600/s < warn 700/s


def test_restart_between_samples_is_a_new_baseline_then_rates_resume(bind: Bind9) -> None:
    store, clock, check = MemoryStateStore(), FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC)), make_check(bind)
    send_queries(bind, 500, per_s=2000)
    before = tick(check, store, clock)
    bind.restart()
    send_queries(bind, 200, per_s=2000)
    clock.advance(600)
    after = tick(check, store, clock)
    assert after.observed["boot_time"] != before.observed["boot_time"]
    assert after.status is Status.OK and "counter reset" in after.summary, after.summary
    assert after.observed["queries_per_s"] is None  # neither negative nor huge
    assert after.observed["counter"] == 200
    send_queries(bind, 1200, per_s=2000)
    clock.advance(600)
    resumed = tick(check, store, clock)
    assert resumed.observed["queries_per_s"] == 2.0


def test_stopped_bind_is_unknown_and_per_tick_cost(bind: Bind9) -> None:
    store, check = MemoryStateStore(), make_check(bind)
    costs = [tick(check, store, SystemClock()).latency_ms for _ in range(9)]
    print(f"\ndns_query_rate per tick against bind9 (XML): median {statistics.median(costs):.1f} ms, max {max(costs):.1f} ms")
    bind.stop()
    r = tick(check, store, SystemClock())
    assert r.status is Status.UNKNOWN and r.error_kind == "refused"
