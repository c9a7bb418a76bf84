"""No page is lost (issue 18): a page is recorded as delivered only when SNS accepted it; an
undelivered one is kept in the target's state and retried by every later tick, marked late with
its original time; PagesNotDelivered says how many wait. And one page per outage of sentinel's
own state table, never one per target per tick. Each test fails without its fix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from checks.base import Deadline, Status
from monitor.config import parse_config
from monitor.core.errors import StateError
from monitor.core.state.base import Event, Lease, TargetState
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation
from recover import phases
from tests.fakes import Script, services
from tests.recover_fixtures import (
    TARGET,
    FailCalls,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_raw,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def tick(svc: Services, **kw: Any) -> TickReport:
    return run_tick(new_invocation(svc), deadline=Deadline.after(60), **kw)


def kinds(pages: list[dict[str, Any]]) -> list[str]:
    return [p["MessageAttributes"]["kind"]["Value"] for p in pages]


def undelivered_metric(report: TickReport) -> float | None:
    values = [m["value"] for m in report.metrics if m["name"] == "PagesNotDelivered"]
    assert all(m["dimensions"] == {"service": "sentinel"} for m in report.metrics if m["name"] == "PagesNotDelivered")
    return values[-1] if values else None


def monitor_only(world: World) -> dict[str, Any]:
    raw = recovery_raw(world)
    raw["targets"][0]["recovery"]["enabled"] = False
    return raw


# ------------------------------------------------------------------ pages SNS refused

def test_a_confirmed_page_sns_refused_is_delivered_late_by_a_later_tick(world: World, fake_checks: Script) -> None:
    clock = real_now_clock()
    svc = services(parse_config(monitor_only(world)), store=MemoryStateStore(), clients=world.clients, clock=clock)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock.advance(minutes=10)
    confirmed_at = clock.now()
    with FailCalls(world.clients, "sns", "Publish", code="InternalError", times=1_000):
        report = tick(svc)  # confirmed: the page goes to SNS, which fails
        assert report.notifications[0]["kind"] == "confirmed" and not report.notifications[0]["delivered"]
        assert undelivered_metric(report) == 1
        for _ in range(5):  # SNS still down: kept, counted, not lost
            clock.advance(minutes=10)
            assert undelivered_metric(tick(svc)) == 1
    assert world.pages() == []
    assert len(svc.store.get(TARGET).pending_pages) == 1
    clock.advance(minutes=10)
    report = tick(svc)  # SNS is back
    assert undelivered_metric(report) is None and svc.store.get(TARGET).pending_pages == []
    [page] = world.pages()
    assert kinds([page]) == ["confirmed"] and page["MessageAttributes"]["late"]["Value"] == "true"
    assert "(late)" in page["Subject"] and "Delivered late: first sent at" in page["Message"]
    assert f"{confirmed_at:%H:%M}" in page["Message"].split("\n")[0]  # its original time
    clock.advance(minutes=10)
    tick(svc)
    assert world.pages() == []  # delivered once, never again


def test_a_failed_escalation_page_is_retried_while_automation_stays_paused(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = real_now_clock()
    monkeypatch.setattr(phases, "SLEEP", lambda s: clock.advance(seconds=s))
    raw = recovery_raw(world, ladder=[{"rung": "restart_service", "via": "ssm", "timeout_min": 10, "warmup_s": 60,
                                       "verify_timeout_min": 5}], routing={}, verify={"checks": []})
    svc = services(parse_config(raw), store=MemoryStateStore(), clients=world.clients, clock=clock)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock.advance(minutes=10)
    tick(svc)  # confirmed: the restart rung starts, the restart does not help
    clock.advance(minutes=10)
    with FailCalls(world.clients, "sns", "Publish", code="ThrottledException", times=1_000):
        report = tick(svc)
        assert [n["kind"] for n in report.notifications if n["severity"] == "page"] == ["recovery-escalated"]
        clock.advance(minutes=10)
        report = tick(svc)  # escalated: automation paused, the page still pending
        assert undelivered_metric(report) == 1
    assert kinds(world.pages()) == ["recovery-started"]
    clock.advance(minutes=10)
    tick(svc)
    assert kinds(world.pages()) == ["recovery-escalated"] and new_clusters(world) == []
    assert svc.store.get(TARGET).escalated is not None  # still paused until `sentinel ack`


# ------------------------------------------------------------------ the state table's own outages

class BrokenStore(MemoryStateStore):
    """Reads and/or writes fail the way DynamoDB fails (throttled, denied, item too large)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_fail = False
        self.writes_fail = False

    def get(self, target: str) -> TargetState:
        if self.reads_fail:
            raise StateError("dynamodb GetItem: ProvisionedThroughputExceededException")
        return super().get(target)

    def put(self, target: str, state: TargetState, *, lease: Lease | None, events: list[Event] | None = None,
            now: datetime) -> TargetState:
        if self.writes_fail:
            raise StateError("dynamodb TransactWriteItems: ValidationException: Item size has exceeded the "
                             "maximum allowed size")
        return super().put(target, state, lease=lease, events=events, now=now)

    def acquire_lease(self, target: str, owner: str, ttl_s: float, now: datetime) -> Lease:
        if self.reads_fail:
            raise StateError("dynamodb PutItem: ProvisionedThroughputExceededException")
        return super().acquire_lease(target, owner, ttl_s, now)


def many_targets(world: World, n: int) -> dict[str, Any]:
    raw = recovery_raw(world)
    one = raw["targets"][0]
    raw["targets"] = [{**one, "name": f"hive-{i:02d}", "cluster": {"name": f"C{i}"}, "recovery": {"enabled": False}}
                      for i in range(n)]
    return raw


def test_an_unreadable_state_table_pages_once_per_outage_naming_the_targets(world: World, fake_checks: Script) -> None:
    clock = real_now_clock()
    store = BrokenStore()
    svc = services(parse_config(many_targets(world, 20)), store=store, clients=world.clients, clock=clock)
    store.reads_fail = True
    for _ in range(3):
        tick(svc)
        for name in ("hive-03", "hive-11"):  # probes and queued ticks: one target per invocation
            tick(svc, targets=[name])
        clock.advance(minutes=10)
    pages = world.pages()
    assert kinds(pages) == ["state-unreadable"], kinds(pages)
    assert "20 target(s)" in pages[0]["Subject"] and "hive-19" in pages[0]["Message"]
    for _ in range(4):  # an hour after the page, still down: one reminder
        tick(svc)
        clock.advance(minutes=10)
    [reminder] = world.pages()
    assert "(reminder)" in reminder["Subject"]
    store.reads_fail = False
    for _ in range(4):
        clock.advance(minutes=10)
        tick(svc)
    store.reads_fail = True  # a new outage later is paged again
    clock.advance(minutes=10)
    tick(svc)
    assert kinds(world.pages()) == ["state-unreadable"]


def test_the_outage_is_paged_even_when_the_ledger_is_down_too(world: World, fake_checks: Script) -> None:
    clock = real_now_clock()
    store = BrokenStore()
    svc = services(parse_config(many_targets(world, 5)), store=store, clients=world.clients, clock=clock)
    store.reads_fail = True
    with FailCalls(world.clients, "ssm", "GetParameter", code="AccessDeniedException", times=1_000):
        tick(svc)
    assert kinds(world.pages()) == ["state-unreadable"]  # one per invocation, not five


def test_a_stall_is_paged_once_when_its_marker_cannot_be_written(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = real_now_clock()
    monkeypatch.setattr(phases, "SLEEP", lambda s: clock.advance(seconds=s))
    store = BrokenStore()
    svc = services(parse_config(recovery_raw(world)), store=store, clients=world.clients, clock=clock)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock.advance(minutes=10)
    report = tick(svc)
    assert report.targets[0].recovery and report.targets[0].recovery["phase"] == "WAIT_READY"
    world.pages()
    store.writes_fail = True  # writes fail while reads (and the lease) work: an item over 400 KB
    for _ in range(12):  # 2 h: far past the launch timeout (45 min) and its stall limit
        clock.advance(minutes=10)
        report = tick(svc)
        assert report.targets[0].recovery is None or report.targets[0].recovery.get("store_failed"), report
    assert sorted(kinds(world.pages())) == ["recovery-stalled", "recovery-stalled", "state-unreadable",
                                            "state-unreadable"], \
        "one stall page and one state-table page at the first stalled tick, one reminder of each an hour later"
