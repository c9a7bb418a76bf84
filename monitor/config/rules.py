"""The cross-field rules: what the shape alone cannot say (names unique, a referenced check
exists, the ladder's order, the topology, one owner per cluster and routing resource,
``tls.verify: false`` written out) and what a target lacks to be recovered (``recovery_gaps``).
Each problem is one line that starts with its path."""

from __future__ import annotations

from typing import Any

from checks.base import CheckConfig
from monitor.config.dispatch import MAX_INLINE_TARGETS, Config
from monitor.config.recovery import ReplaceRung, RestartRung
from monitor.config.targets import Target


def cross_field_errors(raw: dict[str, Any], config: Config) -> list[str]:
    errors: list[str] = []
    if config.dispatch == "inline" and len(config.targets) > MAX_INLINE_TARGETS:
        errors.append(f"targets: at most {MAX_INLINE_TARGETS} entries (got {len(config.targets)}) with dispatch: "
                      "inline (one invocation ticks them all); use dispatch: queue for more")
    seen_targets: dict[str, int] = {}
    for ti, target in enumerate(config.targets):
        tp = f"targets[{ti}]"
        if target.name in seen_targets:
            errors.append(f"{tp}.name: duplicate target name {target.name!r} (also targets[{seen_targets[target.name]}])")
        seen_targets.setdefault(target.name, ti)
        names: dict[str, int] = {}
        for ci, check in enumerate(target.checks):
            if check.name in names:
                errors.append(f"{tp}.checks[{ci}].name: duplicate check name {check.name!r} in target {target.name!r}")
            names.setdefault(check.name, ci)
            errors.extend(_explicit_tls_errors(raw, ti, ci, check))
        rec = target.recovery
        refs: list[tuple[str, list[str]]] = [
            ("recovery.veto_if_failing", rec.veto_if_failing),
            ("recovery.verify.checks", rec.verify.checks),
        ]
        if rec.when is not None:
            refs.append(("recovery.when.checks", rec.when.checks))
        for path, listed in refs:
            for i, name in enumerate(listed):
                if name not in names:
                    errors.append(f"{tp}.{path}[{i}]: no check named {name!r} in target {target.name!r}")
        if rec.when is not None:
            for i, name in enumerate(rec.veto_if_failing):
                if name in rec.when.checks:
                    errors.append(
                        f"{tp}.recovery.veto_if_failing[{i}]: {name!r} is also in recovery.when.checks"
                    )
        if rec.verify.master is not None and rec.verify.master.checks is not None:
            for i, name in enumerate(rec.verify.master.checks):
                if name not in names:
                    errors.append(f"{tp}.recovery.verify.master.checks[{i}]: no check named {name!r} "
                                  f"in target {target.name!r}")
        seen_rungs: set[str] = set()
        for i, rung in enumerate(rec.ladder):
            key = rung.rung + (f":{rung.via}" if isinstance(rung, RestartRung) else "")
            if key in seen_rungs:
                errors.append(f"{tp}.recovery.ladder[{i}]: {key} is already a rung")
            seen_rungs.add(key)
            if isinstance(rung, ReplaceRung) and i != len(rec.ladder) - 1:
                errors.append(f"{tp}.recovery.ladder[{i}]: replace must be the last rung (a relaunch that fails "
                              "rolls back and escalates)")
        if rec.enabled:
            errors.extend(f"{tp}.{gap}" for gap in recovery_gaps(target))
        errors.extend(f"{tp}.{problem}" for problem in topology_errors(target))
    errors.extend(_shared_resource_errors(config))
    return errors


def dns_name(name: str) -> str:
    """A DNS name as Route 53 compares it: without case and without the trailing dot."""
    return name.rstrip(".").lower()


def topology_errors(target: Target) -> list[str]:
    """The record sentinel re-points must not be the name clients use to reach the load
    balancer (DESIGN §11 "Topology"). REPOINT rewrites ``routing.route53.record`` to the new
    master's private name: if a check (the clients' path) dials that name through the target
    group or classic ELB, the rewrite sends clients and VERIFY_PATH straight to the master on
    the listener's port, around the load balancer, and the recovery fails (then rolls traffic
    back to the broken master). A record for the master itself next to a load balancer is fine."""
    routing = target.recovery.routing
    if routing.route53 is None or not routing.load_balancer:
        return []
    record = dns_name(routing.route53.record)
    through: list[str] = []
    for check in target.checks:
        host = getattr(check, "host", None)  # the checks that dial a name (hiveserver2)
        if isinstance(host, str) and dns_name(host) == record:
            through.append(check.name)
    if not through:
        return []
    balancer = " and ".join(what for what, given in (("target group", routing.target_group_arn),
                                                     ("classic ELB", routing.load_balancer_name)) if given)
    checks = ", ".join(repr(name) for name in through)
    return [f"recovery.routing.route53.record: {routing.route53.record!r} is the host of check(s) {checks}, "
            f"which reach HiveServer2 through the load balancer ({balancer}); REPOINT would rewrite that name to the "
            "new master and send clients around the load balancer. Two topologies: behind a load balancer, "
            "recovery re-registers targets and leaves the balancer's DNS name alone (do not list it here); "
            "without one, the record is a CNAME to the master (the name clients dial, no target_group_arn or "
            "load_balancer_name). Here, name the master's own record (e.g. hive-master.internal.example.com "
            "-> the master's private name) or remove routing.route53"]


def recovery_gaps(target: Target) -> list[str]:
    """What a target's config lacks to be recovered safely (DESIGN §10), as ``path: why``.
    Empty means recoverable. Checked by ``validate`` for ``enabled`` targets and by the
    policy before any recovery (automatic or manual, forced or not): a relaunch that cannot be
    verified, or whose traffic nothing would move, is never started."""
    rec = target.recovery
    gaps: list[str] = []
    if rec.when is None:
        gaps.append("recovery.when: required to recover (which checks, how many consecutive failures)")
    if not any(isinstance(r, ReplaceRung) for r in rec.ladder):
        return gaps  # restarts only: nothing moves traffic; VERIFY re-runs the trigger checks
    if not rec.routing.routed:
        gaps.append("recovery.routing: give target_group_arn, load_balancer_name or route53 "
                    "(nothing would point clients at the new cluster)")
    if not rec.verify.checks:
        gaps.append("recovery.verify.checks: required to recover (a new cluster is never trusted unverified)")
    if rec.routing.load_balancer and rec.verify.master is None:
        gaps.append("recovery.verify.master: required with a load balancer in the path (the new master's own "
                    "port and TLS; the listener's port and certificate do not apply to it)")
    elif not rec.verify.master_checks and rec.verify.checks:
        gaps.append("recovery.verify.master.checks: must name at least one check to run on the new master")
    return gaps


def _shared_resource_errors(config: Config) -> list[str]:
    """Two targets must not own one cluster or one routing resource: the second target's
    recovery would terminate or re-point the first one's."""
    errors: list[str] = []
    owners: dict[tuple[str, str], int] = {}
    for ti, target in enumerate(config.targets):
        rec = target.recovery
        claims: list[tuple[str, str, str]] = []
        if rec.enabled or not recovery_gaps(target):  # it may be recovered: it owns its cluster
            ref = target.cluster
            claims.append(("cluster", "cluster name" if ref.name else "cluster id", str(ref.name or ref.id)))
        if rec.routing.target_group_arn:
            claims.append(("recovery.routing.target_group_arn", "target group", rec.routing.target_group_arn))
        if rec.routing.load_balancer_name:
            claims.append(("recovery.routing.load_balancer_name", "load balancer", rec.routing.load_balancer_name))
        if rec.routing.route53:
            claims.append(("recovery.routing.route53.record", "record", dns_name(rec.routing.route53.record)))
        for path, what, value in claims:
            key = (what, value)
            if key in owners and owners[key] != ti:
                errors.append(f"targets[{ti}].{path}: {what} {value!r} is already owned by "
                              f"targets[{owners[key]}] ({config.targets[owners[key]].name}); two targets "
                              "must not recover or re-point one resource")
            owners.setdefault(key, ti)
    return errors


def _explicit_tls_errors(raw: dict[str, Any], ti: int, ci: int, check: CheckConfig) -> list[str]:
    """``tls.verify: false`` must be written out: a missing key can never turn TLS off."""
    tls = getattr(check, "tls", None)
    if tls is None or getattr(tls, "verify", True):
        return []
    try:
        written = raw["targets"][ti]["checks"][ci]["tls"]["verify"]
    except (KeyError, IndexError, TypeError):
        written = None
    if written is not False:
        return [f"targets[{ti}].checks[{ci}].tls.verify: false must be written explicitly"]
    return []
