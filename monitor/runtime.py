"""What a tick runs with. ``Services`` may be cached per warm container (config, clients,
secret cache, store); ``Invocation`` is made fresh for every call (notifications sent,
metric points, the lease owner id), so nothing of one invocation leaks into the next."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checks.base import ClientSource
from monitor.config import Config
from monitor.core.clock import Clock, SystemClock
from monitor.core.outages import OutageNotes
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.base import StateStore
from monitor.metrics import MetricsRecorder
from monitor.notify import Message, Notifier, PageFacts, facts_from_state


@dataclass
class Services:
    config: Config
    clients: Any  # ClientFactory-like: .client(service, region=None)
    store: StateStore
    secrets: SecretResolver
    resolver: HostResolver
    clock: Clock = field(default_factory=SystemClock)
    # The work queue (monitor.queue.WorkQueue-like) when injected (tests, benches); else
    # monitor.queue builds one from SENTINEL_QUEUE_URL, or there is none.
    queue: Any = None


def build_services(
    config: Config,
    *,
    clients: Any = None,
    store: StateStore | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    clock: Clock | None = None,
) -> Services:
    if clients is None:
        from monitor.core.aws import ClientFactory

        clients = ClientFactory(config.region, profile=profile, endpoint_url=endpoint_url)
    if store is None:
        from monitor.core.state.dynamodb import DynamoStateStore

        store = DynamoStateStore(clients.client("dynamodb"), config.state_table)
    return Services(
        config=config,
        clients=clients,
        store=store,
        secrets=SecretResolver(clients),
        resolver=HostResolver(config.host_aliases),
        clock=clock or SystemClock(),
    )


@dataclass
class Invocation:
    services: Services
    notifier: Notifier
    metrics: MetricsRecorder
    owner: str
    dry_run: bool = False
    requested_by: str | None = None
    # Set when this invocation serves a queued message: when it became due. A target ticked
    # since then was served already, so a second delivery changes nothing (monitor.queue).
    due_at: datetime | None = None
    # The queued message's ``kind`` (monitor.queue.KINDS); a probe can be skipped as not needed.
    queued_kind: str | None = None
    # Evidence an AWS event brought for a target (monitor.triggers): the tick hands it to its
    # checks as ``facts["event"]``; emr_state holds it against its own reads.
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Outages of sentinel's own dependencies seen by this invocation: paged once at its end
    # (monitor.core.outages), not once per target.
    outages: OutageNotes = field(default_factory=OutageNotes)
    # Pages SNS refused that could not be kept in their target's state either (it cannot be
    # written): counted in PagesNotDelivered and listed in the report.
    unkept_pages: list[Message] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.services.config


def new_invocation(
    services: Services,
    *,
    request_id: str | None = None,
    dry_run: bool = False,
    emit_metrics: bool = False,
    requested_by: str | None = None,
) -> Invocation:
    cfg = services.config
    cache = services.secrets.cache

    def redact(text: str) -> str:
        for secret in cache.known_values():
            if secret:
                text = text.replace(secret, "****")
        return text

    def facts(target: str) -> PageFacts:
        return facts_from_state(services.store.get(target))

    notifier = Notifier(
        _sns(services.clients), cfg.notify.page_topic_arn, cfg.notify.info_topic_arn,
        redact=redact, dry_run=dry_run, timezone=cfg.notify.timezone, facts=facts,
        now=getattr(getattr(services, "clock", None), "now", None),  # a stub without a clock: system time
    )
    return Invocation(
        services=services,
        notifier=notifier,
        metrics=MetricsRecorder(cfg.metrics_namespace, emit=emit_metrics),
        owner=request_id or f"cli-{uuid.uuid4().hex[:12]}",
        dry_run=dry_run,
        requested_by=requested_by,
    )


class _LazyClient:
    """Defers creating the SNS client until something is actually published."""

    def __init__(self, clients: ClientSource, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.client(self._service), name)


def _sns(clients: ClientSource) -> Any:
    return _LazyClient(clients, "sns")
