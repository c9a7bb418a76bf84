"""Find the EMR cluster a target means: by id, or the one active cluster with that name.

Shared by the ``emr_state`` check and the recovery runbook so both agree on "the cluster".
"""

from __future__ import annotations

from typing import Any

ACTIVE_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")  # the one definition
# Set by the runbook on an old cluster it kept (``retire_old: keep``): no longer "the" cluster.
RETIRED_TAG = "sentinel:retired-by"
PERMISSIONS = ("elasticmapreduce:ListClusters", "elasticmapreduce:DescribeCluster")


class ClusterLookupError(Exception):
    pass


def find_cluster(emr: Any, ref: Any, *, exclude_ids: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Return ``describe_cluster()['Cluster']`` or None when no active cluster matches.

    More than one active cluster with the name is an error (ClusterLookupError) unless the
    extra ones are excluded (a recovery excludes the replacement it launched itself) or were
    kept by a recovery and tagged ``sentinel:retired-by`` (``retire_old: keep``).
    """
    if getattr(ref, "id", None):
        return dict(emr.describe_cluster(ClusterId=ref.id)["Cluster"])
    matches = []
    for page in emr.get_paginator("list_clusters").paginate(ClusterStates=list(ACTIVE_STATES)):
        for summary in page.get("Clusters", []):
            if summary.get("Name") == ref.name and summary["Id"] not in exclude_ids:
                matches.append(summary["Id"])
    if not matches:
        return None
    described = [dict(emr.describe_cluster(ClusterId=cid)["Cluster"]) for cid in matches]
    live = [c for c in described if not any(t.get("Key") == RETIRED_TAG for t in c.get("Tags") or [])]
    if len(live) > 1:
        raise ClusterLookupError(f"{len(live)} active clusters named {ref.name!r}: "
                                 f"{', '.join(sorted(c['Id'] for c in live))}")
    return live[0] if live else None


# ------------------------------------------------------------------ primaries (master nodes)

# Live instance states, the order a caller prefers them in (running first).
LIVE_ORDER = {"RUNNING": 0, "BOOTSTRAPPING": 1, "PROVISIONING": 2, "AWAITING_FULFILLMENT": 3}
HA_PRIMARIES = 3  # EMR's multi-primary clusters have exactly three primary nodes
PRIMARY_PERMISSIONS = (*PERMISSIONS, "elasticmapreduce:ListInstances")


def primary_rows(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ListInstances rows of the MASTER group/fleet as sentinel records a primary: live ones
    first (running before those EMR is still bringing up), then ended ones."""
    rows = [{"instance_id": i.get("Ec2InstanceId"), "private_dns": i.get("PrivateDnsName"),
             "private_ip": i.get("PrivateIpAddress"), "state": (i.get("Status") or {}).get("State")}
            for i in instances]
    live = sorted((r for r in rows if r["state"] in LIVE_ORDER), key=lambda r: LIVE_ORDER[str(r["state"])])
    return live + [r for r in rows if r["state"] not in LIVE_ORDER]


def list_primaries(emr: Any, cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """Every primary instance of ``cluster`` (a DescribeCluster ``Cluster``), live first, with
    its private name: one for a classic cluster, three (plus the ones EMR replaced, ended) for a
    cluster with three primary nodes. ``emr`` is a boto3 EMR client."""
    if cluster.get("InstanceCollectionType") == "INSTANCE_FLEET":
        kwargs: dict[str, Any] = {"ClusterId": cluster["Id"], "InstanceFleetType": "MASTER"}
    else:
        kwargs = {"ClusterId": cluster["Id"], "InstanceGroupTypes": ["MASTER"]}
    instances: list[dict[str, Any]] = []
    for page in emr.get_paginator("list_instances").paginate(**kwargs):
        instances.extend(page.get("Instances", []))
    return primary_rows(instances)


def is_multi_primary(primaries: list[dict[str, Any]]) -> bool:
    """A cluster with three primary nodes. A classic cluster has one master and never more
    (a lost master ends it), so more than one primary instance listed, live or ended, means
    the cluster has three primaries and EMR replaces a lost one by itself."""
    return len(primaries) > 1


def expected_primaries(primaries: list[dict[str, Any]]) -> int:
    return HA_PRIMARIES if is_multi_primary(primaries) else 1
