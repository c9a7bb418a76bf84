"""Two deployments, one actor: a claim tag on the old cluster before any rung changes it.

Why: leases live in each deployment's own state table. A second deployment (a standby
monitor in another region, kept so that the monitor survives a region outage) watching the
same cluster sees the same failure and would launch a second cluster: two incidents reach
DONE and the target group ends up holding two new masters.

The cluster itself is the one place both deployments share, so the claim lives there, as EMR
tags on the old cluster (AddTags on an owned cluster; IAM already allows it):
``sentinel:claim=<deployment>/<incident>`` (the last claim, for people) and, per deployment,
``sentinel:claim:<deployment>=<incident>@<claimed at>`` (what the protocol reads: tags are
last-writer-wins per key, so one key per deployment loses no claim). Before RESTART's
SendCommand, LAUNCH's RunJobFlow and ``terminate_first``'s termination of the old cluster a
deployment:

1. reads the cluster's tags: a live claim by another deployment (claimed less than
   :func:`claim_ttl` ago, not released) → stand down, write nothing;
2. otherwise writes its claim, waits ``SETTLE_S`` (tags are eventually consistent) and reads
   them back: the earliest live claim acts (ties: the smaller deployment id); every other
   deployment stands down and releases its claim. The claim's time is taken right before its
   write; a write that took longer than ``SETTLE_S / 2`` to land is *late* (another deployment
   may have read, written and decided in between) and yields to any other live claim. So two
   deployments never both act: at worst both stand down, and a person is paged.

Standing down changes nothing else, ends the incident ESCALATED (a person should know why
two deployments act on one cluster) with a page naming the other deployment. An incident
that ends (DONE, ESCALATED) releases its claim (``<incident>@released``) so the other
deployment may act on a later failure at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.core.clock import iso, parse_iso

CLAIM_TAG = "sentinel:claim"
SETTLE_S = 5.0  # ≤ 10 s (DESIGN §11)
DEFAULT_DEPLOYMENT = "default"
_SAFE = re.compile(r"[^A-Za-z0-9@._:\-]")


def deployment_id() -> str:
    """This deployment's id: env ``SENTINEL_DEPLOYMENT`` (the template sets
    ``<stack name>@<region>``), ``default`` when unset; cut to a safe tag value."""
    raw = os.environ.get("SENTINEL_DEPLOYMENT", "").strip()
    return _SAFE.sub("-", raw)[:100] or DEFAULT_DEPLOYMENT


def claim_ttl(launch_timeout_min: float) -> timedelta:
    """How long another deployment's claim counts as live: its whole relaunch (launch timeout,
    then two verifications of up to 20 min, a stall's slack), at least two hours."""
    return max(timedelta(hours=2), timedelta(minutes=launch_timeout_min + 50))


def key(deployment: str) -> str:
    return f"{CLAIM_TAG}:{deployment}"[:128]


@dataclass(frozen=True)
class Claim:
    deployment: str
    incident: str
    at: datetime | None = None  # when it was claimed; None: released or unreadable

    @property
    def value(self) -> str:
        """The shared tag's value (DESIGN §11: ``<deployment>/<incident>``)."""
        return f"{self.deployment}/{self.incident}"[:256]

    def own_value(self, at: datetime) -> str:
        return f"{self.incident}@{iso(at)}"[:256]

    def order(self) -> tuple[datetime, str]:
        return (self.at or datetime.max.replace(tzinfo=UTC), self.deployment)


def claims(cluster: dict[str, Any]) -> list[Claim]:
    """Every deployment's claim on a DescribeCluster ``Cluster`` (released ones have no time)."""
    out = []
    for tag in cluster.get("Tags") or []:
        k, v = str(tag.get("Key") or ""), str(tag.get("Value") or "")
        if not k.startswith(CLAIM_TAG + ":"):
            continue
        incident, _, when = v.rpartition("@")
        try:
            at = parse_iso(when) if when and when != "released" else None
        except ValueError:
            at = None
        out.append(Claim(k[len(CLAIM_TAG) + 1:], incident, at))
    return out


def live_others(found: list[Claim], mine: Claim, now: datetime, ttl: timedelta) -> list[Claim]:
    """Other deployments' claims that still count: not released, younger than ``ttl``."""
    return [c for c in found if c.deployment != mine.deployment and c.at is not None and now - c.at <= ttl]


def stood_down_reason(other: Claim, cluster_id: str, how: str) -> str:
    return (f"stood down: deployment {other.deployment} {how} {cluster_id} for its incident {other.incident} "
            f"(tag {key(other.deployment)}): it acts, this deployment changed nothing. Two deployments watch this "
            f"cluster: see `sentinel status` in {other.deployment}")


def describe(claim: Claim, cluster_id: str, at: datetime) -> dict[str, str]:
    return {"tag": key(claim.deployment), "value": claim.own_value(at), "cluster_id": cluster_id,
            "deployment": claim.deployment, "at": iso(at)}


def tags(claim: Claim, at: datetime) -> dict[str, str]:
    return {CLAIM_TAG: claim.value, key(claim.deployment): claim.own_value(at)}


def released(claim: Claim) -> dict[str, str]:
    return {key(claim.deployment): f"{claim.incident}@released"}
