"""The config file (DESIGN §2): YAML → typed, frozen models, validated twice.

First the shape (pydantic, unknown keys rejected), then cross-field rules (names unique, a
``recovery.when.checks`` name must exist, ...). Every problem becomes one line that starts
with its path, e.g. ``targets[0].checks[1].timeout_s: must be > 0``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from checks import registry
from checks.base import CheckConfig
from monitor.errors import ConfigError

NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,62})$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_config(value: Any) -> CheckConfig:
    if isinstance(value, CheckConfig):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("check_shape", "must be a mapping with a 'type'")
    type_name = value.get("type")
    if not isinstance(type_name, str):
        valid = ", ".join(sorted(registry.REGISTRY))
        raise PydanticCustomError("check_type", "type: missing (valid: {valid})", {"valid": valid})
    try:
        model = registry.config_model(type_name)
    except registry.UnknownCheckType as exc:
        raise PydanticCustomError("check_type", "type: {msg}", {"msg": exc.message}) from None
    return model.model_validate(value)


AnyCheck = Annotated[CheckConfig, BeforeValidator(_check_config)]


class ClusterRef(Strict):
    """The cluster a target watches: by id, or the active cluster with this name."""

    name: str | None = None
    id: str | None = Field(default=None, pattern=r"^j-[A-Z0-9]+$")

    @model_validator(mode="after")
    def _one_of(self) -> ClusterRef:
        if (self.name is None) == (self.id is None):
            raise ValueError("give exactly one of 'name' or 'id'")
        return self


class Notify(Strict):
    page_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:")
    info_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:")
    # Pages for a persistent UNKNOWN are sent after this many consecutive UNKNOWN ticks.
    unknown_after: int = Field(default=3, ge=1)


# Error kinds a relaunch can fix (DESIGN §10). ``dns``, ``auth``, ``tls``... cannot be fixed by
# a new cluster: they page instead.
ErrorKindName = Literal["timeout", "refused", "no_backend", "query", "dns", "tls", "auth", "config", "secret",
                        "internal"]
RELAUNCH_KINDS: tuple[ErrorKindName, ...] = ("timeout", "refused", "no_backend", "query")


class When(Strict):
    checks: list[str] = Field(min_length=1, max_length=32)
    consecutive_failures: int = Field(default=2, ge=1, le=100)
    # A CRITICAL result triggers only when its error kind is listed (a result without a kind,
    # e.g. route53_health, always counts).
    kinds: list[ErrorKindName] = Field(default_factory=lambda: list(RELAUNCH_KINDS), min_length=1)


class Route53Routing(Strict):
    zone_id: str
    record: str
    type: Literal["CNAME", "A"] = "CNAME"
    ttl: int = Field(default=60, ge=0)


class Routing(Strict):
    target_group_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:")
    target_port: int | None = Field(default=None, ge=1, le=65535)
    load_balancer_name: str | None = None
    route53: Route53Routing | None = None

    @property
    def load_balancer(self) -> bool:
        """A load balancer sits between clients and the master (its listener, its certificate)."""
        return bool(self.target_group_arn or self.load_balancer_name)

    @property
    def routed(self) -> bool:
        return bool(self.load_balancer or self.route53)


class MasterTls(Strict):
    """TLS for the new master's own HiveServer2 (its certificate, not the load balancer's).
    A key left out keeps the check's own value."""

    verify: bool | None = None
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)
    server_hostname: str | None = Field(default=None, min_length=1, max_length=253)


class VerifyMaster(Strict):
    """Where VERIFY_NEW reaches the new master: its private address (from EMR), with this
    port and TLS; the load balancer's listener port and certificate name do not apply there."""

    port: int | None = Field(default=None, ge=1, le=65535)
    tls: MasterTls | Literal[False] | None = None
    checks: list[str] | None = None  # the checks to run there (default: verify.checks)


class Verify(Strict):
    checks: list[str] = Field(default_factory=list)
    master: VerifyMaster | None = None

    @property
    def master_checks(self) -> list[str]:
        if self.master is not None and self.master.checks is not None:
            return list(self.master.checks)
        return list(self.checks)


class Spec(Strict):
    source: Literal["clone", "file", "last_known_good"] = "clone"
    path: str | None = None
    # Configuration property names that hold secrets beyond the name rule of
    # recover/sealed.py (password, secret, token, credential, key): they are sealed too.
    secret_properties: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100)
    # KMS key (id, ARN or alias) that seals secret properties in stored specs. None: they
    # are stored as references to the cluster they came from, resolved at LAUNCH.
    kms_key_id: str | None = Field(default=None, min_length=1, max_length=2048)

    @model_validator(mode="after")
    def _path_for_file(self) -> Spec:
        if self.source == "file" and not self.path:
            raise ValueError("source 'file' needs 'path'")
        if self.source != "file" and self.path:
            raise ValueError("'path' is only used with source 'file'")
        return self


class Limits(Strict):
    max_recoveries: int = Field(default=1, ge=0)
    window_hours: float = Field(default=6, gt=0)
    launch_timeout_min: float = Field(default=45, gt=0)


class Recovery(Strict):
    enabled: bool = False
    dry_run: bool = False
    when: When | None = None
    veto_if_failing: list[str] = Field(default_factory=list)
    strategy: Literal["replace", "terminate_first"] = "replace"
    spec: Spec = Field(default_factory=Spec)
    routing: Routing = Field(default_factory=Routing)
    verify: Verify = Field(default_factory=Verify)
    retire_old: Literal["terminate", "keep"] = "terminate"
    allow_termination_protected: bool = False
    limits: Limits = Field(default_factory=Limits)
    # An incident that has not changed phase for this long pages (default: the phase's own
    # timeout, or 30 min).
    stall_after_min: float | None = Field(default=None, gt=0, le=1440)



class Silence(Strict):
    until: datetime
    reason: str = Field(min_length=1)
    actions_only: bool = False

    @model_validator(mode="after")
    def _aware(self) -> Silence:
        if self.until.tzinfo is None:
            raise ValueError("until: needs a timezone (e.g. 2026-12-01T06:00:00Z)")
        return self


class Target(Strict):
    name: str = Field(pattern=NAME_RE)
    cluster: ClusterRef
    checks: list[AnyCheck] = Field(min_length=1)
    recovery: Recovery = Field(default_factory=Recovery)
    silences: list[Silence] = Field(default_factory=list)

    def check(self, name: str) -> CheckConfig:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)


class Config(Strict):
    version: Literal[1]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    state_table: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")
    notify: Notify
    metrics_namespace: str = Field(default="Sentinel", min_length=1, max_length=255)
    host_aliases: dict[str, str] = Field(default_factory=dict)
    max_workers: int = Field(default=8, ge=1, le=64)
    targets: list[Target] = Field(min_length=1)

    def target(self, name: str) -> Target:
        for item in self.targets:
            if item.name == name:
                return item
        raise KeyError(name)


# ---------------------------------------------------------------- cross-field rules

def _cross_field_errors(raw: dict[str, Any], config: Config) -> list[str]:
    errors: list[str] = []
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
        if rec.enabled:
            errors.extend(f"{tp}.{gap}" for gap in recovery_gaps(target))
    errors.extend(_shared_resource_errors(config))
    return errors


def recovery_gaps(target: Target) -> list[str]:
    """What a target's config lacks to be recovered safely (DESIGN §10), as ``path: why``.
    Empty means recoverable. Checked by ``validate`` for ``enabled`` targets and by the
    policy before any recovery (automatic or manual, forced or not): a relaunch that cannot be
    verified, or whose traffic nothing would move, is never started."""
    rec = target.recovery
    gaps: list[str] = []
    if rec.when is None:
        gaps.append("recovery.when: required to recover (which checks, how many consecutive failures)")
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
            claims.append(("recovery.routing.route53.record", "record",
                           rec.routing.route53.record.rstrip(".").lower()))
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


# ---------------------------------------------------------------- error formatting

def _loc_to_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location as ``a.b[0].c``, dropping union tags pydantic inserts
    (``checks[1].hiveserver2.port`` → ``checks[1].port``) by walking the raw input."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if part.startswith("function-"):
            continue
        if isinstance(node, dict) and part not in node and part in (node.get("type"), node.get("kind")):
            continue
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out


_MSG_REWRITES = [
    (re.compile(r"^Input should be greater than (\S+)$"), r"must be > \1"),
    (re.compile(r"^Input should be greater than or equal to (\S+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be less than or equal to (\S+)$"), r"must be <= \1"),
    (re.compile(r"^Extra inputs are not permitted$"), "unknown key"),
    (re.compile(r"^Field required$"), "required"),
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"^String should match pattern '(.*)'$"), r"must match \1"),
]


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for pattern, repl in _MSG_REWRITES:
        msg = pattern.sub(repl, msg)
    return msg


def format_validation_error(exc: ValidationError, raw: Any) -> list[str]:
    lines = []
    for err in exc.errors():
        path = _loc_to_path(tuple(err["loc"]), raw)
        msg = _message(dict(err))
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            path = f"{path}.{ctx.get('discriminator', '').strip(chr(39))}"
            msg = f"unknown value {ctx.get('tag')!r} (valid: {ctx.get('expected_tags')})"
        elif err["type"] == "union_tag_not_found":
            ctx = err.get("ctx") or {}
            path = f"{path}.{ctx.get('discriminator', '').strip(chr(39))}"
            msg = "required"
        if msg.startswith("type: ") and not path.endswith(".type"):
            path, msg = f"{path}.type", msg[len("type: "):]
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


# ---------------------------------------------------------------- loading

def parse_config(raw: Any) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping"])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw)) from None
    errors = _cross_field_errors(raw, config)
    if errors:
        raise ConfigError(errors)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    return loads_config(text, source=str(path))


def loads_config(text: str, *, source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError([f"{source}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(raw)
