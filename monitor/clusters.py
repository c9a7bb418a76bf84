"""Find the EMR cluster a target means: by id, or the one active cluster with that name.

Shared by the ``emr_state`` check and the recovery runbook so both agree on "the cluster".
"""

from __future__ import annotations

from typing import Any

ACTIVE_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
PERMISSIONS = ("elasticmapreduce:ListClusters", "elasticmapreduce:DescribeCluster")


class ClusterLookupError(Exception):
    pass


def find_cluster(emr: Any, ref: Any, *, exclude_ids: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Return ``describe_cluster()['Cluster']`` or None when no active cluster matches.

    More than one active cluster with the name is an error (ClusterLookupError) unless the
    extra ones are excluded (a recovery excludes the replacement it launched itself).
    """
    if getattr(ref, "id", None):
        return dict(emr.describe_cluster(ClusterId=ref.id)["Cluster"])
    matches = []
    for page in emr.get_paginator("list_clusters").paginate(ClusterStates=ACTIVE_STATES):
        for summary in page.get("Clusters", []):
            if summary.get("Name") == ref.name and summary["Id"] not in exclude_ids:
                matches.append(summary["Id"])
    if not matches:
        return None
    if len(matches) > 1:
        raise ClusterLookupError(f"{len(matches)} active clusters named {ref.name!r}: {', '.join(sorted(matches))}")
    return dict(emr.describe_cluster(ClusterId=matches[0])["Cluster"])
