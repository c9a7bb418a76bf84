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
