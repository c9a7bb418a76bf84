"""The whole file (``Config``): region, state table, notify, host aliases and how targets are
dispatched (inline or one queue message per target), with the targets themselves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import Strict, named
from monitor.config.hosts import HostAlias, HostPattern
from monitor.config.notify import Notify
from monitor.config.targets import Target

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
        return named(self.targets, name)
