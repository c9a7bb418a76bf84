"""emr_state against moto; states and failed steps forced through moto's backend (they never
progress by themselves), real-API-only shapes (FailureDetails, instance fleets) with Stubber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.emr.models import emr_backends

from checks import registry
from checks.base import CheckContext, Deadline, Status
from checks.emr_state import EmrStateCheck, EmrStateConfig
from monitor.config import ClusterRef
from monitor.core.aws import ClientFactory
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.memory import MemoryStateStore

REGION = "us-east-1"
NAME = "RC.HIVE.ADHOC"


def make_ctx(factory: ClientFactory, ref: ClusterRef | None = None) -> CheckContext:
    return CheckContext(
        target="prod-hive", cluster=ref or ClusterRef(name=NAME), clients=factory, secrets=SecretResolver(factory),
        resolver=HostResolver(), store=MemoryStateStore(), clock=SystemClock(), deadline=Deadline.after(10),
    )


def check(**kw: Any) -> EmrStateCheck:
    return EmrStateCheck(EmrStateConfig(type="emr_state", name="cluster-state", **kw))


def launch(factory: ClientFactory, name: str = NAME, steps: int = 1) -> str:
    return str(factory.client("emr").run_job_flow(
        Name=name, ReleaseLabel="emr-6.15.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"KeepJobFlowAliveWhenNoSteps": True, "InstanceGroups": [
            {"Name": "master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"Name": "core", "InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2}]},
        Steps=[{"Name": f"setup-hive-{i}", "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]}} for i in range(steps)],
    )["JobFlowId"])


def backend_cluster(cluster_id: str) -> Any:
    return emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[cluster_id]


@pytest.fixture
def factory() -> Any:
    with mock_aws():
        yield ClientFactory(REGION)


def test_waiting_cluster_is_ok_and_records_facts_for_recovery(factory: ClientFactory) -> None:
    cid = launch(factory)
    ctx = make_ctx(factory)
    r = check().run(ctx)
    assert r.status is Status.OK, r.summary
    obs = r.observed
    assert obs["cluster_id"] == cid and obs["state"] == "WAITING"
    assert obs["master_instance_id"].startswith("i-")
    assert obs["master_private_dns"].endswith(".ec2.internal")
    assert obs["master_public_dns"]
    assert obs["normalized_instance_hours"] == 0
    assert obs["failed_steps"] == []
    assert ctx.facts["cluster"] == {
        "active": True, "id": cid, "name": NAME, "state": "WAITING", "master_public_dns": obs["master_public_dns"],
        "master_instance_id": obs["master_instance_id"], "master_private_dns": obs["master_private_dns"],
        "master_private_ip": obs["master_private_ip"],
    }


def test_terminated_with_errors_by_id_is_critical_with_reason(factory: ClientFactory) -> None:
    cid = launch(factory)
    cluster = backend_cluster(cid)
    cluster.state = "TERMINATED_WITH_ERRORS"
    cluster.last_state_change_reason = "Master instance failed health check"
    ctx = make_ctx(factory, ClusterRef(id=cid))
    r = check().run(ctx)
    assert r.status is Status.CRITICAL
    assert "TERMINATED_WITH_ERRORS" in r.summary and "Master instance failed" in r.summary
    assert r.observed["state_change_reason"]["message"] == "Master instance failed health check"
    assert ctx.facts["cluster"]["active"] is False


@pytest.mark.parametrize("state", ["TERMINATING", "TERMINATED"])
def test_ending_states_are_critical(factory: ClientFactory, state: str) -> None:
    cid = launch(factory)
    backend_cluster(cid).state = state
    assert check().run(make_ctx(factory, ClusterRef(id=cid))).status is Status.CRITICAL


def test_no_active_cluster_by_name_is_critical_and_names_the_last_one(factory: ClientFactory) -> None:
    cid = launch(factory)
    cluster = backend_cluster(cid)
    cluster.state = "TERMINATED_WITH_ERRORS"
    cluster.last_state_change_reason = "Bootstrap failure"
    launch(factory, name="some-other-cluster")
    ctx = make_ctx(factory)
    r = check().run(ctx)
    assert r.status is Status.CRITICAL
    assert f"no active cluster named {NAME!r}" in r.summary
    assert r.observed["last_cluster"]["id"] == cid
    assert "Bootstrap failure" in r.summary
    assert ctx.facts["cluster"]["active"] is False and ctx.facts["cluster"]["last_id"] == cid


def test_no_cluster_at_all_is_critical(factory: ClientFactory) -> None:
    r = check().run(make_ctx(factory))
    assert r.status is Status.CRITICAL
    assert r.observed["cluster_id"] is None


def test_two_active_clusters_with_the_name_is_unknown_config(factory: ClientFactory) -> None:
    launch(factory)
    launch(factory)
    r = check().run(make_ctx(factory))
    assert r.status is Status.UNKNOWN
    assert r.error_kind == "config"
    assert "2 active clusters" in r.summary


def test_unknown_cluster_id_is_unknown_config(factory: ClientFactory) -> None:
    r = check().run(make_ctx(factory, ClusterRef(id="j-DOESNOTEXIST")))
    assert r.status is Status.UNKNOWN
    assert r.error_kind == "config"


def test_recent_failed_step_is_warning_with_name_id_and_reason(factory: ClientFactory) -> None:
    cid = launch(factory, steps=2)
    step = backend_cluster(cid).steps[1]
    step.state = "FAILED"
    step.last_state_change_reason = "Step failed with exitCode 1"
    r = check().run(make_ctx(factory))
    assert r.status is Status.WARNING, r.summary
    [failed] = r.observed["failed_steps"]
    assert failed["name"] == "setup-hive-1" and failed["id"] == step.id
    assert failed["reason"] == "Step failed with exitCode 1"
    assert step.id in r.summary


def test_failed_step_outside_the_window_is_ignored(factory: ClientFactory) -> None:
    cid = launch(factory)
    step = backend_cluster(cid).steps[0]
    step.state = "FAILED"
    step.end_date_time = datetime.now(UTC) - timedelta(days=3)
    r = check(failed_steps_window_h=24).run(make_ctx(factory))
    assert r.status is Status.OK, r.summary


def test_bootstrapping_is_ok_at_first_and_warning_when_long(factory: ClientFactory) -> None:
    cid = launch(factory)
    cluster = backend_cluster(cid)
    cluster.state = "BOOTSTRAPPING"
    r = check(max_starting_min=45).run(make_ctx(factory))
    assert r.status is Status.OK, r.summary
    cluster.creation_datetime = datetime.now(UTC) - timedelta(minutes=90)
    r = check(max_starting_min=45).run(make_ctx(factory))
    assert r.status is Status.WARNING
    assert r.observed["starting_for_min"] >= 89


def test_api_error_is_unknown_with_the_code(factory: ClientFactory) -> None:
    emr = factory.client("emr")
    with Stubber(emr) as stub:
        stub.add_client_error("list_clusters", service_error_code="AccessDeniedException", http_status_code=400)
        r = check().run(make_ctx(factory))
    assert r.status is Status.UNKNOWN and r.error_kind == "api"
    assert r.observed["error_code"] == "AccessDeniedException"


def test_throttled_list_clusters_is_retried(factory: ClientFactory) -> None:
    cid = launch(factory)
    emr = factory.client("emr")
    summary = emr.list_clusters(ClusterStates=["WAITING"])["Clusters"]
    described = emr.describe_cluster(ClusterId=cid)
    described["Cluster"].pop("KerberosAttributes", None)  # moto returns {}, which the real model rejects
    instances = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"])
    with Stubber(emr) as stub:
        stub.add_client_error("list_clusters", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_response("list_clusters", {"Clusters": summary})
        stub.add_response("describe_cluster", {"Cluster": described["Cluster"]})
        stub.add_response("list_instances", {"Instances": instances["Instances"]})
        stub.add_response("list_steps", {"Steps": []})
        r = check().run(make_ctx(factory))
        stub.assert_no_pending_responses()
    assert r.status is Status.OK, r.summary


def test_instance_fleet_cluster_and_real_failure_details(factory: ClientFactory) -> None:
    """Shapes moto lacks: InstanceCollectionType=INSTANCE_FLEET and steps' FailureDetails."""
    emr = factory.client("emr")
    now = datetime.now(UTC)
    with Stubber(emr) as stub:
        stub.add_response("describe_cluster", {"Cluster": {
            "Id": "j-FLEET1", "Name": NAME, "InstanceCollectionType": "INSTANCE_FLEET",
            "MasterPublicDnsName": "ip-10-0-0-5.ec2.internal", "NormalizedInstanceHours": 96,
            "Status": {"State": "RUNNING", "StateChangeReason": {"Code": "ALL_STEPS_COMPLETED", "Message": "ok"},
                       "Timeline": {"CreationDateTime": now - timedelta(days=2)}}}}, {"ClusterId": "j-FLEET1"})
        stub.add_response("list_instances", {"Instances": [
            {"Id": "ci-1", "Ec2InstanceId": "i-0old", "PrivateDnsName": "ip-10-0-0-4.ec2.internal",
             "Status": {"State": "TERMINATED"}},
            {"Id": "ci-2", "Ec2InstanceId": "i-0abc", "PrivateDnsName": "ip-10-0-0-5.ec2.internal",
             "PrivateIpAddress": "10.0.0.5", "Status": {"State": "RUNNING"}}]},
            {"ClusterId": "j-FLEET1", "InstanceFleetType": "MASTER"})
        stub.add_response("list_steps", {"Steps": [{
            "Id": "s-1", "Name": "load-udfs", "Status": {
                "State": "FAILED", "FailureDetails": {"Reason": "Unknown error.", "Message": "Exception in thread main",
                                                      "LogFile": "s3://logs/j-FLEET1/steps/s-1/"},
                "Timeline": {"CreationDateTime": now - timedelta(hours=2), "EndDateTime": now - timedelta(hours=1)}}}]},
            {"ClusterId": "j-FLEET1", "StepStates": ["FAILED"]})
        ctx = make_ctx(factory, ClusterRef(id="j-FLEET1"))
        r = check().run(ctx)
        stub.assert_no_pending_responses()
    assert r.status is Status.WARNING, r.summary
    assert r.observed["master_instance_id"] == "i-0abc"
    assert r.observed["normalized_instance_hours"] == 96
    assert r.observed["state_change_reason"] == {"code": "ALL_STEPS_COMPLETED", "message": "ok"}
    assert r.observed["failed_steps"][0]["reason"] == "Unknown error."
    assert r.observed["failed_steps"][0]["log_file"] == "s3://logs/j-FLEET1/steps/s-1/"
    assert ctx.facts["cluster"]["master_private_dns"] == "ip-10-0-0-5.ec2.internal"


def test_declares_the_iam_actions_it_calls() -> None:
    assert registry.check_class("emr_state") is EmrStateCheck
    assert set(EmrStateCheck.permissions) == {
        "elasticmapreduce:ListClusters", "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstances", "elasticmapreduce:ListSteps"}


def test_per_tick_cost_against_moto(factory: ClientFactory) -> None:
    launch(factory)
    c = check()
    c.run(make_ctx(factory))  # moto's first EMR call is slow (~1 s)
    runs = sorted(c.run(make_ctx(factory)).latency_ms for _ in range(5))
    print(f"\nemr_state per tick (moto): median {runs[2]:.1f} ms")
    assert runs[2] < 1000
