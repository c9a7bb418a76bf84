"""SNAPSHOT (clone): from a live or recently ended EMR cluster to a complete RunJobFlow request.

DescribeCluster alone is not enough: instance groups/fleets, bootstrap actions, steps and
the managed-scaling and auto-termination policies each have their own API. The builder
(:func:`build_request`) is a pure function of those responses, so it is tested against
response shapes moto cannot produce (fleets, per-group configurations, Kerberos) with
botocore's Stubber.

What cannot be copied is said, never silently dropped: every gap goes into ``not_copied``
(``{"field", "reason", "blocking"}``); a blocking gap (the Kerberos KDC password, which no
API returns) stops the relaunch at SNAPSHOT instead of failing at LAUNCH.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.core.clusters import ACTIVE_STATES, is_multi_primary
from monitor.core.faults import AwsError
from recover.emr import master_of, owner_of
from recover.facades import Emr

NotCopied = dict[str, Any]

# Copied unchanged from DescribeCluster's Cluster into the request (same name, same shape).
COPY_AS_IS = (
    "LogUri", "LogEncryptionKmsKeyId", "ReleaseLabel", "OSReleaseLabel", "VisibleToAllUsers", "ServiceRole",
    "SecurityConfiguration", "AutoScalingRole", "ScaleDownBehavior", "CustomAmiId", "EbsRootVolumeSize",
    "EbsRootVolumeIops", "EbsRootVolumeThroughput", "RepoUpgradeOnBoot", "StepConcurrencyLevel",
    "ExtendedSupport", "MonitoringConfiguration", "SessionEnabled",
)
SECURITY_GROUP_KEYS = ("EmrManagedMasterSecurityGroup", "EmrManagedSlaveSecurityGroup", "ServiceAccessSecurityGroup",
                       "AdditionalMasterSecurityGroups", "AdditionalSlaveSecurityGroups")
KERBEROS_SECRETS = ("KdcAdminPassword", "CrossRealmTrustPrincipalPassword", "ADDomainJoinPassword")
ROLE_ORDER = {"MASTER": 0, "CORE": 1, "TASK": 2}
ENDED_GROUP_STATES = frozenset({"ENDED", "TERMINATED", "TERMINATING", "SHUTTING_DOWN"})
# Fields no describe call returns: if the cluster was launched with them, only a spec file can carry them.
NEVER_RETURNED: tuple[NotCopied, ...] = (
    {"field": "AdditionalInfo", "reason": "not returned by DescribeCluster (use a spec file if it was set)",
     "blocking": False},
    {"field": "StepExecutionRoleArn", "reason": "not returned by DescribeCluster (use a spec file if it was set)",
     "blocking": False},
    {"field": "HDFS and instance-local data", "reason": "lives on the old cluster's nodes; the new cluster starts "
     "empty (keep the Hive metastore and tables outside the cluster)", "blocking": False},
)


@dataclass
class ClusterSnapshot:
    cluster_id: str
    name: str
    state: str
    request: dict[str, Any]
    not_copied: list[NotCopied] = field(default_factory=list)
    master: dict[str, Any] | None = None
    termination_protected: bool = False
    fleet: bool = False
    owner: str | None = None  # its sentinel:target tag (recover.emr.require_owned)
    # Every primary, live first, then those EMR replaced (a cluster with three primary nodes).
    primaries: list[dict[str, Any]] = field(default_factory=list)

    def old_record(self) -> dict[str, Any]:
        """What the incident remembers about the cluster being replaced (its primaries only
        when it has three: a classic cluster's record stays as it was)."""
        record: dict[str, Any] = {"cluster_id": self.cluster_id, "name": self.name, "state": self.state,
                                  "master": self.master,
                  "termination_protected": self.termination_protected, "fleet": self.fleet,
                  "active": self.state in ACTIVE_STATES, "owner": self.owner}
        if is_multi_primary(self.primaries):
            record["primaries"] = self.primaries
        return record


def read_cluster(emr: Emr, cluster: dict[str, Any]) -> ClusterSnapshot:
    """Read everything a relaunch needs about ``cluster`` (a DescribeCluster ``Cluster``)."""
    cid = str(cluster["Id"])
    fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    groups = [] if fleet else emr.list_instance_groups(cid)
    fleets = emr.list_instance_fleets(cid) if fleet else []
    bootstrap = emr.list_bootstrap_actions(cid)
    steps = emr.list_steps(cid)
    gaps: list[NotCopied] = []
    managed = _optional(lambda: emr.get_managed_scaling_policy(cid), "ManagedScalingPolicy", gaps)
    auto_term = _optional(lambda: emr.get_auto_termination_policy(cid), "AutoTerminationPolicy", gaps)
    request, not_copied = build_request(cluster, groups=groups, fleets=fleets, bootstrap=bootstrap, steps=steps,
                                        managed_scaling=managed, auto_termination=auto_term)
    masters = master_of(emr, cid, fleet=fleet, live_only=False)
    return ClusterSnapshot(
        cluster_id=cid, name=str(cluster.get("Name", "")), state=str((cluster.get("Status") or {}).get("State", "")),
        request=request, not_copied=gaps + not_copied, master=masters[0] if masters else None,
        termination_protected=bool(cluster.get("TerminationProtected")), fleet=fleet, owner=owner_of(cluster),
        primaries=masters,
    )


def _optional(read: Callable[[], Any], name: str, gaps: list[NotCopied]) -> Any:
    """Policies with their own API: unreadable (permission, API not available) is a gap, not a failure."""
    try:
        return read()
    except AwsError as exc:
        if exc.transient:
            raise
        gaps.append({"field": name, "reason": f"could not read it ({exc.code})", "blocking": False})
        return None


# ---------------------------------------------------------------------------- the builder

def build_request(
    cluster: dict[str, Any],
    *,
    groups: Sequence[dict[str, Any]] = (),
    fleets: Sequence[dict[str, Any]] = (),
    bootstrap: Sequence[dict[str, Any]] = (),
    steps: Sequence[dict[str, Any]] = (),
    managed_scaling: dict[str, Any] | None = None,
    auto_termination: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[NotCopied]]:
    """The RunJobFlow request that relaunches ``cluster`` as it is configured now, and the gaps."""
    gaps: list[NotCopied] = [dict(g) for g in NEVER_RETURNED]
    active = (cluster.get("Status") or {}).get("State") in ACTIVE_STATES
    req: dict[str, Any] = {"Name": cluster["Name"]}
    for key in COPY_AS_IS:
        if cluster.get(key) is not None:
            req[key] = cluster[key]
    if "ReleaseLabel" not in req and cluster.get("RequestedAmiVersion"):
        req["AmiVersion"] = cluster["RequestedAmiVersion"]
    if cluster.get("PlacementGroups"):
        req["PlacementGroupConfigs"] = cluster["PlacementGroups"]
    apps = [_application(a) for a in cluster.get("Applications") or []]
    if apps:
        req["Applications"] = apps
    if any(a.get("Version") for a in cluster.get("Applications") or []):
        gaps.append({"field": "Applications[].Version", "reason": "decided by the release label, not requestable",
                     "blocking": False})
    if cluster.get("Configurations"):
        req["Configurations"] = configurations(cluster["Configurations"])
    ec2 = cluster.get("Ec2InstanceAttributes") or {}
    if ec2.get("IamInstanceProfile"):
        req["JobFlowRole"] = ec2["IamInstanceProfile"]
    req["Instances"] = _instances(cluster, ec2=ec2, groups=groups, fleets=fleets, active=active, gaps=gaps)
    if bootstrap:
        req["BootstrapActions"] = [_bootstrap(b) for b in bootstrap]
    setup, later = _setup_steps(cluster, steps)
    if setup:
        req["Steps"] = [_step(s) for s in setup]
    if later:
        gaps.append({"field": "Steps", "reason": f"{len(later)} step(s) added after the cluster was ready were not "
                     f"re-submitted (ad-hoc work, not setup): {', '.join(str(s.get('Name')) for s in later[:5])}",
                     "blocking": False})
    tags = [t for t in cluster.get("Tags") or [] if not str(t.get("Key", "")).startswith(("aws:", "sentinel:"))]
    if any(str(t.get("Key", "")).startswith("aws:") for t in cluster.get("Tags") or []):
        gaps.append({"field": "Tags (aws:*)", "reason": "reserved tag keys cannot be set", "blocking": False})
    if tags:
        req["Tags"] = [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags]
    if managed_scaling:
        req["ManagedScalingPolicy"] = managed_scaling
    if auto_termination:
        req["AutoTerminationPolicy"] = auto_termination
    kerberos = cluster.get("KerberosAttributes")
    if kerberos:
        req["KerberosAttributes"] = {k: kerberos[k] for k in ("Realm", "ADDomainJoinUser") if kerberos.get(k)}
        for key in KERBEROS_SECRETS:
            gaps.append({"field": f"KerberosAttributes.{key}",
                         "reason": "a secret: never copied (DescribeCluster does not return it); give it in a spec file",
                         "blocking": key == KERBEROS_SECRETS[0]})
    if cluster.get("AutoTerminate"):
        gaps.append({"field": "AutoTerminate", "reason": "the old cluster would end when idle; the new one is launched "
                     "with KeepJobFlowAliveWhenNoSteps=true (a persistent cluster)", "blocking": False})
    return req, gaps


def configurations(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in items:
        item: dict[str, Any] = {}
        if c.get("Classification") is not None:
            item["Classification"] = c["Classification"]
        if c.get("Properties") is not None:
            item["Properties"] = dict(c["Properties"])
        if c.get("Configurations"):
            item["Configurations"] = configurations(c["Configurations"])
        out.append(item)
    return out


def _application(app: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": app["Name"]}
    if app.get("Args"):
        out["Args"] = list(app["Args"])
    if app.get("AdditionalInfo"):
        out["AdditionalInfo"] = dict(app["AdditionalInfo"])
    return out


def _instances(cluster: dict[str, Any], *, ec2: dict[str, Any], groups: Sequence[dict[str, Any]],
               fleets: Sequence[dict[str, Any]], active: bool, gaps: list[NotCopied]) -> dict[str, Any]:
    inst: dict[str, Any] = {}
    fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    if ec2.get("Ec2KeyName"):
        inst["Ec2KeyName"] = ec2["Ec2KeyName"]
    if fleet:
        subnets = ec2.get("RequestedEc2SubnetIds") or ([ec2["Ec2SubnetId"]] if ec2.get("Ec2SubnetId") else [])
        if subnets:
            inst["Ec2SubnetIds"] = list(subnets)
        elif ec2.get("RequestedEc2AvailabilityZones"):
            inst["Placement"] = {"AvailabilityZones": list(ec2["RequestedEc2AvailabilityZones"])}
    elif ec2.get("Ec2SubnetId"):
        inst["Ec2SubnetId"] = ec2["Ec2SubnetId"]
    elif ec2.get("Ec2AvailabilityZone"):
        inst["Placement"] = {"AvailabilityZone": ec2["Ec2AvailabilityZone"]}
    for key in SECURITY_GROUP_KEYS:
        if ec2.get(key):
            inst[key] = ec2[key]
    inst["KeepJobFlowAliveWhenNoSteps"] = True
    inst["TerminationProtected"] = bool(cluster.get("TerminationProtected"))
    if cluster.get("UnhealthyNodeReplacement") is not None:
        inst["UnhealthyNodeReplacement"] = cluster["UnhealthyNodeReplacement"]
    if fleet:
        kept = [f for f in fleets if not _ended_task(f, "InstanceFleetType", active)]
        kept.sort(key=lambda f: ROLE_ORDER.get(f.get("InstanceFleetType", ""), 9))
        inst["InstanceFleets"] = [_fleet(f) for f in kept]
    else:
        kept = [g for g in groups if not _ended_task(g, "InstanceGroupType", active)]
        for g in groups:
            if g not in kept:
                gaps.append({"field": f"InstanceGroups[{g.get('Name') or g.get('Id')}]",
                             "reason": f"group is {(g.get('Status') or {}).get('State')} on the old cluster", "blocking": False})
            if g.get("ShrinkPolicy"):
                gaps.append({"field": f"InstanceGroups[{g.get('Name') or g.get('Id')}].ShrinkPolicy",
                             "reason": "not a RunJobFlow parameter (set it with ModifyInstanceGroups after launch)",
                             "blocking": False})
        ordered = sorted(kept, key=lambda g: ROLE_ORDER.get(g.get("InstanceGroupType", ""), 9))
        inst["InstanceGroups"] = [_group(g) for g in ordered]
    return inst


def _ended_task(group: dict[str, Any], type_key: str, active: bool) -> bool:
    """A TASK group (or fleet) that ended on a cluster still running was removed on purpose:
    not copied. MASTER and CORE are always copied whatever their state: a lost master group
    is exactly why the cluster is relaunched, and a cluster cannot be launched without it."""
    ended = (group.get("Status") or {}).get("State") in ENDED_GROUP_STATES
    return active and ended and group.get(type_key) not in ("MASTER", "CORE")


def _group(g: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if g.get("Name"):
        out["Name"] = g["Name"]
    out["Market"] = g.get("Market", "ON_DEMAND")
    out["InstanceRole"] = g["InstanceGroupType"]
    if out["Market"] == "SPOT" and g.get("BidPrice"):
        out["BidPrice"] = g["BidPrice"]
    out["InstanceType"] = g["InstanceType"]
    out["InstanceCount"] = int(g.get("RequestedInstanceCount", g.get("RunningInstanceCount", 0)))
    if g.get("Configurations"):
        out["Configurations"] = configurations(g["Configurations"])
    ebs = ebs_configuration(g.get("EbsBlockDevices"), g.get("EbsOptimized"))
    if ebs:
        out["EbsConfiguration"] = ebs
    policy = g.get("AutoScalingPolicy")
    if policy and policy.get("Rules") is not None and policy.get("Constraints"):
        out["AutoScalingPolicy"] = {"Constraints": policy["Constraints"], "Rules": policy["Rules"]}
    if g.get("CustomAmiId"):
        out["CustomAmiId"] = g["CustomAmiId"]
    return out


def _fleet(f: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if f.get("Name"):
        out["Name"] = f["Name"]
    out["InstanceFleetType"] = f["InstanceFleetType"]
    for key in ("TargetOnDemandCapacity", "TargetSpotCapacity"):
        if f.get(key) is not None:
            out[key] = f[key]
    out["InstanceTypeConfigs"] = [_instance_type(s) for s in f.get("InstanceTypeSpecifications") or []]
    for key in ("LaunchSpecifications", "ResizeSpecifications", "Context"):
        if f.get(key):
            out[key] = f[key]
    return out


def _instance_type(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"InstanceType": s["InstanceType"]}
    for key in ("WeightedCapacity", "BidPrice", "BidPriceAsPercentageOfOnDemandPrice", "CustomAmiId", "Priority"):
        if s.get(key) is not None:
            out[key] = s[key]
    if s.get("Configurations"):
        out["Configurations"] = configurations(s["Configurations"])
    ebs = ebs_configuration(s.get("EbsBlockDevices"), s.get("EbsOptimized"))
    if ebs:
        out["EbsConfiguration"] = ebs
    return out


def ebs_configuration(devices: list[dict[str, Any]] | None, optimized: bool | None) -> dict[str, Any] | None:
    """Describe lists one entry per attached volume; the request wants one entry per kind of
    volume with ``VolumesPerInstance``. Identical volume specifications are counted."""
    counted: dict[str, list[Any]] = {}
    for d in devices or []:
        spec = {k: v for k, v in (d.get("VolumeSpecification") or {}).items() if v is not None}
        key = json.dumps(spec, sort_keys=True)
        counted.setdefault(key, [spec, 0])[1] += 1
    if not counted and optimized is None:
        return None
    out: dict[str, Any] = {}
    if counted:
        out["EbsBlockDeviceConfigs"] = [{"VolumeSpecification": spec, "VolumesPerInstance": n}
                                        for spec, n in counted.values()]
    if optimized is not None:
        out["EbsOptimized"] = bool(optimized)
    return out


def _bootstrap(b: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = {"Path": b["ScriptPath"]}
    if b.get("Args"):
        action["Args"] = list(b["Args"])
    return {"Name": b.get("Name", "bootstrap"), "ScriptBootstrapAction": action}


def _setup_steps(cluster: dict[str, Any], steps: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Oldest first; setup steps are those created before the cluster was ready.

    ListSteps returns newest first: reverse it, then order by creation time (stable, so
    steps created in the same instant keep the API's order).
    """
    oldest_first = list(reversed(steps))
    ordered = sorted(oldest_first, key=lambda s: _created_at(s) or _EPOCH)
    ready = ((cluster.get("Status") or {}).get("Timeline") or {}).get("ReadyDateTime")
    if not isinstance(ready, datetime):
        return ordered, []
    ready = _aware(ready)
    setup = [s for s in ordered if (_created_at(s) or _EPOCH) <= ready]
    later = [s for s in ordered if (_created_at(s) or _EPOCH) > ready]
    return setup, later


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _created_at(step: dict[str, Any]) -> datetime | None:
    ts = ((step.get("Status") or {}).get("Timeline") or {}).get("CreationDateTime")
    return _aware(ts) if isinstance(ts, datetime) else None


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _step(s: dict[str, Any]) -> dict[str, Any]:
    cfg = s.get("Config") or {}
    jar: dict[str, Any] = {"Jar": cfg["Jar"]}
    if cfg.get("MainClass"):
        jar["MainClass"] = cfg["MainClass"]
    if cfg.get("Args"):
        jar["Args"] = list(cfg["Args"])
    if cfg.get("Properties"):
        jar["Properties"] = [{"Key": k, "Value": v} for k, v in cfg["Properties"].items()]
    out: dict[str, Any] = {"Name": s.get("Name", "step"), "ActionOnFailure": s.get("ActionOnFailure", "CONTINUE"),
                           "HadoopJarStep": jar}
    monitoring = {k: s[k] for k in ("LogUri", "EncryptionKeyArn") if s.get(k)}
    if monitoring:
        out["StepMonitoringConfiguration"] = {"S3MonitoringConfiguration": monitoring}
    return out
