"""Per-environment settings (samconfig.toml) fit the template, and the preflight catches a
config the deployed policy would refuse."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deploy import stack
from monitor.config import parse_config

ENVS = ("dev", "prod")


@pytest.mark.parametrize("env", ENVS)
def test_samconfig_environment_fits_the_template(env: str, template: dict[str, Any]) -> None:
    settings = stack.samconfig(env)
    assert settings["stack_name"] == f"sentinel-{env}"
    assert "CAPABILITY_IAM" in settings["capabilities"]
    overrides = stack.parameter_overrides(env)
    declared = template["Parameters"]
    assert set(overrides) <= set(declared), set(overrides) - set(declared)
    assert overrides["Environment"] == env
    required = {k for k, v in declared.items() if "Default" not in v}
    assert required <= set(overrides)
    values = stack.parameters(env)
    for key, spec in declared.items():
        value = values.get(key)
        if value is None:
            continue
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], (key, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (key, value)
        if spec["Type"] == "Number":
            assert float(spec.get("MinValue", "-inf")) <= float(value) <= float(spec.get("MaxValue", "inf")), key
    if values["EnableRecovery"] == "true":  # the template's Rules
        assert values["EmrServiceRoleArn"] and values["EmrInstanceRoleArn"]


def test_prod_changes_are_reviewed_first() -> None:
    assert stack.samconfig("prod")["confirm_changeset"] is True


def test_an_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="environments: dev, prod"):
        stack.samconfig("staging")


def test_params_prints_overrides_for_the_aws_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.main(["params", "--env", "prod"]) == 0
    words = capsys.readouterr().out.split()
    assert "Environment=prod" in words and all("=" in w for w in words)


def config_for(env: str, **changes: Any) -> Any:
    raw: dict[str, Any] = {
        "version": 1, "region": "us-east-1", "state_table": f"sentinel-{env}-state",
        "notify": {"page_topic_arn": f"arn:aws:sns:us-east-1:123456789012:sentinel-{env}-pages",
                   "info_topic_arn": f"arn:aws:sns:us-east-1:123456789012:sentinel-{env}-info"},
        "targets": [{
            "name": "prod-hive", "cluster": {"name": "RC.HIVE.ADHOC"},
            "checks": [{"type": "hiveserver2", "name": "hive", "host": "hive.internal.example.com", "port": 443,
                        "credentials": {"provider": "credstash", "username": "rcapp", "key": "hive.rcapp.password",
                                        "table": "credential-store", "context": {"env": env}}}],
            "recovery": {"enabled": True, "when": {"checks": ["hive"]},
                         "verify": {"checks": ["hive"], "master": {"port": 10000}},
                         "routing": {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                                                         "targetgroup/hive/0123456789abcdef",
                                     "route53": {"zone_id": "Z0123456789ABCDEFGHIJ",
                                                 "record": "Hive-Master.Internal.Example.com."}}},
        }],
    }
    for key, value in changes.items():
        raw[key] = value
    return parse_config(raw)


def test_a_config_written_for_the_stack_passes() -> None:
    assert stack.preflight(config_for("prod"), "prod", stack.parameters("prod"), "us-east-1") == []


def test_preflight_names_every_mismatch() -> None:
    cfg = config_for("prod", state_table="sentinel-state", metrics_namespace="Other", region="eu-west-1")
    problems = stack.preflight(cfg, "prod", stack.parameters("prod"), "us-east-1")
    assert any("state_table is 'sentinel-state'; the stack creates 'sentinel-prod-state'" in p for p in problems)
    assert any("metrics_namespace is 'Other'" in p for p in problems)
    assert any("region is 'eu-west-1'" in p for p in problems)


def test_preflight_catches_secrets_and_routing_the_policy_refuses() -> None:
    params = {**stack.parameters("prod"), "CredstashContextEnv": "production"}
    problems = stack.preflight(config_for("prod"), "prod", params)
    assert problems == ["targets[prod-hive].checks[0].credentials.context.env 'prod': kms:Decrypt requires 'production'"]
    params = {**stack.parameters("prod"), "HostedZoneId": "ZOTHER", "LoadBalancerArns": "arn:aws:x"}
    problems = stack.preflight(config_for("prod"), "prod", params)
    assert len(problems) == 2 and "zone_id" in problems[0] and "target_group_arn" in problems[1]


def test_preflight_names_the_ownership_record_and_key_parameters_the_policy_needs() -> None:
    params = {**stack.parameters("prod"), "RecoveryTargets": "other-hive", "DnsRecordNames": "other.example.com"}
    cfg = config_for("prod")
    rec = cfg.targets[0].recovery.model_copy(update={"spec": cfg.targets[0].recovery.spec.model_copy(
        update={"kms_key_id": "alias/sentinel"})})
    cfg = cfg.model_copy(update={"targets": [cfg.targets[0].model_copy(update={"recovery": rec})]})
    problems = stack.preflight(cfg, "prod", params)
    assert problems == [
        "targets[prod-hive].recovery: prod-hive is not in RecoveryTargets: the policy allows no change to its clusters",
        "targets[prod-hive].recovery.routing.route53.record hive-master.internal.example.com: not in DnsRecordNames",
        "targets[prod-hive].recovery.spec.kms_key_id alias/sentinel: the policy allows kms:Encrypt/Decrypt on "
        "SpecKeyArn=(empty) only (use the key's ARN)"]


def test_recovery_in_a_monitor_only_stack_is_flagged() -> None:
    problems = stack.preflight(config_for("dev"), "dev", stack.parameters("dev"))
    assert problems == ["targets[prod-hive].recovery.enabled: the stack is monitor-only (EnableRecovery=false)"]


def test_preflight_names_a_diagnostics_bucket_the_policy_does_not_allow() -> None:
    from monitor.config import Diagnostics

    cfg = config_for("prod")
    rec = cfg.targets[0].recovery.model_copy(update={"diagnostics": Diagnostics(s3_uri="s3://acme-diag/hive")})
    cfg = cfg.model_copy(update={"targets": [cfg.targets[0].model_copy(update={"recovery": rec})]})
    assert stack.preflight(cfg, "prod", stack.parameters("prod")) == [
        "targets[prod-hive].recovery.diagnostics.s3_uri s3://acme-diag/hive: the policy allows s3:PutObject into "
        "no bucket (DiagnosticsBucket)"]
    assert stack.preflight(cfg, "prod", {**stack.parameters("prod"), "DiagnosticsBucket": "acme-diag"}) == []
