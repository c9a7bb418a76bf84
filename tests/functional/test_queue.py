"""dispatch: queue (monitor/queue.py) on moto SQS: batched fan-out, the handler fed real SQS
event shapes, duplicate deliveries, poison messages and the dead-letter queue, delayed
re-checks once per streak, and a recovery advanced by delayed messages."""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws

from checks.base import Deadline, Status
from monitor import fanout, handler, queue
from monitor.config import parse_config
from monitor.core.aws import ClientFactory
from monitor.core.clock import iso
from monitor.core.state.dynamodb import DynamoStateStore
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.events import Request
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation
from tests.fakes import FakeClock, Script, services
from tests.functional.aws import Account, LambdaContext, seed_account
from tests.recover_fixtures import (
    CallLog,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_raw,
    set_steps,
)

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


# ---------------------------------------------------------------- helpers

def raw_config(topic: str, names: list[str], **top: Any) -> dict[str, Any]:
    return {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": topic}, **top,
        "targets": [{
            "name": n, "cluster": {"name": "RC.HIVE"}, "checks": [{"type": "fake", "name": "hive"}],
            "recovery": {"enabled": False, "when": {"checks": ["hive"], "consecutive_failures": 2}},
        } for n in names],
    }


def make_queue(clients: ClientFactory, name: str = "ticks", *, max_receive: int = 1) -> tuple[str, str]:
    """A work queue with a dead-letter queue (redrive after ``max_receive`` receives)."""
    sqs = clients.client("sqs")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)})})["QueueUrl"]
    return url, dlq


def receive(clients: ClientFactory, url: str, n: int = 10) -> list[dict[str, Any]]:
    """Messages as Lambda's event-source mapping hands them to the function (record shape)."""
    sqs = clients.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, n - len(out)),
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        for m in got:
            out.append({
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {k: {"stringValue": v.get("StringValue"), "stringListValues": [],
                                          "binaryListValues": [], "dataType": v["DataType"]}
                                      for k, v in m.get("MessageAttributes", {}).items()},
                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ticks", "awsRegion": "us-east-1",
            })
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if not got or len(out) >= n:
            return out


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def record(body: str, mid: str = "m-1", due_at: datetime | None = None) -> dict[str, Any]:
    attrs = {"due_at": {"stringValue": iso(due_at), "dataType": "String"}} if due_at else {}
    return {"messageId": mid, "receiptHandle": "rh", "body": body, "attributes": {"SentTimestamp": "0"},
            "messageAttributes": attrs, "eventSource": "aws:sqs", "awsRegion": "us-east-1"}


@dataclass
class Deployed:
    account: Account
    url: str
    dlq: str
    path: Path
    names: list[str] = field(default_factory=list)

    def configure(self, **top: Any) -> None:
        self.path.write_text(yaml.safe_dump(raw_config(self.account.page_topic, self.names, **top)))
        handler._WARM.configs = handler.ConfigCache()

    def state(self, name: str) -> Any:
        return DynamoStateStore(self.account.clients.client("dynamodb"), "sentinel-state").get(name)


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_checks: Script) -> Iterator[Deployed]:
    with mock_aws():
        acct = seed_account()
        url, dlq = make_queue(acct.clients)
        d = Deployed(acct, url, dlq, tmp_path / "sentinel.yaml", names=["hive-a", "hive-b", "hive-c"])
        d.configure(dispatch="queue")
        monkeypatch.setenv("SENTINEL_CONFIG", str(d.path))
        monkeypatch.setenv(queue.QUEUE_URL_ENV, url)
        monkeypatch.setattr(handler, "_WARM", handler._Warm())
        yield d


class SendCounter:
    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("after-call.sqs", self._hook)
        self._client = client

    def _hook(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def close(self) -> None:
        self._client.meta.events.unregister("after-call.sqs", self._hook)


# ---------------------------------------------------------------- SQS itself (moto)

def test_twenty_five_targets_go_out_in_three_batched_sends_with_the_contract_body() -> None:
    with mock_aws():
        clients = ClientFactory("us-east-1")
        url, _ = make_queue(clients)
        counter = SendCounter(clients.client("sqs"))
        try:
            names = [f"t{i:02d}" for i in range(25)]
            sent = queue.WorkQueue(clients.client("sqs"), url).send(names, kind="scheduled",
                                                                       due_at=datetime.now().astimezone())
        finally:
            counter.close()
        assert counter.calls == ["SendMessageBatch"] * 3 and sent.failed == {} and len(sent.ids) == 25
        got = receive(clients, url, 30)
        assert sorted(json.loads(r["body"])["target"] for r in got) == names
        assert {r["body"] for r in got} == {json.dumps({"action": "tick", "target": n}, sort_keys=True) for n in names}
        assert {r["messageAttributes"]["kind"]["stringValue"] for r in got} == {"scheduled"}


def test_a_delayed_message_is_invisible_until_its_delay_has_passed() -> None:
    with mock_aws():
        clients = ClientFactory("us-east-1")
        url, _ = make_queue(clients)
        queue.WorkQueue(clients.client("sqs"), url).send(["t"], kind="re-check", due_at=datetime.now().astimezone(),
                                                          delay_s=1)
        assert receive(clients, url) == []
        time.sleep(1.3)
        [msg] = receive(clients, url)
        assert msg["messageAttributes"]["kind"]["stringValue"] == "re-check"


def test_a_message_received_max_receive_count_times_is_redriven_to_the_dead_letter_queue() -> None:
    with mock_aws():
        clients = ClientFactory("us-east-1")
        url, dlq = make_queue(clients, max_receive=2)
        sqs = clients.client("sqs")
        sqs.send_message(QueueUrl=url, MessageBody="not json")
        for _ in range(2):  # received, not deleted (a batch item failure), visible again at once
            assert len(sqs.receive_message(QueueUrl=url).get("Messages", [])) == 1
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        [dead] = sqs.receive_message(QueueUrl=dlq)["Messages"]
        assert dead["Body"] == "not json"


# ---------------------------------------------------------------- the handler: dispatch and consume

def test_scheduled_event_with_dispatch_queue_enqueues_one_tick_per_target_and_runs_no_check(
        deployed: Deployed, fake_checks: Script) -> None:
    report = handler.lambda_handler(SCHEDULED, LambdaContext("dispatcher"))
    assert report["data"]["enqueued"] == 3 and report["errors"] == [] and report["exit_code"] == 0
    assert fake_checks.calls == [] and report["targets"] == []
    assert "Heartbeat" in {m["name"] for m in report["metrics"]}
    records = receive(deployed.account.clients, deployed.url)
    assert sorted(json.loads(r["body"])["target"] for r in records) == deployed.names


def test_each_queued_message_ticks_its_target_and_the_dispatcher_reports_tick_ages(
        deployed: Deployed, fake_checks: Script) -> None:
    handler.lambda_handler(SCHEDULED, LambdaContext("dispatcher"))
    records = receive(deployed.account.clients, deployed.url)
    for i, rec in enumerate(records):  # batch size 1: one invocation per message
        assert handler.lambda_handler(sqs_event(rec), LambdaContext(f"worker-{i}")) == {"batchItemFailures": []}
    assert sorted(n for n in deployed.names if deployed.state(n).last_tick_at) == deployed.names
    assert {tuple(c) for c in fake_checks.calls} == {("hive", None)} and len(fake_checks.calls) == 3
    again = handler.lambda_handler(SCHEDULED, LambdaContext("dispatcher-2"))
    ages = {m["dimensions"]["target"]: m["value"] for m in again["metrics"] if m["name"] == "SecondsSinceTick"}
    assert sorted(ages) == deployed.names and all(0 <= a < 60 for a in ages.values())
    assert "StalestTickSeconds" in {m["name"] for m in again["metrics"]}


def test_an_alarm_naming_several_targets_enqueues_those_only(deployed: Deployed) -> None:
    alarm = {"AlarmName": "x", "NewStateValue": "ALARM", "Trigger": {"Dimensions": [
        {"name": "target", "value": "hive-a"}]}}
    alarm2 = {**alarm, "Trigger": {"Dimensions": [{"name": "target", "value": "hive-c"}]}}
    event = {"Records": [{"Sns": {"Message": json.dumps(alarm)}}, {"Sns": {"Message": json.dumps(alarm2)}}]}
    report = handler.lambda_handler(event, LambdaContext("alarm"))
    assert report["data"]["enqueued"] == 2
    targets = sorted(json.loads(r["body"])["target"] for r in receive(deployed.account.clients, deployed.url))
    assert targets == ["hive-a", "hive-c"]


def test_two_deliveries_of_one_message_make_one_tick(deployed: Deployed, fake_checks: Script) -> None:
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    dispatched = handler.lambda_handler({"targets": ["hive-a"]}, LambdaContext("dispatcher"))
    assert "Heartbeat" in {m["name"] for m in dispatched["metrics"]}  # a rule's Input beats as the schedule does
    [rec] = receive(deployed.account.clients, deployed.url)
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker-1")) == {"batchItemFailures": []}
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker-2")) == {"batchItemFailures": []}
    state = deployed.state("hive-a")
    assert (state.consecutive_failures, len(fake_checks.calls)) == (1, 1)  # one tick's effect


def test_a_delivery_while_another_invocation_holds_the_lease_is_skipped_and_not_retried(
        deployed: Deployed, fake_checks: Script) -> None:
    store = DynamoStateStore(deployed.account.clients.client("dynamodb"), "sentinel-state")
    store.acquire_lease("hive-b", "someone-else", 120, datetime.now().astimezone())
    rec = record(json.dumps({"action": "tick", "target": "hive-b"}), due_at=datetime.now().astimezone())
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker")) == {"batchItemFailures": []}
    assert fake_checks.calls == [] and deployed.state("hive-b").version == 0


def test_malformed_bodies_are_reported_as_batch_item_failures_and_nothing_runs_for_them(
        deployed: Deployed, fake_checks: Script) -> None:
    good = record(json.dumps({"action": "tick", "target": "hive-a"}), "good")
    bad = [record("not json", "b1"), record(json.dumps({"action": "recover", "target": "hive-a"}), "b2"),
           record(json.dumps({"action": "tick", "target": "hive-a", "force": True}), "b3"),
           record(json.dumps(["tick"]), "b4"), record(json.dumps({"action": "tick", "target": 5}), "b5")]
    gone = record(json.dumps({"action": "tick", "target": "removed-from-config"}), "gone")
    out = handler.lambda_handler(sqs_event(good, *bad, gone), LambdaContext("worker"))
    assert out == {"batchItemFailures": [{"itemIdentifier": m} for m in ("b1", "b2", "b3", "b4", "b5")]}
    assert len(fake_checks.calls) == 1 and deployed.state("hive-a").last_tick_at


def test_a_poison_message_ends_in_the_dead_letter_queue_through_the_handler(deployed: Deployed) -> None:
    sqs = deployed.account.clients.client("sqs")
    sqs.send_message(QueueUrl=deployed.url, MessageBody="{broken")
    m = sqs.receive_message(QueueUrl=deployed.url, AttributeNames=["All"])["Messages"][0]
    rec = record(m["Body"], m["MessageId"])
    out = handler.lambda_handler(sqs_event(rec), LambdaContext("worker"))
    assert out == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
    # Lambda does not delete a failed item; at maxReceiveCount (1 here) SQS moves it on.
    assert sqs.receive_message(QueueUrl=deployed.url).get("Messages", []) == []
    assert sqs.receive_message(QueueUrl=deployed.dlq)["Messages"][0]["Body"] == "{broken"


def test_dispatch_inline_ticks_in_the_scheduled_invocation_and_queues_nothing(
        deployed: Deployed, fake_checks: Script) -> None:
    deployed.configure(dispatch="inline")
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    report = handler.lambda_handler(SCHEDULED, LambdaContext("inline"))
    assert len(report["targets"]) == 3 and report.get("data") is None
    assert all(t["decision"]["verdict"] == "failing" for t in report["targets"])
    assert receive(deployed.account.clients, deployed.url) == []  # not even a re-check


def test_without_a_dispatch_key_the_deployments_default_decides(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed.configure()
    assert handler.lambda_handler(SCHEDULED, LambdaContext("a")).get("data") is None  # inline
    monkeypatch.setenv(queue.DISPATCH_ENV, "queue")  # what the template sets
    assert handler.lambda_handler(SCHEDULED, LambdaContext("b"))["data"]["enqueued"] == 3


def test_dispatch_queue_without_a_queue_url_ticks_inline(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(queue.QUEUE_URL_ENV)
    report = handler.lambda_handler(SCHEDULED, LambdaContext("no-url"))
    assert len(report["targets"]) == 3


# ---------------------------------------------------------------- follow-ups: re-checks and advances

class RecordingQueue:
    """A work queue that records what would be sent (the delay) instead of sending."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, datetime]] = []

    def send(self, targets: list[str], *, kind: str, due_at: datetime, delay_s: int = 0) -> queue.Sent:
        out = queue.Sent()
        for t in targets:
            self.sent.append((t, kind, delay_s, due_at))
            out.ids[t] = f"id-{len(self.sent)}"
        return out


def queued_svc(threshold: int = 3, recheck: int = 120) -> tuple[Services, RecordingQueue, FakeClock]:
    raw = raw_config("arn:aws:sns:us-east-1:123456789012:p", ["hive-a"], dispatch="queue")
    raw["targets"][0]["recovery"]["when"].update(consecutive_failures=threshold, recheck_after_s=recheck)
    clock = FakeClock()
    svc = services(parse_config(raw), store=MemoryStateStore(), clock=clock)
    rq = RecordingQueue()
    svc.queue = rq
    return svc, rq, clock


def tick(svc: Services, due_at: datetime | None = None) -> TickReport:
    inv = new_invocation(svc, request_id="t")
    inv.due_at = due_at
    return run_tick(inv, deadline=Deadline.after(30))


def test_a_first_critical_queues_one_recheck_per_streak_after_recheck_after_s(fake_checks: Script) -> None:
    svc, rq, clock = queued_svc(threshold=3, recheck=120)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    first = tick(svc).targets[0]
    assert [(t, k, d) for t, k, d, _ in rq.sent] == [("hive-a", "re-check", 120)]
    assert "re-check queued in 120 s" in first.actions
    clock.advance(seconds=60)
    tick(svc)  # a scheduled tick inside the window: streak 2, but one re-check is already pending
    assert len(rq.sent) == 1
    clock.advance(seconds=60)
    due = rq.sent[0][3]
    third = tick(svc, due_at=due).targets[0]  # the re-check itself: streak 3 = confirmed, none more
    assert third.decision and third.decision["verdict"] == "confirmed" and len(rq.sent) == 1
    fake_checks.set("hive", Status.OK)
    clock.advance(seconds=600)
    tick(svc)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    clock.advance(seconds=600)
    tick(svc)  # a new streak: a new re-check
    assert len(rq.sent) == 2


def test_a_recheck_that_finds_the_streak_still_short_queues_the_next_one(fake_checks: Script) -> None:
    svc, rq, clock = queued_svc(threshold=3, recheck=120)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)
    clock.advance(seconds=121)
    tick(svc, due_at=rq.sent[0][3])
    assert len(rq.sent) == 2 and svc.store.get("hive-a").consecutive_failures == 2


def test_recheck_after_s_zero_and_a_dry_run_queue_nothing(fake_checks: Script) -> None:
    svc, rq, _ = queued_svc(recheck=0)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)
    svc2, rq2, _ = queued_svc()
    run_tick(new_invocation(svc2, dry_run=True), deadline=Deadline.after(30))
    assert rq.sent == [] and rq2.sent == []


def test_a_queued_tick_due_before_the_last_tick_is_a_duplicate(fake_checks: Script) -> None:
    svc, _, clock = queued_svc()
    due = clock.now()
    clock.advance(seconds=1)
    tick(svc, due_at=due)
    again = tick(svc, due_at=due).targets[0]
    assert again.skipped and "already served" in again.skipped and len(fake_checks.calls) == 1


def _drive(world: Any, svc: Services, fake_checks: Script, rq: RecordingQueue | None) -> tuple[int, str]:
    """Failure → DONE. With a queue: only follow-up messages drive it (each delivered at its
    due time, after the time it asked for passed); without: 10-minute scheduled ticks."""
    clock = svc.clock
    assert isinstance(clock, FakeClock)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    steps = 0
    for steps in range(1, 60):
        if rq is not None:
            target, _, delay, due = rq.sent[-1]
            clock.advance(seconds=delay)
            report = tick(svc, due_at=due).targets[0]
        else:
            clock.advance(minutes=10)
            report = tick(svc).targets[0]
        new = new_clusters(world)
        if new:
            set_steps(new[0], "COMPLETED")
            fake_checks.set("hive", Status.OK)
        if report.recovery and report.recovery.get("phase") in ("DONE", "ESCALATED"):
            return steps, str(report.recovery["phase"])
    raise AssertionError("recovery did not finish")


@pytest.mark.parametrize("dispatch", ["queue", "inline"])
def test_a_recovery_advanced_by_delayed_messages_reaches_done_with_the_same_changing_calls(
        fake_checks: Script, dispatch: str) -> None:
    """The same calls change the world whichever way the runbook is paced (the queue only
    makes it sooner); the inline run is the reference."""
    results: dict[str, Any] = {}
    for mode in ("inline", dispatch):
        with moto_world() as world:
            raw = recovery_raw(world)
            raw["dispatch"] = mode
            svc = services(parse_config(raw), store=MemoryStateStore(), clients=world.clients,
                           clock=real_now_clock())
            rq = RecordingQueue() if mode == "queue" else None
            svc.queue = rq
            start = svc.clock.now()
            with CallLog(world.clients) as log:
                steps, phase = _drive(world, svc, fake_checks, rq)
            results[mode] = (phase, log.mutating(), svc.clock.now() - start, rq)
    assert results["inline"][0] == results[dispatch][0] == "DONE"
    assert results["inline"][1] == results[dispatch][1] and results["inline"][1]
    if dispatch == "queue":
        sent = results["queue"][3].sent
        kinds = [k for _, k, _, _ in sent]
        assert kinds[0] == "re-check" and any(k.startswith("advance (WAIT_READY)") for k in kinds)
        assert {d for _, k, d, _ in sent if k == "advance (WAIT_READY)"} == {60}
        assert results["queue"][2] < results["inline"][2]  # and sooner


def test_the_heartbeat_comes_from_the_dispatcher_not_from_queued_ticks(fake_checks: Script) -> None:
    svc, _, clock = queued_svc()
    queued = tick(svc, due_at=clock.now() - timedelta(seconds=1))
    scheduled = tick(svc)
    assert "Heartbeat" not in {m["name"] for m in queued.metrics}
    assert "Heartbeat" in {m["name"] for m in scheduled.metrics}


class RefusingQueue(RecordingQueue):
    """SQS down: every send fails."""

    def send(self, targets: list[str], *, kind: str, due_at: datetime, delay_s: int = 0) -> queue.Sent:
        return queue.Sent(failed=dict.fromkeys(targets, "ServiceUnavailable: down"))


def test_targets_the_queue_refuses_are_ticked_inline_by_the_dispatcher(fake_checks: Script) -> None:
    raw = raw_config("arn:aws:sns:us-east-1:123456789012:p", ["hive-a", "hive-b"], dispatch="queue")
    svc = services(parse_config(raw), store=MemoryStateStore(), clock=FakeClock())
    svc.queue = RefusingQueue()
    inv = new_invocation(svc)
    report = fanout.fan_out(inv, Request(action="tick", source="scheduled"), Deadline.after(30))
    assert sorted(t.target for t in report.targets) == ["hive-a", "hive-b"]
    assert all("ticked inline" in t.notes[0] for t in report.targets) and len(fake_checks.calls) == 2
    assert report.data and report.data["enqueued"] == 0


# ---------------------------------------------------------------- probes: each target ticked every tick_every_s

@pytest.mark.parametrize(("schedule_s", "every_s", "delays"), [
    (600, 300, [300]), (600, 600, []), (600, 3600, []), (600, 200, [200, 400]),
    (3600, 300, [300, 600, 900]),  # SQS delays stop at 900 s: a long schedule is probed in its first 15 min
    (600, 60, [60, 120, 180, 240, 300, 360, 420, 480, 540]),
])
def test_probe_delays_fill_one_schedule_interval(schedule_s: int, every_s: int, delays: list[int]) -> None:
    assert queue.probe_delays(schedule_s, every_s) == delays


@pytest.mark.parametrize(("raw", "seconds"), [("", 600), ("900", 900), ("60", 60), ("59", 600), ("10 minutes", 600),
                                             ("-600", 600), ("9" * 40, 600), ("86401", 600),
                                             ("²", 600), ("６００", 600)])
def test_the_schedule_interval_comes_from_the_environment_or_is_designs_600(
        monkeypatch: pytest.MonkeyPatch, raw: str, seconds: int) -> None:
    monkeypatch.setenv(queue.SCHEDULE_ENV, raw)
    assert queue.schedule_seconds() == seconds


def _queue_depth(deployed: Deployed) -> tuple[int, int]:
    attrs = deployed.account.clients.client("sqs").get_queue_attributes(
        QueueUrl=deployed.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesDelayed"])


def test_the_scheduled_dispatch_also_enqueues_each_targets_probe_delayed_by_tick_every_s(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    report = handler.lambda_handler(SCHEDULED, LambdaContext("dispatcher"))
    assert report["data"]["enqueued"] == 3  # the contract: one tick per target now
    assert report["data"]["probes"] == {"delays_s": [300], "enqueued": 3, "failed": 0}
    assert _queue_depth(deployed) == (3, 3)  # the probes wait 300 s, invisible until then
    assert len(receive(deployed.account.clients, deployed.url)) == 3
    # a 15-minute schedule: probes at 300 and 600 s; tick_every_s >= the interval: none
    monkeypatch.setenv(queue.SCHEDULE_ENV, "900")
    assert handler.lambda_handler(SCHEDULED, LambdaContext("d2"))["data"]["probes"]["enqueued"] == 6
    deployed.configure(dispatch="queue", tick_every_s=900)
    assert handler.lambda_handler(SCHEDULED, LambdaContext("d3"))["data"]["probes"] == {
        "delays_s": [], "enqueued": 0, "failed": 0}


def test_an_alarm_dispatch_sends_no_probes(deployed: Deployed) -> None:
    alarm = {"AlarmName": "x", "NewStateValue": "ALARM", "Trigger": {"Dimensions": [
        {"name": "target", "value": "hive-a"}]}}
    report = handler.lambda_handler({"Records": [{"Sns": {"Message": json.dumps(alarm)}}]}, LambdaContext("alarm"))
    assert report["data"]["enqueued"] == 1 and "probes" not in report["data"]
    assert _queue_depth(deployed) == (1, 0)


def test_a_probe_record_carries_its_kind_and_due_time_to_the_tick(deployed: Deployed, fake_checks: Script) -> None:
    now = datetime.now().astimezone()
    rec = record(json.dumps({"action": "tick", "target": "hive-a"}), due_at=now)
    rec["messageAttributes"]["kind"] = {"stringValue": "probe", "dataType": "String"}
    queued = queue.parse_record(rec, parse_config(raw_config("arn:aws:sns:us-east-1:1:p", ["hive-a"])))
    assert queued.kind == "probe" and queued.due_at is not None and abs((queued.due_at - now).total_seconds()) < 1
    for raw_kind, kind in (("advance (WAIT_READY)", "advance"), ("x" * 300, ""), ("re-check", "re-check")):
        rec["messageAttributes"]["kind"]["stringValue"] = raw_kind
        assert queue.parse_record(rec, parse_config(raw_config("arn:aws:sns:us-east-1:1:p", ["hive-a"]))).kind == kind
    rec["messageAttributes"]["kind"]["stringValue"] = "probe"
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker")) == {"batchItemFailures": []}
    assert deployed.state("hive-a").last_tick_at and len(fake_checks.calls) == 1


def probe(svc: Services, due_at: datetime) -> TickReport:
    inv = new_invocation(svc, request_id="probe")
    inv.due_at, inv.queued_kind = due_at, queue.PROBE
    return run_tick(inv, deadline=Deadline.after(30))


def test_a_probe_inside_a_recheck_window_is_skipped_so_the_window_is_never_cut_short(fake_checks: Script) -> None:
    svc, rq, clock = queued_svc(threshold=2, recheck=120)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)  # streak 1, re-check pending for 120 s
    clock.advance(seconds=60)
    skipped = probe(svc, clock.now()).targets[0]
    assert skipped.skipped and "follow-up is pending" in skipped.skipped
    assert svc.store.get("hive-a").consecutive_failures == 1 and len(fake_checks.calls) == 1
    clock.advance(seconds=60)
    confirmed = tick(svc, due_at=rq.sent[0][3]).targets[0]  # the re-check confirms, 120 s after the first
    assert confirmed.decision and confirmed.decision["verdict"] == "confirmed"


def test_a_probe_during_a_recovery_is_skipped_and_makes_no_aws_call(fake_checks: Script) -> None:
    svc, _, clock = queued_svc()
    state = svc.store.get("hive-a")
    svc.store.put("hive-a", replace(state, incident={"phase": "WAIT_READY", "id": "i-1"}), lease=None,
                  now=clock.now())
    report = probe(svc, clock.now()).targets[0]
    assert report.skipped and "recovery is running" in report.skipped and fake_checks.calls == []


def _page_minutes(fake_checks: Script, tick_every_s: int) -> float:
    """A failure 10 s after a scheduled dispatch: minutes until it is confirmed, with every
    message the real dispatcher and ticks enqueue delivered at its due time, in order."""
    raw = raw_config("arn:aws:sns:us-east-1:123456789012:p", ["hive-a"], dispatch="queue", tick_every_s=tick_every_s)
    raw["targets"][0]["recovery"]["when"].update(consecutive_failures=2, recheck_after_s=120)
    clock = FakeClock()
    svc = services(parse_config(raw), store=MemoryStateStore(), clock=clock)
    rq = RecordingQueue()
    svc.queue = rq
    start = clock.now()
    failure_at = start + timedelta(seconds=10)
    next_schedule, seen, due_heap = start, 0, []
    fake_checks.set("hive", Status.OK)
    while clock.now() < start + timedelta(minutes=30):
        for _, kind, _, due in rq.sent[seen:]:  # what was enqueued since: deliverable at its due time
            heapq.heappush(due_heap, (due, seen, kind))
            seen += 1
        if not due_heap or due_heap[0][0] >= next_schedule:
            clock.advance(seconds=max(0.0, (next_schedule - clock.now()).total_seconds()))
            fanout.fan_out(new_invocation(svc), Request(action="tick", source="scheduled"), Deadline.after(30))
            next_schedule += timedelta(minutes=10)
            continue
        due, _, kind = heapq.heappop(due_heap)
        clock.advance(seconds=max(0.0, (due - clock.now()).total_seconds()))
        if clock.now() >= failure_at:
            fake_checks.set("hive", Status.CRITICAL, "timeout")
        inv = new_invocation(svc, request_id=kind)
        inv.due_at, inv.queued_kind = due, kind.split(" ")[0]
        report = run_tick(inv, deadline=Deadline.after(30)).targets[0]
        if report.decision and report.decision["verdict"] == "confirmed":
            return (clock.now() - failure_at).total_seconds() / 60
    raise AssertionError("not confirmed in 30 minutes")


def test_a_failure_just_after_a_dispatch_is_confirmed_by_its_probe_and_recheck_not_the_next_schedule(
        fake_checks: Script) -> None:
    probed = _page_minutes(fake_checks, tick_every_s=300)
    unprobed = _page_minutes(fake_checks, tick_every_s=600)
    assert 6.5 < probed < 7.5  # seen by the probe at 5 min, confirmed by the re-check at 7
    assert 11.5 < unprobed < 12.5  # seen at the next schedule (10 min), confirmed at 12


def test_two_dispatches_of_one_schedule_make_one_probe_tick(fake_checks: Script) -> None:
    """EventBridge delivers at least once: a duplicated dispatch sends every probe twice; the
    second delivery finds the target ticked since the probe became due and does nothing."""
    svc, rq, clock = queued_svc()
    for _ in range(2):
        fanout.fan_out(new_invocation(svc), Request(action="tick", source="scheduled"), Deadline.after(30))
    probes = [(kind, due) for _, kind, _, due in rq.sent if kind == queue.PROBE]
    assert len(probes) == 2 and probes[0][1] == probes[1][1]
    clock.advance(seconds=300)
    reports = [probe(svc, due).targets[0] for _, due in probes]
    assert len(fake_checks.calls) == 1 and reports[1].skipped and "already served" in reports[1].skipped


def test_a_probe_just_before_or_after_a_recheck_is_due_is_skipped_the_recheck_counts(fake_checks: Script) -> None:
    """SQS delays are minimums and invocations' clocks differ: a probe due 3 s before the
    re-check (tick_every_s == recheck_after_s makes that common) or arriving 3 s after it
    was due must not count a failure the re-check is about to count."""
    svc, rq, clock = queued_svc(threshold=3, recheck=120)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)
    recheck_due = rq.sent[0][3]
    for offset in (-3, 3):
        clock.t = recheck_due + timedelta(seconds=offset)
        skipped = probe(svc, recheck_due).targets[0]
        assert skipped.skipped and "follow-up is pending" in skipped.skipped, offset
    assert svc.store.get("hive-a").consecutive_failures == 1
    clock.t = recheck_due + timedelta(seconds=6)
    assert not probe(svc, recheck_due + timedelta(seconds=6)).targets[0].skipped  # past the tolerance it ticks
    assert svc.store.get("hive-a").consecutive_failures == 2


def test_through_the_handler_a_probe_record_is_skipped_while_a_recheck_is_pending(
        deployed: Deployed, fake_checks: Script) -> None:
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    now = datetime.now().astimezone()
    first = record(json.dumps({"action": "tick", "target": "hive-a"}), "m-1", due_at=now - timedelta(seconds=1))
    assert handler.lambda_handler(sqs_event(first), LambdaContext("w1")) == {"batchItemFailures": []}
    assert deployed.state("hive-a").recheck_pending_until and _queue_depth(deployed) == (0, 1)  # the re-check
    rec = record(json.dumps({"action": "tick", "target": "hive-a"}), "m-2", due_at=datetime.now().astimezone())
    rec["messageAttributes"]["kind"] = {"stringValue": "probe", "dataType": "String"}
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("w2")) == {"batchItemFailures": []}
    assert len(fake_checks.calls) == 1 and deployed.state("hive-a").consecutive_failures == 1
    rec["messageAttributes"]["kind"]["stringValue"] = "scheduled"  # the same record, not a probe: it ticks
    rec["messageId"] = "m-3"
    handler.lambda_handler(sqs_event(rec), LambdaContext("w3"))
    assert len(fake_checks.calls) == 2


class CountingRefusingQueue(RefusingQueue):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def send(self, targets: list[str], *, kind: str, due_at: datetime, delay_s: int = 0) -> queue.Sent:
        self.asked += 1
        return super().send(targets, kind=kind, due_at=due_at, delay_s=delay_s)


def test_a_refusing_queue_is_not_asked_for_probes_and_the_inline_fallback_comes_first(fake_checks: Script) -> None:
    raw = raw_config("arn:aws:sns:us-east-1:123456789012:p", ["hive-a", "hive-b"], dispatch="queue")
    svc = services(parse_config(raw), store=MemoryStateStore(), clock=FakeClock())
    svc.queue = rq = CountingRefusingQueue()
    report = fanout.fan_out(new_invocation(svc), Request(action="tick", source="scheduled"), Deadline.after(30))
    assert rq.asked == 1 and len(report.targets) == 2  # the scheduled send only; both ticked inline
    assert report.data and report.data["probes"] == {"delays_s": [300], "enqueued": 0, "failed": 0}


class ProbeRefusingQueue(RecordingQueue):
    def send(self, targets: list[str], *, kind: str, due_at: datetime, delay_s: int = 0) -> queue.Sent:
        if kind == queue.PROBE:
            return queue.Sent(failed=dict.fromkeys(targets, "Throttled"))
        return super().send(targets, kind=kind, due_at=due_at, delay_s=delay_s)


def test_probes_sqs_refuses_are_a_metric_not_only_a_log_line(fake_checks: Script) -> None:
    raw = raw_config("arn:aws:sns:us-east-1:123456789012:p", ["hive-a", "hive-b"], dispatch="queue")
    svc = services(parse_config(raw), store=MemoryStateStore(), clock=FakeClock())
    svc.queue = ProbeRefusingQueue()
    report = fanout.fan_out(new_invocation(svc), Request(action="tick", source="scheduled"), Deadline.after(30))
    assert report.data and report.data["probes"]["failed"] == 2 and report.targets == []
    assert {m["name"]: m["value"] for m in report.metrics if m["name"] == "ProbesNotEnqueued"} == {"ProbesNotEnqueued": 2}
