"""Test doubles: a scriptable check type, a fake clock, fake clients, services builders."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

import pytest

from checks import registry
from checks.base import Check, CheckConfig, CheckContext, CheckResult, Status
from monitor.config import Config, parse_config
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.base import StateStore
from monitor.core.state.memory import MemoryStateStore
from monitor.runtime import Services


class FakeConfig(CheckConfig):
    type: Literal["fake"]


class Script:
    """What each fake check returns next: ``set(name, Status.CRITICAL)``; ``hang(name)``."""

    def __init__(self) -> None:
        self.statuses: dict[str, Status] = {}
        self.kinds: dict[str, str | None] = {}
        self.hangs: set[str] = set()
        self.calls: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def set(self, name: str, status: Status, kind: str | None = None) -> None:
        self.statuses[name] = status
        self.kinds[name] = kind


SCRIPT = Script()


class FakeCheck(Check):
    type: ClassVar[str] = "fake"
    config_model: ClassVar[type[CheckConfig]] = FakeConfig
    permissions: ClassVar[tuple[str, ...]] = ()

    def run(self, ctx: CheckContext) -> CheckResult:
        with SCRIPT.lock:
            SCRIPT.calls.append((self.name, ctx.host_override))
        if self.name in SCRIPT.hangs:
            time.sleep(ctx.deadline.remaining() + 2)
        status = SCRIPT.statuses.get(self.name, Status.OK)
        return self.result(status, f"{self.name} is {status.name}", latency_ms=12.5,
                           error_kind=SCRIPT.kinds.get(self.name))


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    monkeypatch.setitem(registry.REGISTRY, "fake", "tests.fakes:FakeCheck")
    registry.check_class.cache_clear()
    SCRIPT.__init__()  # type: ignore[misc]  # one script per test
    yield SCRIPT
    registry.check_class.cache_clear()


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


class NoClients:
    def client(self, service: str, region: str | None = None) -> Any:
        raise AssertionError(f"unexpected AWS client {service}")

    def resource(self, service: str, region: str | None = None) -> Any:
        raise AssertionError(f"unexpected AWS resource {service}")


class RecordingSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kw: Any) -> dict[str, str]:
        self.published.append(kw)
        return {"MessageId": str(len(self.published))}


class FakeClients(NoClients):
    def __init__(self) -> None:
        self.sns = RecordingSns()

    def client(self, service: str, region: str | None = None) -> Any:
        if service == "sns":
            return self.sns
        return super().client(service, region)


def fake_config(*, checks: list[dict[str, Any]] | None = None, recovery: dict[str, Any] | None = None,
                targets: int = 1, **top: Any) -> Config:
    raw: dict[str, Any] = {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages"},
        "targets": [],
    }
    raw.update(top)
    for i in range(targets):
        raw["targets"].append({
            "name": f"t{i}" if targets > 1 else "prod-hive",
            "cluster": {"name": "RC.HIVE"},
            "checks": checks or [{"type": "fake", "name": "hive"}, {"type": "fake", "name": "dns"}],
            "recovery": recovery or {"enabled": False, "when": {"checks": ["hive"], "consecutive_failures": 2}},
        })
    return parse_config(raw)


def services(config: Config, *, store: StateStore | None = None, clients: Any = None,
             clock: Any = None) -> Services:
    clients = clients or FakeClients()
    return Services(config=config, clients=clients, store=store or MemoryStateStore(),
                    secrets=SecretResolver(clients), resolver=HostResolver(config.host_aliases),
                    clock=clock or FakeClock())
