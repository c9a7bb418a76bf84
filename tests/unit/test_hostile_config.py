"""Hostile and sloppy config is refused up front: `validate`, `tick` and the Lambda handler all
exit 2 naming the field's path (the user's path, no pydantic union tags), and not one AWS call
is made. Every number in every config model has an upper bound."""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from checks import registry
from monitor import handler
from monitor.cli import main
from monitor.config import Config, parse_config
from monitor.core.errors import ConfigError
from tests.aws_guard import forbid_aws
from tests.functional.aws import LambdaContext

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"
HS2 = "targets.0.checks.0"
R53 = "targets.0.checks.1"
DNS = "targets.0.checks.2"
EMR = "targets.0.checks.3"
REC = "targets.0.recovery"
ALIAS = "ip-10-*.ec2.internal"
CW = {"kind": "cloudwatch", "namespace": "CWAgent", "metric": "m"}

Mutate = Callable[[dict[str, Any]], None]


def base() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def at(path: str, value: Any) -> Mutate:
    """Set ``value`` at a dotted path (list indexes as numbers)."""
    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        node[parts[-1]] = value
    return mutate


def alias(value: Any, key: str = ALIAS) -> Mutate:
    return at("host_aliases", {key: value})


def many(path: str, make: Callable[[dict[str, Any]], Any]) -> Mutate:
    """Set ``path`` from a function of the raw config (to build long lists from its parts)."""
    def mutate(raw: dict[str, Any]) -> None:
        at(path, make(raw))(raw)
    return mutate


# (what is wrong, mutation, the error line it must produce: a prefix)
HOSTILE: list[tuple[str, Mutate, str]] = [
    # -- numbers without a sane bound used to validate, then overflow or run for ages
    ("window_hours 1e300", at(f"{REC}.limits.window_hours", 1e300), "targets[0].recovery.limits.window_hours: must be <= 720"),
    ("window_hours inf", at(f"{REC}.limits.window_hours", float("inf")), "targets[0].recovery.limits.window_hours: must be"),
    ("window_hours nan", at(f"{REC}.limits.window_hours", float("nan")), "targets[0].recovery.limits.window_hours: must be"),
    ("window_hours 721", at(f"{REC}.limits.window_hours", 721), "targets[0].recovery.limits.window_hours: must be <= 720"),
    ("launch_timeout_min 1e300", at(f"{REC}.limits.launch_timeout_min", 1e300),
     "targets[0].recovery.limits.launch_timeout_min: must be <= 240"),
    ("launch_timeout_min 241", at(f"{REC}.limits.launch_timeout_min", 241),
     "targets[0].recovery.limits.launch_timeout_min: must be <= 240"),
    ("max_recoveries 21", at(f"{REC}.limits.max_recoveries", 21), "targets[0].recovery.limits.max_recoveries: must be <= 20"),
    ("max_recoveries 10**30", at(f"{REC}.limits.max_recoveries", 10**30),
     "targets[0].recovery.limits.max_recoveries: must be <= 20"),
    ("max_recoveries -1", at(f"{REC}.limits.max_recoveries", -1), "targets[0].recovery.limits.max_recoveries: must be >= 0"),
    ("route53 ttl 2 days + 1 s", at(f"{REC}.routing.route53.ttl", 172801),
     "targets[0].recovery.routing.route53.ttl: must be <= 172800"),
    ("route53 ttl 1e300", at(f"{REC}.routing.route53.ttl", 1e300), "targets[0].recovery.routing.route53.ttl: "),
    ("route53 ttl -1", at(f"{REC}.routing.route53.ttl", -1), "targets[0].recovery.routing.route53.ttl: must be >= 0"),
    ("unknown_after 1001", at("notify.unknown_after", 1001), "notify.unknown_after: must be <= 1000"),
    ("max_workers 65", at("max_workers", 65), "max_workers: must be <= 64"),
    ("when.consecutive_failures 101", at(f"{REC}.when.consecutive_failures", 101),
     "targets[0].recovery.when.consecutive_failures: must be <= 100"),
    ("stall_after_min 1441", at(f"{REC}.stall_after_min", 1441), "targets[0].recovery.stall_after_min: must be <= 1440"),
    ("verify.master.port 70000", at(f"{REC}.verify.master.port", 70000),
     "targets[0].recovery.verify.master.port: must be <= 65535"),
    ("routing.target_port 0", at(f"{REC}.routing.target_port", 0), "targets[0].recovery.routing.target_port: must be >= 1"),
    # -- check models
    ("hs2 timeout_s 601", at(f"{HS2}.timeout_s", 601), "targets[0].checks[0].timeout_s: must be <= 600"),
    ("hs2 timeout_s inf", at(f"{HS2}.timeout_s", float("inf")), "targets[0].checks[0].timeout_s: must be"),
    ("hs2 attempts 11", at(f"{HS2}.attempts", 11), "targets[0].checks[0].attempts: must be <= 10"),
    ("hs2 retry_delay_s 301", at(f"{HS2}.retry_delay_s", 301), "targets[0].checks[0].retry_delay_s: must be <= 300"),
    ("hs2 port 0", at(f"{HS2}.port", 0), "targets[0].checks[0].port: must be >= 1"),
    ("hs2 port 65536", at(f"{HS2}.port", 65536), "targets[0].checks[0].port: must be <= 65535"),
    ("hs2 port text", at(f"{HS2}.port", "443abc"), "targets[0].checks[0].port: Input should be a valid integer"),
    ("hs2 host 300 chars", at(f"{HS2}.host", "h" * 300), "targets[0].checks[0].host: at most 253 characters"),
    ("hs2 query 10 001 chars", at(f"{HS2}.query", "q" * 10_001), "targets[0].checks[0].query: at most 10000 characters"),
    ("dns warn_per_s 1e300", at(f"{DNS}.warn_per_s", 1e300), "targets[0].checks[2].warn_per_s: must be <= 1000000"),
    ("dns critical_per_s inf", at(f"{DNS}.critical_per_s", float("inf")), "targets[0].checks[2].critical_per_s: must be"),
    ("dns max_sample_age_s 86401", at(f"{DNS}.max_sample_age_s", 86401),
     "targets[0].checks[2].max_sample_age_s: must be <= 86400"),
    ("cloudwatch lookback_s 86401", at(f"{DNS}.source", {**CW, "lookback_s": 86401}),
     "targets[0].checks[2].source.lookback_s: must be <= 86400"),
    ("cloudwatch delay_s 3601", at(f"{DNS}.source", {**CW, "delay_s": 3601}),
     "targets[0].checks[2].source.delay_s: must be <= 3600"),
    ("cloudwatch 31 dimensions", at(f"{DNS}.source", {**CW, "dimensions": {f"d{i}": "v" for i in range(31)}}),
     "targets[0].checks[2].source.dimensions: at most 30 entries"),
    ("emr max_starting_min 1e9", at(f"{EMR}.max_starting_min", 1e9), "targets[0].checks[3].max_starting_min: must be <= 1440"),
    ("emr failed_steps_window_h 337", at(f"{EMR}.failed_steps_window_h", 337),
     "targets[0].checks[3].failed_steps_window_h: must be <= 336"),
    ("route53 min_healthy_fraction 1.5", at(f"{R53}.min_healthy_fraction", 1.5),
     "targets[0].checks[1].min_healthy_fraction: must be <= 1"),
    # -- host_aliases: every value an address or a name, the port 1-65535; keys host globs
    ("alias port not a number", alias("127.0.0.1:hs2"), f"host_aliases['{ALIAS}']: port 'hs2': must be a number from 1"),
    ("alias port 99999", alias("127.0.0.1:99999"), f"host_aliases['{ALIAS}']: port '99999': must be a number from 1"),
    ("alias port 0", alias("127.0.0.1:0"), f"host_aliases['{ALIAS}']: port '0'"),
    ("alias port empty", alias("127.0.0.1:"), f"host_aliases['{ALIAS}']: port ''"),
    ("alias with a space", alias("bad host"), f"host_aliases['{ALIAS}']: 'bad host' is neither an IP address nor a host name"),
    ("alias empty label", alias("a..b"), f"host_aliases['{ALIAS}']: 'a..b' is neither"),
    ("alias bad IPv6", alias("::g"), f"host_aliases['{ALIAS}']: not an IPv6 address"),
    ("alias junk after brackets", alias("[::1]x"), f"host_aliases['{ALIAS}']: use [IPv6] or [IPv6]:port"),
    ("alias a number", alias(5), f"host_aliases['{ALIAS}']: Input should be a valid string"),
    ("alias 301 chars", alias("a" * 301), f"host_aliases['{ALIAS}']: at most 300 characters"),
    ("alias key with a space", alias("127.0.0.1", key="a b"), "host_aliases['a b']: key: a host name or glob pattern"),
    ("1001 aliases", at("host_aliases", {f"h{i}": "127.0.0.1" for i in range(1001)}),
     "host_aliases: at most 1000 entries (got 1001)"),
    # -- unions: the user's path, once, no TlsConfig / literal[False] lines
    ("tls: true", at(f"{HS2}.tls", True), "targets[0].checks[0].tls: must be a mapping or false, not true"),
    ("tls: a string", at(f"{HS2}.tls", "yes"), "targets[0].checks[0].tls: must be a mapping or false, not a string"),
    ("tls.ca_file a number", at(f"{HS2}.tls", {"ca_file": 443}),
     "targets[0].checks[0].tls.ca_file: Input should be a valid string"),
    ("tls.sni unknown", at(f"{HS2}.tls", {"sni": "x"}), "targets[0].checks[0].tls.sni: unknown key"),
    ("master tls.sni unknown", at(f"{REC}.verify.master.tls", {"sni": 1}),
     "targets[0].recovery.verify.master.tls.sni: unknown key"),
    ("master tls: 1", at(f"{REC}.verify.master.tls", 1),
     "targets[0].recovery.verify.master.tls: must be a mapping or false, not a number"),
    # -- lengths and counts
    ("silence reason 1001 chars", at("targets.0.silences", [{"until": "2030-01-01T00:00:00Z", "reason": "r" * 1001}]),
     "targets[0].silences[0].reason: at most 1000 characters"),
    ("cluster name 300 chars", at("targets.0.cluster", {"name": "c" * 300}), "targets[0].cluster.name: at most 256 characters"),
    ("metrics_namespace 256 chars", at("metrics_namespace", "n" * 256), "metrics_namespace: at most 255 characters"),
    ("route53 record 300 chars", at(f"{REC}.routing.route53.record", "r" * 300),
     "targets[0].recovery.routing.route53.record: at most 255 characters"),
    ("33 checks", many("targets.0.checks", lambda raw: [dict(raw["targets"][0]["checks"][3], name=f"c{i}") for i in range(33)]),
     "targets[0].checks: at most 32 entries (got 33)"),
    ("201 targets", many("targets", lambda raw: [dict(raw["targets"][0], name=f"t{i}") for i in range(201)]),
     "targets: at most 200 entries (got 201)"),
    ("targets: a number", at("targets", [5]), "targets[0]: must be a mapping"),
]
assert len(HOSTILE) >= 40


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return forbid_aws(monkeypatch)


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.errors


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_config_is_refused_naming_its_path_with_no_aws_call(
    mutate: Mutate, expected: str, tmp_path: Path, no_aws: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = base()
    mutate(raw)
    errors = errors_of(raw)
    assert any(e.startswith(expected) for e in errors), errors
    assert not any(tag in e for e in errors for tag in ("TlsConfig", "MasterTls", "literal[", "function-", "[key]")), errors

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    for command in ("validate", "tick"):
        assert main([command, "-c", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"config: {expected}" in err and "Traceback" not in err

    monkeypatch.setenv("SENTINEL_CONFIG", str(bad))
    monkeypatch.setattr(handler, "_WARM", handler._Warm())
    rep = handler.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, _Ctx())
    assert rep["exit_code"] == 2 and rep["status"] == "error"
    assert any(f"config: {expected}" in e or expected in e for e in rep["errors"]), rep["errors"]
    assert no_aws == []


def _Ctx() -> LambdaContext:
    """A Lambda context invoked through the operator door (nothing is refused for the door)."""
    return LambdaContext(request_id="req-hostile", qualifier="operator")


def test_a_union_error_is_one_line_at_the_users_path() -> None:
    raw = base()
    raw["targets"][0]["checks"][0]["tls"] = {"ca_file": 443}
    assert errors_of(raw) == ["targets[0].checks[0].tls.ca_file: Input should be a valid string"]


def test_ten_thousand_bad_keys_give_fifty_lines_and_a_count() -> None:
    raw = base()
    for i in range(10_000):
        raw[f"junk{i}"] = i
    errors = errors_of(raw)
    assert len(errors) == 51 and errors[-1] == "... and 9950 more error(s)"


def test_good_host_aliases_validate() -> None:
    raw = base()
    raw["host_aliases"] = {ALIAS: "127.0.0.1:10443", "hive.internal": "localhost", "*.v6": "[::1]:443",
                           "bare.v6": "::1", "[ab]?.x": "[::1]", "name": "hs2-backend.internal.example.com:1"}
    assert parse_config(raw).host_aliases[ALIAS] == "127.0.0.1:10443"


def _numbers_without_upper_bound(model: type[BaseModel], seen: set[type[BaseModel]], where: str) -> list[str]:
    if model in seen:
        return []
    seen.add(model)
    missing = []
    for name, info in model.model_fields.items():
        path = f"{where}.{name}"
        types_ = _leaf_types(info.annotation)
        if (int in types_ or float in types_) and not any(
                isinstance(m, annotated_types.Le | annotated_types.Lt) for m in info.metadata):
            missing.append(path)
        for t in types_:
            if isinstance(t, type) and issubclass(t, BaseModel):
                missing += _numbers_without_upper_bound(t, seen, f"{path}")
    return missing


def _leaf_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        out: set[Any] = set()
        for arg in typing.get_args(annotation):
            out |= _leaf_types(arg)
        return out
    return {annotation}


def test_every_number_in_every_config_model_has_an_upper_bound() -> None:
    seen: set[type[BaseModel]] = set()
    missing = _numbers_without_upper_bound(Config, seen, "config")
    for type_name in registry.REGISTRY:
        missing += _numbers_without_upper_bound(registry.config_model(type_name), seen, f"check {type_name}")
    assert missing == []
    assert len(seen) > 15  # the walk really reached the nested models


def test_the_no_aws_guard_sees_a_call(no_aws: list[str]) -> None:
    """The control: the guard above would have caught a client and a call."""
    import boto3

    with pytest.raises(AssertionError):
        boto3.session.Session().client("sts", region_name="us-east-1").get_caller_identity()
    assert no_aws == ["client sts", "call GetCallerIdentity"]
