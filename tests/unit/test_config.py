"""Config validation: every error names its path; cross-field rules; `validate` exit codes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import loads_config, parse_config
from monitor.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"


def base() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.errors


def test_example_config_validates() -> None:
    cfg = parse_config(base())
    assert cfg.targets[0].name == "prod-hive"
    assert [c.type for c in cfg.targets[0].checks] == ["hiveserver2", "route53_health", "dns_query_rate", "emr_state"]


def _set(path: str, value: Any):
    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


DELETE = object()
T0 = "targets.0"
HS2 = "targets.0.checks.0"

BAD_CONFIGS = [
    (_set(f"{HS2}.timeout_s", 0), "targets[0].checks[0].timeout_s: must be > 0"),
    (_set(f"{HS2}.port", 70000), "targets[0].checks[0].port: must be <= 65535"),
    (_set(f"{HS2}.auth", "KERBEROS"), "targets[0].checks[0].auth: Input should be 'CUSTOM', 'LDAP', 'NONE' or 'NOSASL'"),
    (_set(f"{HS2}.credentials", DELETE), "targets[0].checks[0]: credentials: required for auth CUSTOM"),
    (_set(f"{HS2}.credentials.provider", "vault"), "targets[0].checks[0].credentials.provider: Input should be"),
    (_set(f"{HS2}.bogus", 1), "targets[0].checks[0].bogus: unknown key"),
    (_set(f"{HS2}.tls.verify", 0), "targets[0].checks[0].tls.verify: false must be written explicitly"),
    (_set("targets.0.checks.1.type", "nope"), "targets[0].checks[1].type: unknown check type 'nope' (valid: "),
    (_set("targets.0.checks.1.type", DELETE), "targets[0].checks[1].type: missing (valid: "),
    (_set("targets.0.checks.1.min_healthy_fraction", 2), "targets[0].checks[1].min_healthy_fraction: must be <= 1"),
    (_set("targets.0.checks.2.source.kind", "snmp"), "targets[0].checks[2].source.kind: unknown value 'snmp'"),
    (_set("targets.0.checks.2.source.url", "ftp://x"), "targets[0].checks[2].source.url: must match"),
    (_set("targets.0.checks.2.warn_per_s", 1000), "targets[0].checks[2]: warn_per_s: must be <= critical_per_s"),
    (_set("targets.0.checks.1.name", "hive-via-elb"),
     "targets[0].checks[1].name: duplicate check name 'hive-via-elb' in target 'prod-hive'"),
    (_set(f"{T0}.name", "Prod_Hive"), "targets[0].name: must match"),
    (_set(f"{T0}.cluster", {"name": "x", "id": "j-ABC"}), "targets[0].cluster: give exactly one of 'name' or 'id'"),
    (_set(f"{T0}.recovery.when.checks", ["nope"]), "targets[0].recovery.when.checks[0]: no check named 'nope'"),
    (_set(f"{T0}.recovery.when.consecutive_failures", 0), "targets[0].recovery.when.consecutive_failures: must be >= 1"),
    (_set(f"{T0}.recovery.veto_if_failing", ["ghost"]), "targets[0].recovery.veto_if_failing[0]: no check named 'ghost'"),
    (_set(f"{T0}.recovery.veto_if_failing", ["hive-via-elb"]),
     "targets[0].recovery.veto_if_failing[0]: 'hive-via-elb' is also in recovery.when.checks"),
    (_set(f"{T0}.recovery.verify.checks", ["ghost"]), "targets[0].recovery.verify.checks[0]: no check named 'ghost'"),
    (_set(f"{T0}.recovery.strategy", "yolo"), "targets[0].recovery.strategy: Input should be 'replace' or 'terminate_first'"),
    (_set(f"{T0}.recovery.spec", {"source": "file"}), "targets[0].recovery.spec: source 'file' needs 'path'"),
    (_set(f"{T0}.recovery.when", DELETE), "targets[0].recovery.when: required to recover"),
    (_set(f"{T0}.recovery.routing", {}), "targets[0].recovery.routing: give target_group_arn, load_balancer_name or route53"),
    (_set(f"{T0}.recovery.limits.window_hours", -1), "targets[0].recovery.limits.window_hours: must be > 0"),
    (_set(f"{T0}.silences", [{"until": "2026-12-01T06:00:00", "reason": "x"}]),
     "targets[0].silences[0]: until: needs a timezone"),
    (_set("version", 2), "version: Input should be 1"),
    (_set("region", "mars"), "region: must match"),
    (_set("notify.page_topic_arn", "topic"), "notify.page_topic_arn: must match"),
    (_set("notify", DELETE), "notify: required"),
    (_set("targets", []), "targets: List should have at least 1 item"),
    (_set("extra", True), "extra: unknown key"),
]


@pytest.mark.parametrize(("mutate", "expected"), BAD_CONFIGS, ids=[e for _, e in BAD_CONFIGS])
def test_bad_config_names_its_path(mutate: Any, expected: str) -> None:
    raw = base()
    mutate(raw)
    errors = errors_of(raw)
    assert any(e.startswith(expected) for e in errors), errors


def test_duplicate_target_names_rejected() -> None:
    raw = base()
    raw["targets"].append(copy.deepcopy(raw["targets"][0]))
    assert "targets[1].name: duplicate target name 'prod-hive' (also targets[0])" in errors_of(raw)


def test_tls_verify_false_written_explicitly_is_allowed() -> None:
    raw = base()
    raw["targets"][0]["checks"][0]["tls"]["verify"] = False
    cfg = parse_config(raw)
    assert cfg.targets[0].checks[0].tls.verify is False  # type: ignore[attr-defined]


def test_tls_is_on_and_verified_when_not_mentioned() -> None:
    raw = base()
    del raw["targets"][0]["checks"][0]["tls"]
    tls = parse_config(raw).targets[0].checks[0].tls  # type: ignore[attr-defined]
    assert tls.verify is True


def test_invalid_yaml_reports_line() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config("version: 1\ntargets: [\n", source="x.yaml")
    assert info.value.errors[0].startswith("x.yaml: line")


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(EXAMPLE)]) == 0
    raw = base()
    raw["targets"][0]["checks"][0]["timeout_s"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["validate", "-c", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["config: targets[0].checks[0].timeout_s: must be > 0"]
    assert main(["validate", "-c", str(tmp_path / "missing.yaml")]) == 2


def test_validate_makes_no_aws_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("validate must not create AWS clients")

    monkeypatch.setattr(boto3.session.Session, "client", boom)
    raw = base()
    raw["targets"][0]["checks"][0]["port"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["validate", "-c", str(bad)]) == 2
    assert main(["tick", "-c", str(bad)]) == 2


# ---------------------------------------------------------------- topology (DESIGN §11)

RECORD_PATH = "targets[0].recovery.routing.route53.record"


def _topology(record: str, host: str = "hive.internal.example.com", *, target_group: bool = True,
              classic: bool = False) -> dict[str, Any]:
    """The example with its check dialling ``host`` and REPOINT rewriting ``record``."""
    raw = base()
    raw["targets"][0]["checks"][0]["host"] = host
    routing = raw["targets"][0]["recovery"]["routing"]
    routing["route53"]["record"] = record
    if not target_group:
        del routing["target_group_arn"]
    if classic:
        routing["load_balancer_name"] = "hive-classic"
    return raw


def test_the_example_shows_the_production_layout() -> None:
    """Clients dial the load balancer's name; the record sentinel re-points is the master's own."""
    target = parse_config(base()).targets[0]
    routing = target.recovery.routing
    assert routing.target_group_arn and routing.route53 is not None
    assert target.checks[0].host == "hive.internal.example.com"  # type: ignore[attr-defined]
    assert routing.route53.record == "hive-master.internal.example.com"


def test_validate_rejects_the_load_balancers_name_as_the_record_sentinel_repoints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "elb-name-repointed.yaml"
    path.write_text(yaml.safe_dump(_topology("hive.internal.example.com")))
    assert main(["validate", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if RECORD_PATH in x)
    assert line.startswith(f"config: {RECORD_PATH}: 'hive.internal.example.com' is the host of check(s) "
                           "'hive-via-elb'")
    # the message explains both topologies
    assert "behind a load balancer, recovery re-registers targets and leaves the balancer's DNS name alone" in line
    assert "without one, the record is a CNAME to the master" in line


@pytest.mark.parametrize(("record", "host"), [
    ("HIVE.Internal.Example.com", "hive.internal.example.com"),
    ("hive.internal.example.com.", "hive.internal.example.com"),
    ("hive.internal.example.com", "Hive.Internal.Example.Com."),
    ("Hive.Internal.Example.Com.", "hive.INTERNAL.example.com"),
])
def test_the_record_is_compared_without_case_or_trailing_dot(record: str, host: str) -> None:
    errors = errors_of(_topology(record, host))
    assert [e for e in errors if e.startswith(f"{RECORD_PATH}: ")], errors


@pytest.mark.parametrize(("target_group", "classic"), [(True, False), (False, True), (True, True)],
                         ids=["target group", "classic ELB", "both"])
def test_either_kind_of_load_balancer_makes_the_check_host_an_invalid_record(target_group: bool, classic: bool) -> None:
    errors = errors_of(_topology("hive.internal.example.com", target_group=target_group, classic=classic))
    line = next(e for e in errors if e.startswith(f"{RECORD_PATH}: "))
    assert ("classic ELB" in line) is classic and ("target group" in line) is target_group


def test_any_check_of_the_target_counts_not_only_the_first() -> None:
    raw = _topology("hive-direct.internal.example.com")
    second = copy.deepcopy(raw["targets"][0]["checks"][0])
    second.update(name="hive-direct", host="hive-direct.internal.example.com")
    raw["targets"][0]["checks"].append(second)
    assert any(e.startswith(f"{RECORD_PATH}: 'hive-direct.internal.example.com' is the host of check(s) 'hive-direct'")
               for e in errors_of(raw))


@pytest.mark.parametrize("record", ["master.hive.internal", "hive-master.internal.example.com"])
def test_a_record_for_the_master_itself_next_to_a_target_group_is_fine(record: str) -> None:
    routing = parse_config(_topology(record)).targets[0].recovery.routing
    assert routing.target_group_arn and routing.route53 is not None and routing.route53.record == record


def test_without_a_load_balancer_the_record_clients_dial_is_a_cname_to_the_master() -> None:
    raw = _topology("hive.internal.example.com", target_group=False)
    raw["targets"][0]["recovery"]["verify"].pop("master")  # no load balancer: VERIFY_NEW may use the check as is
    routing = parse_config(raw).targets[0].recovery.routing
    assert not routing.load_balancer and routing.route53 is not None


def test_a_target_that_does_not_recover_is_held_to_the_same_layout() -> None:
    """The rule is about the layout, not about ``enabled``: a disabled target's routing is
    what `sentinel recover` would use."""
    raw = _topology("hive.internal.example.com")
    raw["targets"][0]["recovery"]["enabled"] = False
    assert any(e.startswith(f"{RECORD_PATH}: ") for e in errors_of(raw))
