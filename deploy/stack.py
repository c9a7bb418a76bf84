"""Per-environment deploy settings (deploy/samconfig.toml) and a config-vs-stack preflight.

Why a preflight: the function's policy is scoped to this stack's table, topics, SSM path and
the credstash/load-balancer/zone parameters. A config that names another table or a secret
outside ``/sentinel/<env>/`` validates fine and then fails with AccessDenied at 3 a.m. Every
name the stack creates is derived from ``Environment``, so the comparison needs no AWS call:

    python -m deploy.stack preflight -c sentinel.prod.yaml --env prod
    python -m deploy.stack params --env prod      # Key=Value ... for `aws cloudformation deploy`
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]
SAMCONFIG = ROOT / "deploy" / "samconfig.toml"
TEMPLATE = ROOT / "deploy" / "template.yaml"


def samconfig(env: str, path: Path = SAMCONFIG) -> dict[str, Any]:
    """The ``[<env>.deploy.parameters]`` table."""
    data = tomllib.loads(path.read_text())
    try:
        return dict(data[env]["deploy"]["parameters"])
    except KeyError:
        envs = sorted(k for k, v in data.items() if isinstance(v, dict) and "deploy" in v)
        raise KeyError(f"{path}: no [{env}.deploy.parameters] (environments: {', '.join(envs)})") from None


def parameter_overrides(env: str, path: Path = SAMCONFIG) -> dict[str, str]:
    raw = samconfig(env, path).get("parameter_overrides", [])
    items = raw.split() if isinstance(raw, str) else list(raw)
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"{path} [{env}]: parameter override {item!r} is not Key=Value")
        out[key] = value.strip('"')
    return out


def parameters(env: str, path: Path = SAMCONFIG, template: Path = TEMPLATE) -> dict[str, str]:
    """Effective stack parameters: the template's defaults, then the environment's overrides."""
    declared = cfn_yaml.load(template)["Parameters"]
    values = {k: str(v["Default"]) for k, v in declared.items() if "Default" in v}
    values.update(parameter_overrides(env, path))
    return values


def preflight(config: Any, env: str, params: Mapping[str, str], region: str | None = None) -> list[str]:
    """Where ``config`` disagrees with what the stack of ``env`` created and allows."""
    problems: list[str] = []
    want_table = f"sentinel-{env}-state"
    if config.state_table != want_table:
        problems.append(f"state_table is {config.state_table!r}; the stack creates {want_table!r}")
    if not config.notify.page_topic_arn.endswith(f":sentinel-{env}-pages"):
        problems.append(f"notify.page_topic_arn should be the stack's topic ...:sentinel-{env}-pages")
    if config.notify.info_topic_arn and not config.notify.info_topic_arn.endswith(f":sentinel-{env}-info"):
        problems.append(f"notify.info_topic_arn should be the stack's topic ...:sentinel-{env}-info")
    namespace = params.get("MetricsNamespace", "Sentinel")
    if config.metrics_namespace != namespace:
        problems.append(f"metrics_namespace is {config.metrics_namespace!r}; the alarms watch {namespace!r}")
    if region and config.region != region:
        problems.append(f"region is {config.region!r}; the stack is deployed to {region!r}")
    for target in config.targets:
        for i, check in enumerate(target.checks):
            creds = getattr(check, "credentials", None)
            if creds is not None:
                where = f"targets[{target.name}].checks[{i}].credentials"
                problems += _credentials(creds, where, env, params, config.region)
        if target.recovery.enabled:
            problems += _recovery(target, env, params)
    return problems


def _credentials(creds: Any, where: str, env: str, params: Mapping[str, str], region: str) -> list[str]:
    out = []
    if creds.region and creds.region != region:
        out.append(f"{where}.region {creds.region}: the policy allows secrets in the stack's region only")
    if creds.provider == "credstash":
        if creds.table != params.get("CredstashTableName"):
            out.append(f"{where}.table {creds.table!r}: the policy allows CredstashTableName="
                       f"{params.get('CredstashTableName')!r}")
        if not params.get("CredstashKeyArn"):
            out.append(f"{where}: credstash needs the CredstashKeyArn parameter (kms:Decrypt)")
        ctx_env = params.get("CredstashContextEnv")
        if ctx_env and creds.context.get("env") != ctx_env:
            out.append(f"{where}.context.env {creds.context.get('env')!r}: kms:Decrypt requires {ctx_env!r}")
    elif creds.provider == "ssm" and not creds.key.startswith(f"/sentinel/{env}/"):
        out.append(f"{where}.key {creds.key!r}: SSM secrets must live under /sentinel/{env}/")
    elif creds.provider == "secretsmanager" and f"sentinel/{env}/" not in creds.key:
        out.append(f"{where}.key {creds.key!r}: Secrets Manager secrets must be named sentinel/{env}/...")
    return out


def _recovery(target: Any, env: str, params: Mapping[str, str]) -> list[str]:
    """The policy allows changes only to what the parameters name (deploy/iam.py): the
    target's clusters (RecoveryTargets), its DNS record and its load balancers."""
    where = f"targets[{target.name}].recovery"
    if params.get("EnableRecovery", "true") != "true":
        return [f"{where}.enabled: the stack is monitor-only (EnableRecovery=false)"]
    out = []
    if target.name not in _listed(params, "RecoveryTargets"):
        out.append(f"{where}: {target.name} is not in RecoveryTargets: the policy allows no change to its clusters")
    routing = target.recovery.routing
    zone = params.get("HostedZoneId", "")
    if routing.route53 is not None:
        if zone != routing.route53.zone_id:
            out.append(f"{where}.routing.route53.zone_id {routing.route53.zone_id}: the policy allows "
                       f"{zone or 'no zone'} (HostedZoneId)")
        record = routing.route53.record.lower().rstrip(".")
        if record not in _listed(params, "DnsRecordNames"):
            out.append(f"{where}.routing.route53.record {record}: not in DnsRecordNames")
    allowed = _listed(params, "LoadBalancerArns")
    if routing.target_group_arn and routing.target_group_arn not in allowed:
        out.append(f"{where}.routing.target_group_arn is not in LoadBalancerArns")
    if routing.load_balancer_name and not any(a.endswith(f":loadbalancer/{routing.load_balancer_name}")
                                              for a in allowed):
        out.append(f"{where}.routing.load_balancer_name is not in LoadBalancerArns")
    diag = target.recovery.diagnostics
    if diag is not None and diag.bucket and diag.bucket != params.get("DiagnosticsBucket"):
        out.append(f"{where}.diagnostics.s3_uri {diag.s3_uri}: the policy allows s3:PutObject into "
                   f"{params.get('DiagnosticsBucket') or 'no bucket'} (DiagnosticsBucket)")
    key = target.recovery.spec.kms_key_id
    if key and key != params.get("SpecKeyArn"):
        out.append(f"{where}.spec.kms_key_id {key}: the policy allows kms:Encrypt/Decrypt on SpecKeyArn="
                   f"{params.get('SpecKeyArn') or '(empty)'} only (use the key's ARN)")
    return out


def _listed(params: Mapping[str, str], name: str) -> list[str]:
    return [a.strip() for a in params.get(name, "").split(",") if a.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.stack")
    sub = p.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("preflight", help="compare a config with the stack of an environment")
    pf.add_argument("-c", "--config", required=True)
    pf.add_argument("--env", required=True)
    pp = sub.add_parser("params", help="Key=Value overrides of an environment (aws cloudformation deploy)")
    pp.add_argument("--env", required=True)
    args = p.parse_args(argv)
    if args.cmd == "params":
        print(" ".join(f"{k}={v}" for k, v in parameter_overrides(args.env).items()))
        return 0
    from monitor.config import load_config
    from monitor.core.errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(f"config: {e}" for e in exc.errors), file=sys.stderr)
        return 2
    params = parameters(args.env)
    problems = preflight(config, args.env, params, samconfig(args.env).get("region"))
    for line in problems:
        print(f"preflight: {line}", file=sys.stderr)
    if not problems:
        print(f"preflight: {args.config} fits the sentinel-{args.env} stack")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
