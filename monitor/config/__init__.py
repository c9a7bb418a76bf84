"""The config file (DESIGN §2): YAML → typed, frozen models, validated twice.

First the shape (pydantic, unknown keys rejected), then cross-field rules (names unique, a
``recovery.when.checks`` name must exist, ...). Every problem becomes one line that starts
with its path, e.g. ``targets[0].checks[1].timeout_s: must be > 0``.

One room per section of the file; ``from monitor.config import X`` keeps working for each name:

- ``base``: ``Strict`` (frozen, unknown keys rejected) and the name rule;
- ``targets``: ``Target``, ``ClusterRef``, ``Silence`` and the checks glue (each check validated
  by its plugin's model);
- ``recovery``: ``Recovery``, ``When``, the ladder's rungs, ``Spec``, ``Routing``, ``Verify``,
  ``Limits``;
- ``notify``: ``Notify``, ``Flap``;
- ``dispatch``: ``Config`` (the whole file, its dispatch and bounds) and ``hosts`` (host aliases);
- ``rules``: the cross-field rules, ``topology_errors`` and ``recovery_gaps``;
- ``messages``: pydantic's errors in the user's words; ``load``: YAML → ``Config``.
"""

from __future__ import annotations

from monitor.config.base import NAME_RE, Strict
from monitor.config.dispatch import MAX_INLINE_TARGETS, MAX_QUEUED_TARGETS, Config
from monitor.config.hosts import HostAlias, HostPattern, parse_host_alias
from monitor.config.load import load_config, loads_config, parse_config
from monitor.config.messages import MAX_ERROR_LINES, format_validation_error
from monitor.config.notify import Flap, Notify
from monitor.config.recovery import (
    DEFAULT_DIAGNOSTICS_COMMAND,
    DEFAULT_RESTART_COMMAND,
    RELAUNCH_KINDS,
    Approval,
    Diagnostics,
    ErrorKindName,
    Ha,
    Limits,
    MasterTls,
    Recovery,
    Recurring,
    ReplaceRung,
    RestartRung,
    Route53Routing,
    Routing,
    Rung,
    Spec,
    Verify,
    VerifyMaster,
    When,
)
from monitor.config.rules import cross_field_errors, dns_name, recovery_gaps, topology_errors
from monitor.config.targets import AnyCheck, ClusterRef, Silence, Target, Triggers
from monitor.core.errors import ConfigError

__all__ = [
    "DEFAULT_DIAGNOSTICS_COMMAND",
    "DEFAULT_RESTART_COMMAND",
    "MAX_ERROR_LINES",
    "MAX_INLINE_TARGETS",
    "MAX_QUEUED_TARGETS",
    "NAME_RE",
    "RELAUNCH_KINDS",
    "AnyCheck",
    "Approval",
    "ClusterRef",
    "Config",
    "ConfigError",
    "Diagnostics",
    "ErrorKindName",
    "Flap",
    "Ha",
    "HostAlias",
    "HostPattern",
    "Limits",
    "MasterTls",
    "Notify",
    "Recovery",
    "Recurring",
    "ReplaceRung",
    "RestartRung",
    "Route53Routing",
    "Routing",
    "Rung",
    "Silence",
    "Spec",
    "Strict",
    "Target",
    "Triggers",
    "Verify",
    "VerifyMaster",
    "When",
    "cross_field_errors",
    "dns_name",
    "format_validation_error",
    "load_config",
    "loads_config",
    "parse_config",
    "parse_host_alias",
    "recovery_gaps",
    "topology_errors",
]
