"""Where clients reach HiveServer2: an ELBv2 target group, a classic ELB, a Route 53 record.

Three operations, all idempotent because each reads the current registrations first and
changes only what differs:
- :func:`snapshot` (SNAPSHOT) records the routing as it was, so a rollback can restore it;
- :func:`repoint` (REPOINT) moves it to the new master;
- :func:`repoint_back` (rollback) moves it back to the old master.

Target port: ``routing.target_port``, else the port the old master was registered on,
else none (the target group's own port). The verify check's port is the *listener's*
port (443 in the example config), which is usually not the instance's (10000).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.config import Routing
from recover.calls import AwsCalls
from recover.facades import Elb, Elbv2, Route53


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def snapshot(aws: AwsCalls, routing: Routing) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if routing.target_group_arn:
        out["target_group"] = {"arn": routing.target_group_arn,
                               "targets": _tg_targets(Elbv2(aws), routing.target_group_arn)}
    if routing.load_balancer_name:
        out["classic_elb"] = {"name": routing.load_balancer_name,
                              "instances": Elb(aws).instances(routing.load_balancer_name)}
    if routing.route53:
        r = routing.route53
        out["route53"] = {"zone_id": r.zone_id, "record": r.record, "type": r.type,
                          "previous": _record(Route53(aws), r.zone_id, r.record, r.type)}
    return out


def _tg_targets(elbv2: Elbv2, arn: str, targets: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    desc = elbv2.describe_target_health(arn, targets)
    return [{"Id": d["Target"]["Id"], "Port": d["Target"].get("Port"),
             "State": (d.get("TargetHealth") or {}).get("State")} for d in desc]


def _record(r53: Route53, zone: str, name: str, rtype: str) -> dict[str, Any] | None:
    for rs in r53.record_sets(zone, name, rtype):
        if _norm(rs.get("Name", "")) == _norm(name) and rs.get("Type") == rtype:
            return dict(rs)
    return None


def target_port(routing: Routing, before: dict[str, Any], old_instance: str | None) -> int | None:
    if routing.target_port:
        return routing.target_port
    targets = (before.get("target_group") or {}).get("targets", [])
    for t in targets:
        if t["Id"] == old_instance and t.get("Port"):
            return int(t["Port"])
    return None


def repoint(aws: AwsCalls, routing: Routing, before: dict[str, Any], old: dict[str, Any] | None,
            new: dict[str, Any], *, old_all: list[dict[str, Any]] | None = None,
            new_all: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Send traffic to ``new`` (a master: instance_id, private_dns, private_ip). Returns what changed.

    A cluster with three primaries: ``new_all`` (every running primary of the new cluster) is
    registered with the load balancers, ``old_all`` (every primary of the old one, including
    those EMR replaced) deregistered; the Route 53 record names ``new`` (the first primary).

    Each load balancer gets the new master registered before the old one is deregistered.
    Deregistering the old master does not re-run the trigger checks first (re-confirm before
    destroying, recover/phases.py ``retire_old``): REPOINT runs only after VERIFY_NEW passed,
    so traffic always moves to a master that answered the verify checks on its own endpoint;
    under ``terminate_first`` the old master is already terminated by then. A caller that
    could reach this with an unverified new master would have to re-confirm the failure
    before the old master's deregistration, since it may be the last target serving."""
    done: dict[str, Any] = {"changes": []}
    old_id = (old or {}).get("instance_id")
    old_ids = [str(o["instance_id"]) for o in old_all or [] if o.get("instance_id")] or ([old_id] if old_id else [])
    new_ids = [str(n["instance_id"]) for n in new_all or []] or [new["instance_id"]]
    if routing.target_group_arn:
        elbv2 = Elbv2(aws)
        arn = routing.target_group_arn
        port = target_port(routing, before, old_id)
        current = _tg_targets(elbv2, arn)
        absent = [i for i in new_ids if not any(t["Id"] == i and (port is None or t.get("Port") == port)
                                                for t in current)]
        if absent:
            elbv2.register_targets(arn, [_target(i, port) for i in absent])
            done["changes"].append(f"registered {', '.join(absent)} with target group")
        stale = [t for t in current if t["Id"] in old_ids and t["Id"] not in new_ids]
        if stale:
            elbv2.deregister_targets(arn, [_target(t["Id"], t.get("Port")) for t in stale])
            done["changes"].append(f"deregistered {', '.join(_unique(t['Id'] for t in stale))} from target group")
        done["target_port"] = port
    if routing.load_balancer_name:
        elb = Elb(aws)
        name = routing.load_balancer_name
        current_ids = elb.instances(name)
        absent = [i for i in new_ids if i not in current_ids]
        if absent:
            elb.register_instances(name, absent)
            done["changes"].append(f"registered {', '.join(absent)} with ELB {name}")
        stale_ids = [i for i in old_ids if i in current_ids and i not in new_ids]
        if stale_ids:
            elb.deregister_instances(name, stale_ids)
            done["changes"].append(f"deregistered {', '.join(stale_ids)} from ELB {name}")
    if routing.route53:
        r = routing.route53
        value = new["private_dns"] if r.type == "CNAME" else new["private_ip"]
        previous = (before.get("route53") or {}).get("previous")
        rs = _record_set(previous, r.record, r.type, r.ttl, value)
        done["change_id"] = Route53(aws).change(r.zone_id, "UPSERT", rs, "sentinel: re-point to the new master")
        done["changes"].append(f"UPSERT {r.record} {r.type} {value}")
    return done


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def repoint_back(aws: AwsCalls, routing: Routing, before: dict[str, Any], old: dict[str, Any] | None,
                 new: dict[str, Any] | None, *, old_all: list[dict[str, Any]] | None = None,
                 new_all: list[dict[str, Any]] | None = None) -> list[str]:
    """Rollback: restore the registrations and the record as SNAPSHOT saw them (every primary
    of either cluster when it has three)."""
    out: list[str] = []
    old_id = (old or {}).get("instance_id")
    new_id = (new or {}).get("instance_id")
    old_ids = [str(o["instance_id"]) for o in old_all or [] if o.get("instance_id")] or ([old_id] if old_id else [])
    new_ids = [str(n["instance_id"]) for n in new_all or []] or ([new_id] if new_id else [])
    if routing.target_group_arn:
        elbv2 = Elbv2(aws)
        arn = routing.target_group_arn
        current = _tg_targets(elbv2, arn)
        was = [t for t in (before.get("target_group") or {}).get("targets", []) if t["Id"] in old_ids]
        missing = [t for t in was if not any(c["Id"] == t["Id"] and c.get("Port") == t.get("Port") for c in current)]
        if missing:
            elbv2.register_targets(arn, [_target(t["Id"], t.get("Port")) for t in missing])
            out.append(f"re-registered {', '.join(_unique(t['Id'] for t in missing))} with target group")
        ours = [c for c in current if c["Id"] in new_ids]
        if ours:
            elbv2.deregister_targets(arn, [_target(c["Id"], c.get("Port")) for c in ours])
            out.append(f"deregistered {', '.join(_unique(c['Id'] for c in ours))} from target group")
    if routing.load_balancer_name:
        elb = Elb(aws)
        name = routing.load_balancer_name
        current_ids = elb.instances(name)
        had = (before.get("classic_elb") or {}).get("instances", [])
        back = [i for i in old_ids if i in had and i not in current_ids]
        if back:
            elb.register_instances(name, back)
            out.append(f"re-registered {', '.join(back)} with ELB {name}")
        ours_ids = [i for i in new_ids if i in current_ids]
        if ours_ids:
            elb.deregister_instances(name, ours_ids)
            out.append(f"deregistered {', '.join(ours_ids)} from ELB {name}")
    if routing.route53:
        r = routing.route53
        r53 = Route53(aws)
        previous = (before.get("route53") or {}).get("previous")
        record_now = _record(r53, r.zone_id, r.record, r.type)
        if previous and record_now != previous:
            r53.change(r.zone_id, "UPSERT", previous, "sentinel rollback")
            out.append(f"restored {r.record}")
        elif previous is None and record_now is not None:
            r53.change(r.zone_id, "DELETE", record_now, "sentinel rollback")
            out.append(f"deleted {r.record} (it did not exist before)")
    return out


def path_ready(aws: AwsCalls, routing: Routing, repointed: dict[str, Any], new: dict[str, Any], *,
               new_all: list[dict[str, Any]] | None = None) -> str | None:
    """None when the load balancer calls the new target(s) healthy and the DNS change is in
    sync; else what we are still waiting for (VERIFY_PATH waits, then runs the checks)."""
    if routing.target_group_arn:
        port = repointed.get("target_port")
        ids = [str(n["instance_id"]) for n in new_all or []] or [new["instance_id"]]
        found = _tg_targets(Elbv2(aws), routing.target_group_arn, [_target(i, port) for i in ids])
        for i in ids:
            state = next((t["State"] for t in found if t["Id"] == i), "missing")
            if state != "healthy":
                return f"target {i} is {state} in the target group"
    change_id = repointed.get("change_id")
    if routing.route53 and change_id:
        status = Route53(aws).change_status(str(change_id))
        if status != "INSYNC":
            return f"Route 53 change {change_id} is {status}"
    return None


def _target(instance_id: str, port: Any) -> dict[str, Any]:
    return {"Id": instance_id, "Port": int(port)} if port else {"Id": instance_id}


def _record_set(previous: dict[str, Any] | None, name: str, rtype: str, ttl: int, value: str) -> dict[str, Any]:
    """The new record: the old one's routing-policy fields (SetIdentifier, Weight, ...) kept,
    value and TTL replaced."""
    rs: dict[str, Any] = {k: v for k, v in (previous or {}).items()
                          if k not in ("ResourceRecords", "TTL", "AliasTarget", "Name", "Type")}
    rs.update({"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": value}]})
    return rs
