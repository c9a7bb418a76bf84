"""The clone builder against real API response shapes moto cannot produce (instance fleets,
per-group configurations, auto-termination, managed scaling, Kerberos), served by botocore's
Stubber, which checks every response against the service model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from recover.calls import AwsCalls
from recover.clone import build_request, ebs_configuration, read_cluster
from recover.facades import Emr
from recover.spec import finalize

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
READY = T0 + timedelta(minutes=12)


class OneClient:
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, region: str | None = None) -> Any:
        assert service == "emr"
        return self._client


def _timeline(created: datetime) -> dict[str, Any]:
    return {"CreationDateTime": created}


FLEET_CLUSTER: dict[str, Any] = {
    "Id": "j-FLEET1", "Name": "RC.HIVE.FLEET",
    "Status": {"State": "WAITING", "Timeline": {"CreationDateTime": T0, "ReadyDateTime": READY}},
    "InstanceCollectionType": "INSTANCE_FLEET",
    "Ec2InstanceAttributes": {
        "Ec2KeyName": "rc-emr", "Ec2SubnetId": "subnet-a", "RequestedEc2SubnetIds": ["subnet-a", "subnet-b"],
        "Ec2AvailabilityZone": "us-east-1a", "IamInstanceProfile": "EMR_EC2_Hive",
        "EmrManagedMasterSecurityGroup": "sg-m", "EmrManagedSlaveSecurityGroup": "sg-s",
        "ServiceAccessSecurityGroup": "sg-svc", "AdditionalMasterSecurityGroups": ["sg-x"],
        "AdditionalSlaveSecurityGroups": ["sg-y", "sg-z"],
    },
    "LogUri": "s3n://rc-logs/fleet/", "LogEncryptionKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
    "ReleaseLabel": "emr-7.1.0", "OSReleaseLabel": "2.0.20240610.1",
    "AutoTerminate": False, "TerminationProtected": True, "UnhealthyNodeReplacement": True,
    "VisibleToAllUsers": True,
    "Applications": [{"Name": "Hive", "Version": "3.1.3"}, {"Name": "Tez", "Version": "0.10.2"}],
    "Tags": [{"Key": "team", "Value": "rc"}, {"Key": "aws:cloudformation:stack-name", "Value": "x"},
             {"Key": "sentinel:incident", "Value": "old-incident"}],
    "ServiceRole": "EMR_Hive_Service", "NormalizedInstanceHours": 1200,
    "MasterPublicDnsName": "ip-10-1-2-3.ec2.internal",
    "Configurations": [{"Classification": "hive-site", "Properties": {
        "javax.jdo.option.ConnectionPassword": "metastore-secret", "hive.server2.enable.doAs": "false"}}],
    "SecurityConfiguration": "rc-tls", "AutoScalingRole": "EMR_AutoScaling_DefaultRole",
    "ScaleDownBehavior": "TERMINATE_AT_TASK_COMPLETION", "CustomAmiId": "ami-0abc",
    "EbsRootVolumeSize": 64, "EbsRootVolumeIops": 3000, "EbsRootVolumeThroughput": 125,
    "RepoUpgradeOnBoot": "NONE",
    "KerberosAttributes": {"Realm": "EC2.INTERNAL", "KdcAdminPassword": "should-never-be-copied",
                           "ADDomainJoinUser": "joiner"},
    "StepConcurrencyLevel": 4,
    "PlacementGroups": [{"InstanceRole": "MASTER", "PlacementStrategy": "SPREAD"}],
}

GP3 = {"VolumeType": "gp3", "SizeInGB": 256, "Iops": 3000, "Throughput": 250}
SPOT_SPEC = {"TimeoutDurationMinutes": 20, "TimeoutAction": "SWITCH_TO_ON_DEMAND",
             "AllocationStrategy": "price-capacity-optimized"}
FLEETS: list[dict[str, Any]] = [
    {"Id": "if-core", "Name": "core", "InstanceFleetType": "CORE", "Status": {"State": "RUNNING"},
     "TargetOnDemandCapacity": 4, "TargetSpotCapacity": 8,
     "InstanceTypeSpecifications": [
         {"InstanceType": "r5.2xlarge", "WeightedCapacity": 4, "BidPriceAsPercentageOfOnDemandPrice": 60.0,
          "Configurations": [{"Classification": "yarn-site", "Properties": {"yarn.nodemanager.vmem-check-enabled": "false"}}],
          "EbsBlockDevices": [{"VolumeSpecification": GP3, "Device": "/dev/sdb"},
                              {"VolumeSpecification": GP3, "Device": "/dev/sdc"}],
          "EbsOptimized": True, "Priority": 1.0},
         {"InstanceType": "r6i.2xlarge", "WeightedCapacity": 4, "BidPrice": "0.30", "Priority": 2.0}],
     "LaunchSpecifications": {"SpotSpecification": SPOT_SPEC,
                              "OnDemandSpecification": {"AllocationStrategy": "lowest-price"}},
     "ResizeSpecifications": {"SpotResizeSpecification": {"TimeoutDurationMinutes": 30},
                              "OnDemandResizeSpecification": {"TimeoutDurationMinutes": 30}}},
    {"Id": "if-master", "Name": "master", "InstanceFleetType": "MASTER", "Status": {"State": "RUNNING"},
     "TargetOnDemandCapacity": 1, "TargetSpotCapacity": 0,
     "InstanceTypeSpecifications": [{"InstanceType": "m5.xlarge", "WeightedCapacity": 1}]},
    {"Id": "if-task", "Name": "task", "InstanceFleetType": "TASK", "Status": {"State": "TERMINATED"},
     "TargetOnDemandCapacity": 0, "TargetSpotCapacity": 0, "InstanceTypeSpecifications": []},
]
STEPS = [  # ListSteps: newest first
    {"Id": "s-ADHOC", "Name": "ad-hoc report", "ActionOnFailure": "CONTINUE",
     "Config": {"Jar": "command-runner.jar", "Args": ["hive", "-f", "report.q"]},
     "Status": {"State": "COMPLETED", "Timeline": _timeline(READY + timedelta(days=3))}},
    {"Id": "s-2", "Name": "warm metastore", "ActionOnFailure": "CONTINUE",
     "Config": {"Jar": "s3://rc/jars/warm.jar", "MainClass": "com.rc.Warm", "Args": ["--all"],
                "Properties": {"mapreduce.job.queuename": "setup"}},
     "LogUri": "s3://rc-logs/steps/",
     "Status": {"State": "COMPLETED", "Timeline": _timeline(T0 + timedelta(seconds=1))}},
    {"Id": "s-1", "Name": "enable ssl", "ActionOnFailure": "CANCEL_AND_WAIT",
     "Config": {"Jar": "command-runner.jar", "Args": ["bash", "-c", "/opt/rc/enable-ssl.sh"]},
     "Status": {"State": "COMPLETED", "Timeline": _timeline(T0)}},
]
BOOTSTRAP = [{"Name": "install auth jar", "ScriptPath": "s3://rc/bootstrap/auth.sh", "Args": ["--jar", "a.jar"]}]
MANAGED = {"ComputeLimits": {"UnitType": "InstanceFleetUnits", "MinimumCapacityUnits": 4,
                             "MaximumCapacityUnits": 40, "MaximumOnDemandCapacityUnits": 8}}


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("emr", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub


def _read_fleet_cluster(client: Any, stub: Stubber) -> Any:
    cid = {"ClusterId": "j-FLEET1"}
    stub.add_response("list_instance_fleets", {"InstanceFleets": FLEETS}, cid)
    stub.add_response("list_bootstrap_actions", {"BootstrapActions": BOOTSTRAP}, cid)
    stub.add_response("list_steps", {"Steps": STEPS}, cid)
    stub.add_response("get_managed_scaling_policy", {"ManagedScalingPolicy": MANAGED}, cid)
    stub.add_response("get_auto_termination_policy", {"AutoTerminationPolicy": {"IdleTimeout": 7200}}, cid)
    stub.add_response("list_instances", {"Instances": [
        {"Ec2InstanceId": "i-0master", "PrivateDnsName": "ip-10-1-2-3.ec2.internal", "PrivateIpAddress": "10.1.2.3",
         "Status": {"State": "RUNNING"}}]}, {"ClusterId": "j-FLEET1", "InstanceFleetType": "MASTER"})
    aws = AwsCalls(OneClient(client))
    snap = read_cluster(Emr(aws), FLEET_CLUSTER)
    stub.assert_no_pending_responses()
    return snap, aws


def test_instance_fleet_cluster_clones_fleets_with_specs_and_ebs(stubbed: Any) -> None:
    snap, aws = _read_fleet_cluster(*stubbed)
    inst = snap.request["Instances"]
    assert "InstanceGroups" not in inst
    master, core = inst["InstanceFleets"]  # ordered MASTER, CORE; the TERMINATED task fleet is left out
    assert master == {"Name": "master", "InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1,
                      "TargetSpotCapacity": 0, "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge", "WeightedCapacity": 1}]}
    assert core["TargetOnDemandCapacity"] == 4 and core["TargetSpotCapacity"] == 8
    r5, r6 = core["InstanceTypeConfigs"]
    assert r5["BidPriceAsPercentageOfOnDemandPrice"] == 60.0 and r5["Priority"] == 1.0
    assert r5["EbsConfiguration"] == {"EbsBlockDeviceConfigs": [{"VolumeSpecification": {
        "VolumeType": "gp3", "SizeInGB": 256, "Iops": 3000, "Throughput": 250}, "VolumesPerInstance": 2}],
        "EbsOptimized": True}
    assert r5["Configurations"] == [{"Classification": "yarn-site",
                                     "Properties": {"yarn.nodemanager.vmem-check-enabled": "false"}}]
    assert r6 == {"InstanceType": "r6i.2xlarge", "WeightedCapacity": 4, "BidPrice": "0.30", "Priority": 2.0}
    assert core["LaunchSpecifications"]["SpotSpecification"]["AllocationStrategy"] == "price-capacity-optimized"
    assert core["LaunchSpecifications"]["OnDemandSpecification"] == {"AllocationStrategy": "lowest-price"}
    assert core["ResizeSpecifications"]["SpotResizeSpecification"] == {"TimeoutDurationMinutes": 30}
    assert inst["Ec2SubnetIds"] == ["subnet-a", "subnet-b"] and "Ec2SubnetId" not in inst
    assert snap.master == {"instance_id": "i-0master", "private_dns": "ip-10-1-2-3.ec2.internal",
                           "private_ip": "10.1.2.3", "state": "RUNNING"}
    assert snap.fleet and snap.termination_protected
    assert [r.op for r in aws.records] == ["list_instance_fleets", "list_bootstrap_actions", "list_steps",
                                           "get_managed_scaling_policy", "get_auto_termination_policy", "list_instances"]


def test_cluster_level_fields_roles_network_and_policies_are_copied(stubbed: Any) -> None:
    snap, _ = _read_fleet_cluster(*stubbed)
    req = snap.request
    assert req["Name"] == "RC.HIVE.FLEET" and req["ReleaseLabel"] == "emr-7.1.0"
    assert req["OSReleaseLabel"] == "2.0.20240610.1"
    assert req["LogUri"] == "s3n://rc-logs/fleet/" and req["LogEncryptionKmsKeyId"].endswith("key/abc")
    assert req["Applications"] == [{"Name": "Hive"}, {"Name": "Tez"}]
    assert req["ServiceRole"] == "EMR_Hive_Service" and req["JobFlowRole"] == "EMR_EC2_Hive"
    assert req["AutoScalingRole"] == "EMR_AutoScaling_DefaultRole"
    assert req["SecurityConfiguration"] == "rc-tls"
    assert req["ScaleDownBehavior"] == "TERMINATE_AT_TASK_COMPLETION"
    assert (req["CustomAmiId"], req["EbsRootVolumeSize"], req["EbsRootVolumeIops"], req["EbsRootVolumeThroughput"]) == \
        ("ami-0abc", 64, 3000, 125)
    assert req["RepoUpgradeOnBoot"] == "NONE" and req["StepConcurrencyLevel"] == 4 and req["VisibleToAllUsers"] is True
    assert req["ManagedScalingPolicy"] == MANAGED
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 7200}
    assert req["PlacementGroupConfigs"] == [{"InstanceRole": "MASTER", "PlacementStrategy": "SPREAD"}]
    assert req["Configurations"][0]["Properties"]["javax.jdo.option.ConnectionPassword"] == "metastore-secret"
    inst = req["Instances"]
    assert inst["Ec2KeyName"] == "rc-emr"
    assert inst["EmrManagedMasterSecurityGroup"] == "sg-m" and inst["ServiceAccessSecurityGroup"] == "sg-svc"
    assert inst["AdditionalMasterSecurityGroups"] == ["sg-x"] and inst["AdditionalSlaveSecurityGroups"] == ["sg-y", "sg-z"]
    assert inst["KeepJobFlowAliveWhenNoSteps"] is True and inst["TerminationProtected"] is True
    assert inst["UnhealthyNodeReplacement"] is True
    assert req["Tags"] == [{"Key": "team", "Value": "rc"}]  # aws:* reserved, sentinel:* replaced per incident
    assert req["BootstrapActions"] == [{"Name": "install auth jar", "ScriptBootstrapAction": {
        "Path": "s3://rc/bootstrap/auth.sh", "Args": ["--jar", "a.jar"]}}]


def test_setup_steps_oldest_first_with_main_class_properties_and_log_uri(stubbed: Any) -> None:
    snap, _ = _read_fleet_cluster(*stubbed)
    assert snap.request["Steps"] == [
        {"Name": "enable ssl", "ActionOnFailure": "CANCEL_AND_WAIT",
         "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", "/opt/rc/enable-ssl.sh"]}},
        {"Name": "warm metastore", "ActionOnFailure": "CONTINUE",
         "HadoopJarStep": {"Jar": "s3://rc/jars/warm.jar", "MainClass": "com.rc.Warm", "Args": ["--all"],
                           "Properties": [{"Key": "mapreduce.job.queuename", "Value": "setup"}]},
         "StepMonitoringConfiguration": {"S3MonitoringConfiguration": {"LogUri": "s3://rc-logs/steps/"}}},
    ]
    gaps = {g["field"]: g for g in snap.not_copied}
    assert "ad-hoc report" in gaps["Steps"]["reason"]  # added after ready: not a setup step


def test_kerberos_secrets_are_never_copied_and_block_the_relaunch(stubbed: Any) -> None:
    snap, aws = _read_fleet_cluster(*stubbed)
    assert snap.request["KerberosAttributes"] == {"Realm": "EC2.INTERNAL", "ADDomainJoinUser": "joiner"}
    assert "should-never-be-copied" not in repr(snap.request)
    gaps = {g["field"]: g for g in snap.not_copied}
    assert gaps["KerberosAttributes.KdcAdminPassword"]["blocking"] is True
    assert gaps["KerberosAttributes.ADDomainJoinPassword"]["blocking"] is False
    assert {"AdditionalInfo", "StepExecutionRoleArn", "Applications[].Version", "Tags (aws:*)"} <= set(gaps)
    _, problems = finalize(aws, snap.request, incident_id="inc-1", target="t", old_cluster_id="j-FLEET1")
    assert any("KdcAdminPassword" in p for p in problems)


def test_unreadable_policies_are_gaps_not_failures(stubbed: Any) -> None:
    client, stub = stubbed
    cid = {"ClusterId": "j-FLEET1"}
    stub.add_response("list_instance_fleets", {"InstanceFleets": FLEETS}, cid)
    stub.add_response("list_bootstrap_actions", {"BootstrapActions": []}, cid)
    stub.add_response("list_steps", {"Steps": []}, cid)
    stub.add_client_error("get_managed_scaling_policy", "AccessDeniedException", http_status_code=403)
    stub.add_response("get_auto_termination_policy", {}, cid)
    stub.add_response("list_instances", {"Instances": []}, {"ClusterId": "j-FLEET1", "InstanceFleetType": "MASTER"})
    snap = read_cluster(Emr(AwsCalls(OneClient(client))), FLEET_CLUSTER)
    assert "ManagedScalingPolicy" not in snap.request and "AutoTerminationPolicy" not in snap.request
    gaps = {g["field"]: g["reason"] for g in snap.not_copied}
    assert gaps["ManagedScalingPolicy"] == "could not read it (AccessDeniedException)"
    assert "BootstrapActions" not in snap.request and snap.master is None


GROUPS: list[dict[str, Any]] = [
    {"Id": "ig-core", "Name": "core", "Market": "ON_DEMAND", "InstanceGroupType": "CORE", "InstanceType": "r5.2xlarge",
     "RequestedInstanceCount": 3, "RunningInstanceCount": 3, "Status": {"State": "RUNNING"},
     "Configurations": [{"Classification": "hdfs-site", "Properties": {"dfs.replication": "2"}}],
     "EbsBlockDevices": [{"VolumeSpecification": {"VolumeType": "gp2", "SizeInGB": 32}, "Device": "/dev/sdb"},
                         {"VolumeSpecification": {"VolumeType": "gp2", "SizeInGB": 32}, "Device": "/dev/sdc"},
                         {"VolumeSpecification": {"VolumeType": "io1", "SizeInGB": 500, "Iops": 5000}, "Device": "/dev/sdd"}],
     "EbsOptimized": True,
     "AutoScalingPolicy": {"Status": {"State": "ATTACHED"}, "Constraints": {"MinCapacity": 2, "MaxCapacity": 10},
                           "Rules": [{"Name": "out", "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": 1}},
                                      "Trigger": {"CloudWatchAlarmDefinition": {
                                          "ComparisonOperator": "LESS_THAN", "MetricName": "YARNMemoryAvailablePercentage",
                                          "Period": 300, "Threshold": 15.0}}}]},
     "ShrinkPolicy": {"DecommissionTimeout": 60}},
    {"Id": "ig-master", "Name": "master", "Market": "ON_DEMAND", "InstanceGroupType": "MASTER",
     "InstanceType": "m5.xlarge", "RequestedInstanceCount": 1, "RunningInstanceCount": 1,
     "Status": {"State": "RUNNING"}, "CustomAmiId": "ami-0master"},
    {"Id": "ig-task-old", "Name": "old task", "Market": "SPOT", "InstanceGroupType": "TASK", "BidPrice": "0.1",
     "InstanceType": "c5.xlarge", "RequestedInstanceCount": 0, "RunningInstanceCount": 0, "Status": {"State": "ENDED"}},
    {"Id": "ig-task", "Name": "task", "Market": "SPOT", "InstanceGroupType": "TASK", "BidPrice": "0.25",
     "InstanceType": "r5.xlarge", "RequestedInstanceCount": 4, "RunningInstanceCount": 2, "Status": {"State": "RESIZING"}},
]


def test_instance_groups_keep_per_group_configurations_ebs_spot_and_autoscaling() -> None:
    cluster = {"Id": "j-G", "Name": "G", "Status": {"State": "RUNNING"}, "ReleaseLabel": "emr-6.15.0",
               "Ec2InstanceAttributes": {"Ec2SubnetId": "subnet-a", "IamInstanceProfile": "EMR_EC2_DefaultRole"},
               "TerminationProtected": False, "AutoTerminate": True}
    req, gaps = build_request(cluster, groups=GROUPS)
    master, core, task = req["Instances"]["InstanceGroups"]
    assert master == {"Name": "master", "Market": "ON_DEMAND", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                      "InstanceCount": 1, "CustomAmiId": "ami-0master"}
    assert core["Configurations"] == [{"Classification": "hdfs-site", "Properties": {"dfs.replication": "2"}}]
    assert core["EbsConfiguration"] == {"EbsBlockDeviceConfigs": [
        {"VolumeSpecification": {"VolumeType": "gp2", "SizeInGB": 32}, "VolumesPerInstance": 2},
        {"VolumeSpecification": {"VolumeType": "io1", "SizeInGB": 500, "Iops": 5000}, "VolumesPerInstance": 1}],
        "EbsOptimized": True}
    assert core["AutoScalingPolicy"]["Constraints"] == {"MinCapacity": 2, "MaxCapacity": 10}
    assert "Status" not in core["AutoScalingPolicy"]
    assert task == {"Name": "task", "Market": "SPOT", "InstanceRole": "TASK", "BidPrice": "0.25",
                    "InstanceType": "r5.xlarge", "InstanceCount": 4}
    assert req["Instances"]["Ec2SubnetId"] == "subnet-a"
    fields = {g["field"] for g in gaps}
    assert {"InstanceGroups[old task]", "InstanceGroups[core].ShrinkPolicy", "AutoTerminate"} <= fields
    assert req["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True


def test_a_terminated_cluster_still_clones_all_its_groups() -> None:
    cluster = {"Id": "j-DEAD", "Name": "G", "Status": {"State": "TERMINATED_WITH_ERRORS"},
               "Ec2InstanceAttributes": {"Ec2AvailabilityZone": "us-east-1b"}}
    ended = [dict(g, Status={"State": "ENDED"}) for g in GROUPS]
    req, _ = build_request(cluster, groups=ended)
    assert len(req["Instances"]["InstanceGroups"]) == 4
    assert req["Instances"]["Placement"] == {"AvailabilityZone": "us-east-1b"}


def test_the_built_request_is_valid_for_run_job_flow(stubbed: Any) -> None:
    client, _ = stubbed
    cluster = {k: v for k, v in FLEET_CLUSTER.items() if k != "KerberosAttributes"}
    req, _ = build_request(cluster, fleets=FLEETS, bootstrap=BOOTSTRAP, steps=STEPS, managed_scaling=MANAGED,
                           auto_termination={"IdleTimeout": 7200})
    final, problems = finalize(AwsCalls(OneClient(client)), req, incident_id="inc-9", target="prod-hive",
                               old_cluster_id="j-FLEET1")
    assert problems == []
    assert {"Key": "sentinel:incident", "Value": "inc-9"} in final["Tags"]
    assert {"Key": "sentinel:replaces", "Value": "j-FLEET1"} in final["Tags"]


def test_ebs_configuration_is_none_without_volumes() -> None:
    assert ebs_configuration([], None) is None
    assert ebs_configuration(None, False) == {"EbsOptimized": False}


def test_a_live_cluster_whose_master_group_ended_still_clones_master_and_core() -> None:
    """The master group FAILED/TERMINATED on a cluster EMR still calls RUNNING is exactly why it is
    relaunched (issue 22's master_lost bench found the clone dropping it: the new cluster never
    got a master). Only an ended TASK group is a deliberate removal."""
    cluster = {"Id": "j-LOST", "Name": "G", "Status": {"State": "RUNNING"},
               "Ec2InstanceAttributes": {"Ec2SubnetId": "subnet-a"}}
    groups = [dict(g, Status={"State": "TERMINATED"}) if g["InstanceGroupType"] in ("MASTER", "CORE") else g
              for g in GROUPS]
    req, gaps = build_request(cluster, groups=groups)
    roles = [g["InstanceRole"] for g in req["Instances"]["InstanceGroups"]]
    assert roles == ["MASTER", "CORE", "TASK"]
    assert "InstanceGroups[old task]" in {g["field"] for g in gaps}  # the ended task group stays out
