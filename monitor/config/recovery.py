"""``targets[].recovery``: what confirms a failure (``when``), the ladder of remedies, how the
new cluster is built (``spec``), routed (``routing``) and verified (``verify``), and its budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from checks.base import EndpointOverride
from monitor.config.base import Strict

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

    def master_endpoint(self, host: str) -> EndpointOverride:
        """A master (a new one in VERIFY_NEW, each primary of a three-primary cluster) reached
        directly: ``host`` (its private name, from EMR), with this port and TLS (the check's own
        values where ``master`` leaves a key out)."""
        vm = self.master
        tls: dict[str, object] | Literal[False] | None = None
        if vm is not None and vm.tls is False:
            tls = False
        elif vm is not None and isinstance(vm.tls, MasterTls):
            tls = vm.tls.model_dump(exclude_none=True)
        return EndpointOverride(host=host, port=vm.port if vm is not None else None, tls=tls)


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


class Recurring(Strict):
    """One rung fixing the same target again and again hides a cause: tell a person."""

    count: int = Field(default=3, ge=2, le=50, description="Fixes by one rung within `days` that count as recurring.")
    days: float = Field(default=7, gt=0, le=30, description="The window the fixes are counted in.")
    then: Literal["page", "pause"] = Field(default="page",
        description="page: page 'recurring'; pause: also skip that rung until `sentinel ack`.")


class Limits(Strict):
    # Upper bounds: a budget beyond 20 relaunches is no budget; 30 days of window; 4 hours
    # for a cluster to come up (a normal launch takes 8-20 min). Larger values used to
    # validate and then overflow date arithmetic mid-recovery.
    max_recoveries: int = Field(default=1, ge=0, le=20, description="Recovery budget: relaunches started per window.")
    window_hours: float = Field(default=6, gt=0, le=720, description="The budget's window.")
    launch_timeout_min: float = Field(default=45, gt=0, le=240,
        description="A new cluster must be ready within this, else the incident fails and rolls back.")
    recurring: Recurring | None = Field(default=None,
        description="Page (or pause the rung) when one rung keeps fixing this target: a cause nobody has found.")


# Stop, then start (AWS knowledge center, EMR 5.30+: not `restart`, which can leave the unit
# stopped when the old process does not exit in time), then wait up to 60 s for the unit to be
# active: a non-zero exit makes the command Failed, so the rung sees a restart that did not take.
DEFAULT_RESTART_COMMAND = (
    "sudo systemctl stop hive-server2; sudo systemctl start hive-server2; "
    "for i in $(seq 1 12); do systemctl is-active --quiet hive-server2 && exit 0; sleep 5; done; "
    "systemctl is-active hive-server2; exit 1"
)

# What DIAGNOSE collects by default (each part bounded, the small ones first: SSM keeps only
# the first 24,000 characters of a command's output): the unit's status, open files and
# connections to the metastore (9083) of the HiveServer2 JVM, the log's last 200 lines, and a
# thread dump (jstack as the hive user; else SIGQUIT, which writes it to the JVM's stdout log).
DEFAULT_DIAGNOSTICS_COMMAND = "\n".join([
    "PID=$(systemctl show -p MainPID --value hive-server2 2>/dev/null)",
    "echo '== systemctl status hive-server2'; systemctl status hive-server2 --no-pager 2>&1 | head -n 15",
    "echo \"== open files of pid $PID\"; sudo ls /proc/$PID/fd 2>/dev/null | wc -l",
    "echo '== connections to the metastore (9083)'; ss -tn state established '( dport = :9083 )' 2>/dev/null"
    " | tail -n +2 | wc -l",
    "echo '== hive-server2.log (last 200 lines)'; sudo tail -n 200 /var/log/hive/hive-server2.log 2>&1",
    "echo '== thread dump'; sudo -u hive jstack \"$PID\" 2>&1 || { sudo kill -3 \"$PID\""
    " && echo 'jstack failed: SIGQUIT sent (dump in the JVM stdout log)'; }",
    "exit 0",
])


class Diagnostics(Strict):
    """Run a read-only command on the current master before the first rung acts (DIAGNOSE):
    what the failure looked like is gone once the service was restarted or the cluster replaced."""

    via: Literal["ssm"] = Field(default="ssm", description="ssm: SSM Run Command on the master instance.")
    command: str = Field(default=DEFAULT_DIAGNOSTICS_COMMAND, min_length=1, max_length=4000,
                         description="Shell command whose output is kept (masked) on the incident.")
    timeout_s: int = Field(default=60, ge=1, le=600,
                           description="The first rung acts at most this long after the start (the command is cancelled).")
    s3_uri: str | None = Field(default=None, pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$",
                               description="s3://bucket/prefix: the whole (masked) output is written there.")

    @property
    def bucket(self) -> str | None:
        return None if self.s3_uri is None else self.s3_uri[5:].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = "" if self.s3_uri is None else self.s3_uri[5:].partition("/")[2]
        return rest.strip("/")


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

_HHMM = r"([01][0-9]|2[0-3]):[0-5][0-9]"
RungName = Literal["replace", "restart_service"]


class Approval(Strict):
    """A person's yes before the listed rungs act (issue 21; DESIGN §11). The incident waits in
    phase APPROVAL; nobody answering is decided by ``on_timeout``; inside ``auto_hours`` (in
    ``notify.timezone``) nobody is asked."""

    rungs: list[RungName] = Field(default_factory=lambda: list[RungName](["replace"]), min_length=1,
                                                                max_length=2,
        description="The rungs that need a person's yes before they act.")
    timeout_min: float = Field(default=30, gt=0, le=1440,
        description="How long to wait for an answer before on_timeout applies.")
    on_timeout: Literal["escalate", "proceed"] = Field(default="escalate",
        description="Nobody answered in time: escalate (page, change nothing) or proceed as if approved.")
    auto_hours: str | None = Field(default=None, pattern=rf"^{_HHMM}-{_HHMM}$",
        description="'HH:MM-HH:MM' in notify.timezone (may wrap midnight): inside it no approval is asked.")

    @field_validator("auto_hours")
    @classmethod
    def _not_empty_window(cls, value: str | None) -> str | None:
        if value is not None and value[:5] == value[6:]:
            raise PydanticCustomError("auto_hours", "auto_hours: start and end are equal ({value}): the window "
                                      "would be empty or the whole day; leave it out or use 00:00-23:59",
                                      {"value": value})
        return value

    def needs(self, rung: str) -> bool:
        return rung in self.rungs


def _default_ladder() -> list[ReplaceRung | RestartRung]:
    return [ReplaceRung(rung="replace")]  # existing configs keep their meaning


class Ha(Strict):
    """Clusters with three primary nodes (EMR replaces a failed primary by itself): how long a
    primary EMR is replacing is waited for before a relaunch may start."""

    replace_wait_min: float = Field(default=20, gt=0, le=120,
        description="Wait this long for EMR to replace a lost primary before a relaunch may start "
                    "(a relaunch needs fewer than two serving primaries after it, or an ended cluster).")


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
    approval: Approval | None = Field(default=None,
        description="A person's yes before the listed rungs act (phase APPROVAL); absent: no approval is asked.")
    # Remedies tried in order (DESIGN §10); a rung that fails or is over its budget hands the
    # incident to the next one; the last one failing escalates.
    ladder: list[Rung] = Field(default_factory=_default_ladder, min_length=1, max_length=5,
                               description="Remedies tried in order (restart_service rungs, then replace, which must be last).")
    diagnostics: Diagnostics | None = Field(default=None,
        description="A read-only command run on the current master before the first rung acts (DIAGNOSE).")
    ha: Ha = Field(default_factory=Ha,
                   description="Three-primary clusters: how long EMR's own replacement of a primary is waited for.")

    def rung_budget(self, rung: ReplaceRung | RestartRung) -> int:
        if isinstance(rung, ReplaceRung):
            return self.limits.max_recoveries if rung.max_per_window is None else rung.max_per_window
        return rung.max_per_window
