"""The config file (DESIGN §2): YAML → typed, frozen models, validated twice.

First the shape (pydantic, unknown keys rejected), then cross-field rules (names unique, a
``recovery.when.checks`` name must exist, ...). Every problem becomes one line that starts
with its path, e.g. ``targets[0].checks[1].timeout_s: must be > 0``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from checks import registry
from checks.base import CheckConfig
from monitor.core.errors import ConfigError

NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,62})$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_HOST_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_HOST_PATTERN_RE = re.compile(r"^[A-Za-z0-9*?\[\]!._:-]{1,253}$")


def parse_host_alias(value: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address → (host, port).
    The host is an IP address or a DNS name; the port 1-65535. Raises ValueError saying why
    (checked at load: a bad alias used to fail only when a check connected)."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("use [IPv6] or [IPv6]:port")
        port_text: str | None = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif value.count(":") > 1:
        host, port_text = value, None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("not an IPv6 address (write [IPv6]:port for a port)") from None
    else:
        host, sep, port_text_ = value.partition(":")
        port_text = port_text_ if sep else None
        if not _is_address(host) and not _HOSTNAME_RE.match(host):
            raise ValueError(f"{host[:64]!r} is neither an IP address nor a host name")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text[:16]!r}: must be a number from 1 to 65535")
    return host, int(port_text)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_alias(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > 300:
            raise PydanticCustomError("host_alias", "at most 300 characters")
        try:
            parse_host_alias(value)
        except ValueError as exc:
            raise PydanticCustomError("host_alias", "{why} (expected host, host:port or [IPv6]:port)",
                                      {"why": str(exc)}) from None
    return value


def _host_pattern(value: Any) -> Any:
    if isinstance(value, str) and not _HOST_PATTERN_RE.match(value):
        raise PydanticCustomError("host_pattern", "key: a host name or glob pattern (letters, digits, "
                                  "'-', '.', '_', ':', '*', '?', '[...]'), at most 253 characters")
    return value


# host_aliases: ``{"ip-10-*.ec2.internal": "127.0.0.1:10443"}`` (keys are fnmatch globs).
HostPattern = Annotated[str, AfterValidator(_host_pattern)]
HostAlias = Annotated[str, AfterValidator(_host_alias)]


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

    name: str | None = Field(default=None, min_length=1, max_length=256,  # EMR's own limit
                             description="The active cluster (STARTING..WAITING) with this EMR name; give name or id.")
    id: str | None = Field(default=None, pattern=r"^j-[A-Z0-9]+$", max_length=64,
        description="The cluster's id (j-...); a relaunch changes it, so update it after one. Give name or id.")

    @model_validator(mode="after")
    def _one_of(self) -> ClusterRef:
        if (self.name is None) == (self.id is None):
            raise ValueError("give exactly one of 'name' or 'id'")
        return self


def _iana_zone(name: str) -> str:
    """An IANA zone name Python's zoneinfo knows (``Europe/Berlin``), else a config error.
    ``UTC`` needs no time zone database (a minimal runtime may have none)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name == "UTC":
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PydanticCustomError("timezone", "unknown IANA time zone '{name}' (e.g. Europe/Berlin, UTC; "
                                  "without a system time zone database: pip install tzdata)",
                                  {"name": name}) from exc
    return name


class Flap(Strict):
    """Nagios-style flap detection: a check whose weighted share of state changes over its
    last ``window`` looks (judged once the window is full) is above ``high`` is flapping
    (paged once); below ``low`` it is not any more (an info message)."""

    window: int = Field(default=21, ge=5, le=50,
                        description="Looks per check over which flapping is judged (once the window is full).")
    low: float = Field(default=0.25, ge=0, lt=1,
                       description="Below this weighted share of status changes a flapping check is steady again (info message).")
    high: float = Field(default=0.5, gt=0, le=1, validate_default=True,
                        description="Above this weighted share of status changes a check is flapping (one page); must be > low.")

    @field_validator("high")
    @classmethod
    def _above_low(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if isinstance(low, int | float) and high <= low:
            raise PydanticCustomError("flap_thresholds", "must be > notify.flap.low ({low}): a check starts "
                                      "flapping above high and stops below low", {"low": f"{low:g}"})
        return high


class Notify(Strict):
    page_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:", description="SNS topic for pages (people are woken).")
    info_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:",
                                       description="SNS topic for info messages (phase progress, silences, acks); optional.")
    # Pages for a persistent UNKNOWN are sent after this many consecutive UNKNOWN ticks.
    unknown_after: int = Field(default=3, ge=1, le=1000,
                               description="Page when a check stays UNKNOWN this many consecutive ticks.")
    # Every page says "since when" in this IANA zone (on-call's clock) and in UTC (logs, AWS).
    timezone: Annotated[str, AfterValidator(_iana_zone)] = Field(default="UTC",
        description="IANA time zone of on-call's clock; pages say 'since when' in it and in UTC.")
    # Flap detection per check (DESIGN §11, monitor/flap.py).
    flap: Flap = Field(default_factory=Flap, description="Flap detection per check (Nagios-style weighted state changes).")


# Error kinds a relaunch can fix (DESIGN §10). ``dns``, ``auth``, ``tls``... cannot be fixed by
# a new cluster: they page instead.
ErrorKindName = Literal["timeout", "refused", "no_backend", "query", "dns", "tls", "auth", "config", "secret",
                        "internal"]
RELAUNCH_KINDS: tuple[ErrorKindName, ...] = ("timeout", "refused", "no_backend", "query")


class When(Strict):
    checks: list[str] = Field(min_length=1, max_length=32,
                              description="Trigger checks: a streak of CRITICAL results of one of them confirms a failure.")
    consecutive_failures: int = Field(default=2, ge=1, le=100,
                                      description="CRITICAL looks of the same check in a row that confirm a failure.")
    # A CRITICAL result triggers only when its error kind is listed (a result without a kind,
    # e.g. route53_health, always counts).
    kinds: list[ErrorKindName] = Field(default_factory=lambda: list(RELAUNCH_KINDS), min_length=1,
                                       description="Error kinds a relaunch can fix; a CRITICAL of another kind pages instead.")
    # A first CRITICAL of a trigger check schedules a re-check this much later (an SQS delayed
    # message, DESIGN §10) instead of waiting for the next scheduled tick; SQS delays at most
    # 900 s. 0: no re-check (confirmation waits for the schedule, as before).
    recheck_after_s: int = Field(default=120, ge=0, le=900,
                                 description="dispatch: queue: a first CRITICAL is re-checked this many seconds later (0: off).")
    # Evidence is spaced (DESIGN §11): a CRITICAL look adds to its check's streak only this long
    # after the look that last added to it; a sooner one (a duplicated dispatch, a probe racing
    # a re-check, a quick manual tick) is reported, not counted. 0: every look counts.
    min_gap_s: int = Field(default=60, ge=0, le=900, validate_default=True,
                           description="A CRITICAL look adds to a streak only this long after the last counted look (0: off).")
    # A flapping trigger check (notify.flap) never starts a relaunch; ``restart`` lets it start
    # a recovery limited to the ladder's restart rungs (monitor/policy.py).
    on_flapping: Literal["none", "restart"] = Field(default="none",
        description="none: a flapping trigger check never starts a recovery; restart: it may run a restart rung.")

    @field_validator("min_gap_s")
    @classmethod
    def _recheck_counts(cls, gap: int, info: ValidationInfo) -> int:
        recheck = info.data.get("recheck_after_s")
        if isinstance(recheck, int) and 0 < recheck < gap:
            raise PydanticCustomError("min_gap", "must be <= recheck_after_s ({recheck}) or 0: a re-check sooner "
                                      "than min_gap_s would never count", {"recheck": recheck})
        return gap


class Route53Routing(Strict):
    zone_id: str = Field(min_length=1, max_length=64, description="Hosted zone of the record REPOINT rewrites.")
    record: str = Field(min_length=1, max_length=255,
        description="The master's own record (never the load balancer's name clients dial), rewritten to the new master.")
    type: Literal["CNAME", "A"] = "CNAME"
    ttl: int = Field(default=60, ge=0, le=172800,  # Route 53's own maximum is 2 days
                     description="TTL written; RETIRE_OLD waits out the larger of this and the old record's TTL.")


class Routing(Strict):
    target_group_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:",
        description="Target group REPOINT registers the new master with (and deregisters the old from).")
    target_port: int | None = Field(default=None, ge=1, le=65535,
                                    description="Port registered with the target group (default: the group's port).")
    load_balancer_name: str | None = Field(default=None, min_length=1, max_length=32,  # classic ELB limit
                                           description="Classic ELB REPOINT registers the new master's instance with.")
    route53: Route53Routing | None = Field(default=None, description="A record REPOINT UPSERTs to the new master's private name.")

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

    verify: bool | None = Field(default=None,
        description="Verify the new master's certificate (left out: the check's own value).")
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096,
                                description="CA bundle for the master's certificate.")
    server_hostname: str | None = Field(default=None, min_length=1, max_length=253,
        description="Name to verify the certificate against; a wildcard (*.ec2.internal) matches the host connected to.")


class VerifyMaster(Strict):
    """Where VERIFY_NEW reaches the new master: its private address (from EMR), with this
    port and TLS; the load balancer's listener port and certificate name do not apply there."""

    port: int | None = Field(default=None, ge=1, le=65535,
                             description="The new master's HiveServer2 port (not the load balancer's listener port).")
    tls: MasterTls | Literal[False] | None = Field(default=None,
        description="TLS for the new master; false: plaintext; a key left out keeps the check's own value.")
    checks: list[str] | None = Field(default=None,  # the checks to run there (default: verify.checks)
        description="Checks VERIFY_NEW runs on the new master (default: verify.checks).")


class Verify(Strict):
    checks: list[str] = Field(default_factory=list,
        description="Checks run to verify: VERIFY_PATH through the normal path, VERIFY_NEW on the new master.")
    master: VerifyMaster | None = Field(default=None,
        description="How VERIFY_NEW reaches the new master directly; required with a load balancer.")

    @property
    def master_checks(self) -> list[str]:
        if self.master is not None and self.master.checks is not None:
            return list(self.master.checks)
        return list(self.checks)


class Spec(Strict):
    source: Literal["clone", "file", "last_known_good"] = Field(default="clone",
        description="Where the RunJobFlow request comes from: clone the live cluster, a JSON file, or the last known good spec.")
    path: str | None = Field(default=None, description="The spec file (source: file only).")
    # Configuration property names that hold secrets beyond the name rule of
    # recover/sealed.py (password, secret, token, credential, key): they are sealed too.
    secret_properties: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100,
        description="Configuration property names to seal beyond the built-in name rule (password, secret, token, ...).")
    # KMS key (id, ARN or alias) that seals secret properties in stored specs. None: they
    # are stored as references to the cluster they came from, resolved at LAUNCH.
    kms_key_id: str | None = Field(default=None, min_length=1, max_length=2048,
        description="KMS key that seals secret properties in stored specs; without it they are stored as references.")

    @model_validator(mode="after")
    def _path_for_file(self) -> Spec:
        if self.source == "file" and not self.path:
            raise ValueError("source 'file' needs 'path'")
        if self.source != "file" and self.path:
            raise ValueError("'path' is only used with source 'file'")
        return self


class Limits(Strict):
    # Upper bounds: a budget beyond 20 relaunches is no budget; 30 days of window; 4 hours
    # for a cluster to come up (a normal launch takes 8-20 min). Larger values used to
    # validate and then overflow date arithmetic mid-recovery.
    max_recoveries: int = Field(default=1, ge=0, le=20, description="Recovery budget: relaunches started per window.")
    window_hours: float = Field(default=6, gt=0, le=720, description="The budget's window.")
    launch_timeout_min: float = Field(default=45, gt=0, le=240,
        description="A new cluster must be ready within this, else the incident fails and rolls back.")


DEFAULT_RESTART_COMMAND = "sudo systemctl restart hive-server2"  # EMR 5.30+ / 6.x / 7.x


class ReplaceRung(Strict):
    """Relaunch the cluster (the runbook of ``strategy``). Its budget defaults to
    ``limits.max_recoveries``."""

    rung: Literal["replace"]
    max_per_window: int | None = Field(default=None, ge=0, le=20,
                                       description="This rung's budget per limits.window_hours (default: limits.max_recoveries).")


class RestartRung(Strict):
    """Restart HiveServer2 on the current master (SSM Run Command or an EMR step), then verify
    through the normal path; touches nothing else."""

    rung: Literal["restart_service"]
    via: Literal["ssm", "step"] = Field(default="ssm",
        description="ssm: SSM Run Command on the master instance; step: an EMR step (command-runner.jar).")
    command: str = Field(default=DEFAULT_RESTART_COMMAND, min_length=1, max_length=2000,
                         description="The shell command that restarts HiveServer2.")
    timeout_min: float = Field(default=10, gt=0, le=120,  # the command/step must finish within this
                               description="The command or step must finish within this, else the next rung.")
    warmup_s: float = Field(default=60, ge=0, le=1800,  # wait before verifying (HiveServer2 start-up)
                            description="Wait after the restart before verifying.")
    verify_timeout_min: float = Field(default=5, gt=0, le=60,  # healthy again within this, else next rung
                                      description="Healthy again within this, else the next rung.")
    max_per_window: int = Field(default=2, ge=0, le=20, description="This rung's budget per limits.window_hours.")


Rung = Annotated[ReplaceRung | RestartRung, Field(discriminator="rung")]


def _default_ladder() -> list[ReplaceRung | RestartRung]:
    return [ReplaceRung(rung="replace")]  # existing configs keep their meaning


class Recovery(Strict):
    enabled: bool = Field(default=False,
        description="Start recoveries automatically (manual `sentinel recover` works either way on a recoverable target).")
    dry_run: bool = Field(default=False,
        description="Record every changing AWS call instead of making it; a running incident does not advance.")
    when: When | None = Field(default=None, description="What confirms a failure; required to recover.")
    veto_if_failing: list[str] = Field(default_factory=list, max_length=32,
        description="Checks whose CRITICAL or UNKNOWN blocks a recovery (a relaunch would not help): page instead.")
    strategy: Literal["replace", "terminate_first"] = Field(default="replace",
        description="replace: make the new cluster before breaking the old; terminate_first: the reverse.")
    spec: Spec = Field(default_factory=Spec, description="How the new cluster's RunJobFlow request is built.")
    routing: Routing = Field(default_factory=Routing,
                             description="What points clients at the new cluster (target group, classic ELB, Route 53 record).")
    verify: Verify = Field(default_factory=Verify, description="How a new cluster is verified before and after traffic moves.")
    retire_old: Literal["terminate", "keep"] = Field(default="terminate",
        description="What happens to the old cluster after the cut-over.")
    allow_termination_protected: bool = Field(default=False,
        description="May unprotect a termination-protected old cluster (else the incident escalates).")
    limits: Limits = Field(default_factory=Limits, description="Budget and launch timeout.")
    # An incident that has not changed phase for this long pages (default: the phase's own
    # timeout, or 30 min).
    stall_after_min: float | None = Field(default=None, gt=0, le=1440,
        description="Page when an incident has not changed phase this long (default: the phase's timeout + 10 min).")
    # Remedies tried in order (DESIGN §10); a rung that fails or is over its budget hands the
    # incident to the next one; the last one failing escalates.
    ladder: list[Rung] = Field(default_factory=_default_ladder, min_length=1, max_length=5,
                               description="Remedies tried in order (restart_service rungs, then replace, which must be last).")

    def rung_budget(self, rung: ReplaceRung | RestartRung) -> int:
        if isinstance(rung, ReplaceRung):
            return self.limits.max_recoveries if rung.max_per_window is None else rung.max_per_window
        return rung.max_per_window



class Silence(Strict):
    until: datetime = Field(description="End of the silence, with a time zone (e.g. 2026-12-01T06:00:00Z).")
    reason: str = Field(min_length=1, max_length=1000, description="Why (shown in status and pages).")
    actions_only: bool = Field(default=False, description="Keep paging; only stop automatic actions.")

    @model_validator(mode="after")
    def _aware(self) -> Silence:
        if self.until.tzinfo is None:
            raise ValueError("until: needs a timezone (e.g. 2026-12-01T06:00:00Z)")
        return self


# CloudWatch allows 255-character alarm names; a target listens to a handful of alarms.
MAX_TRIGGER_ALARMS = 20
MAX_ALARM_NAME_LEN = 255


class Triggers(Strict):
    """What else makes sentinel look at a target at once (issue 22): an EventBridge ``CloudWatch
    Alarm State Change`` to ALARM for one of these alarms ticks the target (never an action:
    the checks decide). EMR state events need no config: they are mapped by cluster id."""

    alarms: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ALARM_NAME_LEN)]] = Field(
        default_factory=list, max_length=MAX_TRIGGER_ALARMS,
        description="CloudWatch alarm names whose change to ALARM (an EventBridge event) ticks this target at once.")


class Target(Strict):
    name: str = Field(pattern=NAME_RE,
                      description="The target's name (lower case, digits, '-'); used in commands, tags and metrics.")
    cluster: ClusterRef = Field(description="The EMR cluster this target watches.")
    checks: list[AnyCheck] = Field(min_length=1, max_length=32)
    recovery: Recovery = Field(default_factory=Recovery, description="What sentinel does about a confirmed failure.")
    silences: list[Silence] = Field(default_factory=list, max_length=100,
                                    description="Configured silences (sentinel silence adds more in the state table).")
    triggers: Triggers = Field(default_factory=Triggers,
                               description="Events that tick this target at once (alarm state changes).")

    def check(self, name: str) -> CheckConfig:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)


# One invocation ticks at most this many targets (dispatch: inline); the queue scales further.
MAX_INLINE_TARGETS = 200
MAX_QUEUED_TARGETS = 5000


class Config(Strict):
    version: Literal[1] = Field(description="Config format version.")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region of the cluster and of sentinel's resources.")
    state_table: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$",
                             description="DynamoDB table for leases, state and the audit trail.")
    notify: Notify = Field(description="Where pages and info messages go.")
    metrics_namespace: str = Field(default="Sentinel", min_length=1, max_length=255,
                                   description="CloudWatch namespace of the EMF metrics.")
    host_aliases: dict[HostPattern, HostAlias] = Field(default_factory=dict, max_length=1000,
        description="Host name or IP glob -> address[:port] to connect to instead (TLS still verifies the original name).")
    max_workers: int = Field(default=8, ge=1, le=64, description="Targets ticked in parallel by one invocation.")
    # inline: one invocation ticks every target (CLI, sandbox, small set-ups). queue: the
    # schedule enqueues one message per target on SENTINEL_QUEUE_URL and the function ticks
    # one target per message (monitor/queue.py), so targets scale with Lambda concurrency.
    dispatch: Literal["inline", "queue"] = Field(default="inline",
        description="inline: one invocation ticks every target; queue: one SQS message per target (SENTINEL_QUEUE_URL).")
    # dispatch: queue only: each target is ticked this often. The scheduled dispatcher (every
    # SENTINEL_SCHEDULE_S, 600 by default) enqueues the ticks of its whole interval at once,
    # the later ones delayed (kind "probe"): a failure is *seen* within this many seconds,
    # then confirmed ``recheck_after_s`` later, without a faster (and dearer) schedule for
    # the heartbeat and the alarms. A value >= the schedule's interval: one tick per schedule.
    tick_every_s: int = Field(default=300, ge=60, le=3600,
        description="dispatch: queue: each target is ticked this often (probes); >= the schedule's interval: once per schedule.")
    targets: list[Target] = Field(min_length=1, max_length=MAX_QUEUED_TARGETS,
                                  description="The clusters to watch (at most 200 with dispatch: inline).")

    def target(self, name: str) -> Target:
        for item in self.targets:
            if item.name == name:
                return item
        raise KeyError(name)


# ---------------------------------------------------------------- cross-field rules

def _cross_field_errors(raw: dict[str, Any], config: Config) -> list[str]:
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


# ---------------------------------------------------------------- error formatting

_UNION_SCALAR_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "datetime", "is-instance"}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ERROR_LINES = 50  # a hostile file with 10 000 bad keys gets 50 lines and a count


def _is_union_tag(part: str, node: Any) -> bool:
    """Pydantic names the member of a union it tried (``TlsConfig``, ``literal[False]``,
    ``str``...) in the error location. The user never wrote those; a key they wrote is never
    one (our keys are snake_case)."""
    if isinstance(node, dict) and part in node:
        return False
    return part[:1].isupper() or "[" in part or part in _UNION_SCALAR_TAGS


def _key(part: str) -> str:
    return f".{part}" if _PLAIN_KEY.match(part) else "[" + repr(part if len(part) <= 64 else part[:64] + "...") + "]"


def _walk(loc: tuple[int | str, ...], raw: Any) -> tuple[str, tuple[str, Any, str] | None]:
    """The user's path of ``loc`` (``a.b[0].c``) and, when it passes through a union, (the
    path of the union field, the raw value written there, the member pydantic tried).

    The path drops what pydantic inserts that the user never wrote — check-type tags
    (``checks[1].hiveserver2.port`` → ``checks[1].port``) and union members
    (``tls.TlsConfig.ca_file`` → ``tls.ca_file``) — by walking the raw input; a key that is
    not a plain name is quoted (``host_aliases['*.internal']``)."""
    out = ""
    node = raw
    union: tuple[str, Any, str] | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if part.startswith("function-") or part == "[key]":
            continue
        if isinstance(node, dict) and part not in node and part in (node.get("type"), node.get("kind")):
            continue
        if _is_union_tag(part, node):
            if union is None:
                union = (out, node, part)
            continue
        out += _key(part) if out else (part if _PLAIN_KEY.match(part) else _key(part))
        node = node.get(part) if isinstance(node, dict) else None
    return out, union


_MSG_REWRITES = [
    (re.compile(r"^Input should be greater than (\S+)$"), r"must be > \1"),
    (re.compile(r"^Input should be greater than or equal to (\S+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be less than or equal to (\S+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be less than (\S+)$"), r"must be < \1"),
    (re.compile(r"^Extra inputs are not permitted$"), "unknown key"),
    (re.compile(r"^Field required$"), "required"),
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"^String should match pattern '(.*)'$"), r"must match \1"),
    (re.compile(r"^String should have at most (\d+) characters?$"), r"at most \1 characters"),
    (re.compile(r"^Input should be a valid dictionary(?: or instance of \w+)?$"), "must be a mapping"),
    (re.compile(r"^(?:List|Dictionary) should have at most (\d+) items? after validation, not (\d+)$"),
     r"at most \1 entries (got \2)"),
]


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for pattern, repl in _MSG_REWRITES:
        msg = pattern.sub(repl, msg)
    return msg


_TAG_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
              "none": "null", "datetime": "a date-time"}


def _describe_tag(tag: str) -> str:
    """What a union member accepts, in the YAML user's words."""
    if tag.startswith("literal["):
        inner = tag[len("literal["):-1]
        return inner.replace("False", "false").replace("True", "true").replace("None", "null")
    if tag.startswith("list["):
        return "a list"
    if tag[:1].isupper() or tag.startswith("dict["):
        return "a mapping"
    return _TAG_WORDS.get(tag, tag)


def _yaml_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _union_lines(path: str, value: Any, members: list[tuple[str, str]]) -> list[str]:
    """One union field's errors, as the user would want them: when a mapping was written,
    only the mapping member's errors (not "should be False" from the ``false`` member); for
    anything else, one line saying what the field accepts."""
    models: dict[str, list[str]] = {}
    for tag, line in members:
        if tag[:1].isupper():
            models.setdefault(tag, []).append(line)
    if isinstance(value, dict) and models:
        return min(models.values(), key=len)
    accepted: list[str] = []
    for tag, _ in members:
        word = _describe_tag(tag)
        if word not in accepted:
            accepted.append(word)
    return [f"{path}: must be {' or '.join(accepted)}, not {_yaml_word(value)}"]


def format_validation_error(exc: ValidationError, raw: Any) -> list[str]:
    lines: list[str] = []
    unions: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
    for err in exc.errors():
        path, union = _walk(tuple(err["loc"]), raw)
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
        line = f"{path}: {msg}" if path else msg
        if union is not None:
            upath, value, tag = union
            if upath not in unions:
                unions[upath] = (value, [])
                lines.append(f"\0{upath}")  # placeholder: the union's lines go here, once
            unions[upath][1].append((tag, line))
            continue
        lines.append(line)
    out: list[str] = []
    for line in lines:
        if line.startswith("\0"):
            value, members = unions[line[1:]]
            out.extend(_union_lines(line[1:], value, members))
        else:
            out.append(line)
    if len(out) > MAX_ERROR_LINES:
        out = [*out[:MAX_ERROR_LINES], f"... and {len(out) - MAX_ERROR_LINES} more error(s)"]
    return out


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
