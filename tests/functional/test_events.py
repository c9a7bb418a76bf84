"""EventBridge events through the handler (issue 22): EMR state changes and CloudWatch alarm
state changes tick the targets they concern at once, inline or through the work queue; the
checks decide. Real event shapes from the AWS documentation (EventBridge events reference for
Amazon EMR; CloudWatch "Alarm events and EventBridge")."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import handler, queue, triggers
from monitor.config import parse_config
from monitor.core.clock import iso
from monitor.core.state.base import TargetState
from monitor.core.state.memory import MemoryStateStore
from monitor.runtime import Services
from tests.fakes import services
from tests.functional.aws import LambdaContext
from tests.functional.test_queue import make_queue, receive, sqs_event
from tests.recover_fixtures import (
    CLUSTER_NAME,
    TARGET,
    CallLog,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_raw,
    set_cluster_state,
)

# The documented examples (ids and names as AWS shows them; the tests set cluster id and time).
CLUSTER_CHANGE: dict[str, Any] = {
    "version": "0", "id": "999cccaa-eaaa-0000-1111-123456789012", "detail-type": "EMR Cluster State Change",
    "source": "aws.emr", "account": "123456789012", "time": "2016-12-16T20:43:05Z", "region": "us-east-1",
    "resources": [],
    "detail": {"severity": "INFO", "stateChangeReason": "{\"code\":\"USER_REQUEST\",\"message\":\"Terminated by user request\"}",
               "name": "Development Cluster", "clusterId": "j-1YONHTCP3YZKC", "state": "TERMINATED",
               "message": "Amazon EMR Cluster j-1YONHTCP3YZKC (Development Cluster) has terminated at 2016-12-16 "
                          "20:43 UTC with a reason of USER_REQUEST."},
}
GROUP_CHANGE: dict[str, Any] = {
    "version": "0", "id": "2f8147ab-8c48-47c6-b0b6-3ee23ec8d8a0", "detail-type": "EMR Instance Group State Change",
    "source": "aws.emr", "account": "123456789012", "time": "2016-12-16T20:53:09Z", "region": "us-east-1",
    "resources": [],
    "detail": {"market": "ON_DEMAND", "severity": "INFO", "requestedInstanceCount": "2", "instanceType": "m3.xlarge",
               "instanceGroupType": "CORE", "instanceGroupId": "ig-ABCDEFGHIJKL", "clusterId": "j-ABCDEFGHIJKL",
               "runningInstanceCount": "2", "state": "RUNNING",
               "message": "The resizing operation for instance group ig-ABCDEFGHIJKL in Amazon EMR cluster "
                          "j-ABCDEFGHIJKL (Development Cluster) is complete."},
}
FLEET_CHANGE: dict[str, Any] = {
    "version": "0", "id": "6b3bdc1f-8e6e-47f7-b8fe-9c5e8e1e2a3b", "detail-type": "EMR Instance Fleet State Change",
    "source": "aws.emr", "account": "123456789012", "time": "2016-12-16T20:53:09Z", "region": "us-east-1",
    "resources": [],
    "detail": {"severity": "INFO", "instanceFleetId": "if-ABCDEFGHIJKL", "clusterId": "j-ABCDEFGHIJKL",
               "instanceFleetType": "MASTER", "state": "RUNNING", "provisionedOnDemandCapacity": 1,
               "provisionedSpotCapacity": 0, "targetOnDemandCapacity": 1, "targetSpotCapacity": 0,
               "message": "Instance fleet if-ABCDEFGHIJKL in Amazon EMR cluster j-ABCDEFGHIJKL is RUNNING."},
}
ALARM_CHANGE: dict[str, Any] = {
    "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92", "detail-type": "CloudWatch Alarm State Change",
    "source": "aws.cloudwatch", "account": "123456789012", "time": "2019-10-02T17:04:40Z", "region": "us-east-1",
    "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
    "detail": {"alarmName": "ServerCpuTooHigh",
               "configuration": {"description": "Goes into alarm when server CPU utilization is too high!",
                                 "metrics": [{"id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87", "metricStat": {
                                     "metric": {"dimensions": {"InstanceId": "i-12345678901234567"},
                                                "name": "CPUUtilization", "namespace": "AWS/EC2"},
                                     "period": 300, "stat": "Average"}, "returnData": True}]},
               "previousState": {"reason": "Threshold Crossed: 1 out of the last 1 datapoints [0.0666 (01/10/19 "
                                           "13:46:00)] was not greater than the threshold (50.0).",
                                 "timestamp": "2019-10-02T13:47:12.245+0000", "value": "OK"},
               "state": {"reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 "
                                   "16:59:00)] was greater than the threshold (50.0).",
                         "timestamp": "2019-10-02T17:04:40.985+0000", "value": "ALARM"}},
}


def emr_event(base: dict[str, Any], cluster_id: str, state: str, *, when: datetime | None = None,
              **detail: Any) -> dict[str, Any]:
    ev = copy.deepcopy(base)
    ev["detail"].update(clusterId=cluster_id, state=state, **detail)
    if when is not None:
        ev["time"] = iso(when).replace("+00:00", "Z")
    return ev


def alarm_event(name: str, value: str = "ALARM", when: datetime | None = None) -> dict[str, Any]:
    ev = copy.deepcopy(ALARM_CHANGE)
    ev["detail"]["alarmName"] = name
    ev["detail"]["state"]["value"] = value
    if when is not None:
        ev["time"] = iso(when)
        ev["detail"]["state"]["timestamp"] = iso(when)
    return ev


# ---------------------------------------------------------------- parsing (real shapes)

def test_the_documented_events_parse_into_what_sentinel_uses() -> None:
    c = triggers.parse(CLUSTER_CHANGE)
    assert (c.cluster_id, c.state, c.name, c.reason) == ("j-1YONHTCP3YZKC", "TERMINATED", "Development Cluster",
                                                         "USER_REQUEST: Terminated by user request")
    assert c.cluster_gone and c.evidence() is not None
    g = triggers.parse(GROUP_CHANGE)
    assert (g.cluster_id, g.role, g.state, g.cluster_gone) == ("j-ABCDEFGHIJKL", "CORE", "RUNNING", False)
    f = triggers.parse(FLEET_CHANGE)
    assert (f.role, f.cluster_gone) == ("MASTER", False)
    assert triggers.parse(emr_event(FLEET_CHANGE, "j-ABCDEFGHIJKL", "TERMINATED")).cluster_gone
    assert triggers.parse(emr_event(GROUP_CHANGE, "j-ABCDEFGHIJKL", "FAILED", instanceGroupType="MASTER")).cluster_gone
    assert not triggers.parse(emr_event(GROUP_CHANGE, "j-ABCDEFGHIJKL", "TERMINATED")).cluster_gone  # CORE
    a = triggers.parse(ALARM_CHANGE)
    assert (a.alarm_name, a.state, a.changed_at) == ("ServerCpuTooHigh", "ALARM", "2019-10-02T17:04:40.985+0000")
    assert a.evidence() == {"detail_type": "CloudWatch Alarm State Change", "alarm": "ServerCpuTooHigh",
                            "state": "ALARM", "reason": a.reason[:300], "time": "2019-10-02T17:04:40.985+0000",
                            "id": ALARM_CHANGE["id"]}
    assert triggers.parse(alarm_event("x", "OK")).evidence() is None


BAD = [
    ({**CLUSTER_CHANGE, "detail-type": "EMR Step Status Change"}, "not served"),
    ({**CLUSTER_CHANGE, "detail": "TERMINATED"}, "detail: must be an object"),
    (emr_event(CLUSTER_CHANGE, "i-123", "TERMINATED"), "not an EMR cluster id"),
    ({**CLUSTER_CHANGE, "detail": {"state": "TERMINATED"}}, "detail.clusterId"),
    ({**ALARM_CHANGE, "detail": {"alarmName": "x"}}, "detail.state.value"),
    (alarm_event("x" * 300), "detail.alarmName: longer than 255"),
    (emr_event(CLUSTER_CHANGE, "j-1YONHTCP3YZKC", "TERMINATED", message="x" * (70 * 1024)), "bytes, more than"),
]


@pytest.mark.parametrize(("event", "words"), BAD, ids=[w for _, w in BAD])
def test_malformed_and_huge_events_are_usage_errors(event: dict[str, Any], words: str) -> None:
    with pytest.raises(Exception, match=words):
        triggers.parse(event)


# ---------------------------------------------------------------- the handler, inline (moto)

@dataclass
class Deployed:
    world: World
    path: Path
    svc: Services
    raw: dict[str, Any]

    def configure(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.path.write_text(yaml.safe_dump(raw))
        handler._WARM.configs = handler.ConfigCache()
        self.svc.config = parse_config(raw)

    def send(self, event: dict[str, Any], request_id: str = "ev-1") -> dict[str, Any]:
        return handler.lambda_handler(event, LambdaContext(request_id))

    def state(self) -> TargetState:
        return self.svc.store.get(TARGET)


def emr_raw(world: World, consecutive: int = 1, **top: Any) -> dict[str, Any]:
    """One recoverable target watched by emr_state (the check that reads the cluster)."""
    raw = recovery_raw(world, when={"checks": ["emr"], "consecutive_failures": consecutive, "min_gap_s": 60},
                       verify={"checks": ["emr"], "master": {"port": 10000}})
    raw["targets"][0]["checks"] = [{"type": "emr_state", "name": "emr", "failed_steps_window_h": 0}]
    raw.update(top)
    return raw


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    with moto_world() as world:
        path = tmp_path / "sentinel.yaml"
        raw = emr_raw(world)
        path.write_text(yaml.safe_dump(raw))
        svc = services(parse_config(raw), store=MemoryStateStore(), clients=world.clients, clock=real_now_clock())
        monkeypatch.setenv("SENTINEL_CONFIG", str(path))
        monkeypatch.delenv(queue.QUEUE_URL_ENV, raising=False)
        monkeypatch.setattr(handler, "_WARM", handler._Warm())
        monkeypatch.setattr(handler._WARM, "services_for", lambda source: svc)
        yield Deployed(world, path, svc, raw)


def test_an_emr_termination_event_ticks_the_target_and_starts_the_incident_in_that_tick(deployed: Deployed) -> None:
    world = deployed.world
    set_cluster_state(world.cluster_id, "TERMINATED")  # EMR terminated it (not sentinel)
    now = deployed.svc.clock.now()
    report = deployed.send(emr_event(CLUSTER_CHANGE, world.cluster_id, "TERMINATED", when=now, name=CLUSTER_NAME))
    assert report["data"]["ticked"] == [TARGET] and report["data"]["mapped_by"] == "config"
    assert report["data"]["dispatch"] == "inline" and report["data"]["evidence"]["state"] == "TERMINATED"
    [t] = report["targets"]
    assert t["status"] == "CRITICAL" and t["decision"]["verdict"] == "confirmed"
    assert t["recovery"] and t["recovery"]["incident"], t  # started within this tick, not at the next schedule
    assert len(new_clusters(world)) == 1 and deployed.state().active_incident
    assert "Heartbeat" not in {m["name"] for m in report["metrics"]}  # an event is not the schedule
    assert report["exit_code"] == 1


def test_a_duplicate_or_late_event_is_one_look(deployed: Deployed) -> None:
    deployed.configure(emr_raw(deployed.world, consecutive=2))
    world = deployed.world
    set_cluster_state(world.cluster_id, "TERMINATED")
    event = emr_event(CLUSTER_CHANGE, world.cluster_id, "TERMINATED", when=deployed.svc.clock.now(), name=CLUSTER_NAME)
    first = deployed.send(event)
    assert first["targets"][0]["decision"]["verdict"] == "failing"  # one look: 1 of 2
    deployed.svc.clock.advance(seconds=5)
    again = deployed.send(event, "ev-2")  # EventBridge delivered it twice
    assert again["targets"][0]["skipped"].startswith("queued tick already served")
    assert deployed.state().streaks == {"emr": 1} and not deployed.state().active_incident
    assert new_clusters(world) == []


def test_sentinels_own_retire_is_ignored(deployed: Deployed) -> None:
    world = deployed.world
    deployed.svc.store.put(TARGET, TargetState(incident={
        "id": "inc-1", "phase": "RETIRE_OLD", "old": {"cluster_id": world.cluster_id}, "new": {"cluster_id": "j-NEW"}}),
        lease=None, now=deployed.svc.clock.now())
    before = deployed.state().version
    with CallLog(world.clients) as log:
        report = deployed.send(emr_event(CLUSTER_CHANGE, world.cluster_id, "TERMINATED", name=CLUSTER_NAME))
    assert report["targets"] == [] and report["exit_code"] == 0
    assert "sentinel's own retire" in report["data"]["ignored"][0]
    assert deployed.state().version == before and log.count("TerminateJobFlows") == 0


def test_an_event_for_a_cluster_nobody_watches_is_reported_and_ignored(deployed: Deployed) -> None:
    other = deployed.world.emr().run_job_flow(Name="someone-else", Instances={
        "MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole")["JobFlowId"]
    report = deployed.send(emr_event(GROUP_CHANGE, other, "RUNNING"))
    assert report["targets"] == [] and report["exit_code"] == 0 and report["errors"] == []
    assert "belongs to no configured target" in report["data"]["ignored"][0]
    assert deployed.svc.store.get(TARGET).version == 0  # nothing written


def test_a_group_event_is_mapped_by_the_cluster_the_state_remembers(deployed: Deployed) -> None:
    world = deployed.world
    assert deployed.send({"action": "tick"})["targets"][0]["status"] == "OK"  # emr_state saw the cluster
    deployed.svc.clock.advance(seconds=120)
    report = deployed.send(emr_event(GROUP_CHANGE, world.cluster_id, "RESIZING", when=deployed.svc.clock.now()))
    assert report["data"]["mapped_by"] == "state" and report["data"]["ticked"] == [TARGET]
    assert report["targets"][0]["status"] == "OK"  # a reason to look; the check decides


def test_a_cluster_is_mapped_by_its_sentinel_target_tag(deployed: Deployed) -> None:
    world = deployed.world
    raw = emr_raw(world)
    raw["targets"][0]["cluster"] = {"name": "renamed-by-someone"}
    deployed.configure(raw)
    world.emr().add_tags(ResourceId=world.cluster_id, Tags=[{"Key": "sentinel:target", "Value": TARGET}])
    report = deployed.send(emr_event(GROUP_CHANGE, world.cluster_id, "RUNNING"))
    assert report["data"]["mapped_by"] == "tag" and report["data"]["ticked"] == [TARGET]


def test_a_master_group_lost_is_critical_at_once_when_no_master_runs(deployed: Deployed,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from checks.emr_state import EmrStateCheck

    world = deployed.world
    ev = emr_event(GROUP_CHANGE, world.cluster_id, "FAILED", when=deployed.svc.clock.now(), instanceGroupType="MASTER")
    deployed.svc.clock.advance(seconds=1)
    still = deployed.send(ev)  # the master still runs (a stale or forged event): noted, not believed
    [check] = still["targets"][0]["checks"]
    assert check["status"] == "OK" and "not confirmed by the cluster's own state" in check["summary"]
    assert check["observed"]["event"]["role"] == "MASTER"
    monkeypatch.setattr(EmrStateCheck, "_masters", lambda self, ctx, emr, cluster: [])  # the master is gone
    deployed.svc.clock.advance(seconds=120)
    ev2 = emr_event(GROUP_CHANGE, world.cluster_id, "FAILED", when=deployed.svc.clock.now(), instanceGroupType="MASTER")
    deployed.svc.clock.advance(seconds=1)
    gone = deployed.send(ev2, "ev-2")
    [check] = gone["targets"][0]["checks"]
    assert check["status"] == "CRITICAL" and "no running master instance" in check["summary"]
    assert gone["targets"][0]["decision"]["verdict"] == "confirmed"


def test_alarm_events_tick_the_targets_that_listen_to_them(deployed: Deployed) -> None:
    raw = emr_raw(deployed.world)
    raw["targets"][0]["triggers"] = {"alarms": ["hive-elb-no-backend"]}
    deployed.configure(raw)
    now = deployed.svc.clock.now()
    hit = deployed.send(alarm_event("hive-elb-no-backend", when=now))
    assert hit["data"]["ticked"] == [TARGET] and hit["data"]["mapped_by"] == "alarm"
    unknown = deployed.send(alarm_event("ServerCpuTooHigh", when=now), "ev-2")
    assert unknown["targets"] == [] and "in no target's triggers.alarms" in unknown["data"]["ignored"][0]
    ok = deployed.send(alarm_event("hive-elb-no-backend", "OK", when=now), "ev-3")
    assert ok["targets"] == [] and "not ALARM" in ok["data"]["ignored"][0]


@pytest.mark.parametrize("event", [
    {**CLUSTER_CHANGE, "detail-type": "EMR Step Status Change"},
    {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {"state": "stopped"}},
    emr_event(CLUSTER_CHANGE, "j-1YONHTCP3YZKC", "TERMINATED", message="x" * (70 * 1024)),
    {**ALARM_CHANGE, "detail": []},
], ids=["other-emr-type", "foreign-source", "huge", "malformed"])
def test_malformed_huge_and_foreign_events_exit_2_and_touch_nothing(deployed: Deployed, event: dict[str, Any]) -> None:
    with CallLog(deployed.world.clients) as log:
        report = deployed.send(event)
    assert report["exit_code"] == 2 and report["errors"] and report["errors"][0].startswith("usage:")
    assert log.calls == [] and deployed.svc.store.get(TARGET).version == 0


# ---------------------------------------------------------------- through the work queue

def test_with_dispatch_queue_an_event_is_queued_kind_event_and_the_worker_ticks_with_the_evidence(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    world = deployed.world
    url, _ = make_queue(world.clients)
    monkeypatch.setenv(queue.QUEUE_URL_ENV, url)
    deployed.configure(emr_raw(world, consecutive=2, dispatch="queue"))
    set_cluster_state(world.cluster_id, "TERMINATED")
    now = deployed.svc.clock.now()
    report = deployed.send(emr_event(CLUSTER_CHANGE, world.cluster_id, "TERMINATED", when=now, name=CLUSTER_NAME))
    assert report["data"]["dispatch"] == "queue" and report["data"]["enqueued"] == 1 and report["targets"] == []
    [rec] = receive(world.clients, url)
    assert json.loads(rec["body"]) == {"action": "tick", "target": TARGET}
    assert rec["messageAttributes"]["kind"]["stringValue"] == "event"
    assert json.loads(rec["messageAttributes"]["evidence"]["stringValue"])["cluster_id"] == world.cluster_id
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker")) == {"batchItemFailures": []}
    state = deployed.state()
    assert state.streaks == {"emr": 1} and state.last_tick_at
    [check] = state.last_results
    assert check["status"] == "CRITICAL" and check["observed"]["event"]["state"] == "TERMINATED"
    # The confirmation re-check is queued (delayed recheck_after_s), not left to the next schedule.
    assert state.recheck_pending_until
    attrs = world.clients.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_duplicate_queued_event_tick_is_dropped(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    world = deployed.world
    url, _ = make_queue(world.clients)
    monkeypatch.setenv(queue.QUEUE_URL_ENV, url)
    raw = emr_raw(world, dispatch="queue")
    raw["targets"][0]["cluster"] = {"id": world.cluster_id}
    deployed.configure(raw)
    event = emr_event(GROUP_CHANGE, world.cluster_id, "RUNNING", when=deployed.svc.clock.now())
    assert deployed.send(event)["data"]["mapped_by"] == "config"
    deployed.send(event, "ev-2")  # EventBridge delivered it twice
    records = receive(world.clients, url)
    assert len(records) == 2
    looks = []
    for i, rec in enumerate(records):
        handler.lambda_handler(sqs_event(rec), LambdaContext(f"worker-{i}"))
        looks.append(deployed.state().last_tick_at)
        deployed.svc.clock.advance(seconds=5)
    assert looks[0] and looks[1] == looks[0]  # the second delivery found the target ticked since: one look


def test_a_listed_alarm_through_the_queue_confirms_with_the_events_own_look(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The balancer lost its backend: Route 53's health check alarm is the first look, the
    worker's tick the second, and the incident starts in that tick (no 120-s re-check)."""
    world = deployed.world
    url, _ = make_queue(world.clients)
    monkeypatch.setenv(queue.QUEUE_URL_ENV, url)
    raw = emr_raw(world, consecutive=2, dispatch="queue")
    raw["targets"][0]["triggers"] = {"alarms": ["sentinel-trigger-hive-no-backend"]}
    deployed.configure(raw)
    set_cluster_state(world.cluster_id, "TERMINATED")
    now = deployed.svc.clock.now()
    report = deployed.send(alarm_event("sentinel-trigger-hive-no-backend", when=now))
    assert report["data"]["enqueued"] == 1 and report["data"]["evidence"]["alarm"] == "sentinel-trigger-hive-no-backend"
    [rec] = receive(world.clients, url)
    assert rec["messageAttributes"]["kind"]["stringValue"] == "event"
    assert json.loads(rec["messageAttributes"]["evidence"]["stringValue"])["state"] == "ALARM"
    assert handler.lambda_handler(sqs_event(rec), LambdaContext("worker")) == {"batchItemFailures": []}
    state = deployed.state()
    assert state.streaks == {"emr": 2} and state.active_incident and len(new_clusters(world)) == 1
