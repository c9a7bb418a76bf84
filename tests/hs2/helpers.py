"""Build a hiveserver2 check (for monitor.sandbox.hs2_server, see tests/hs2_fixtures.py) and the
context it runs in, the way the tick does.

The password reaches the check through the real ``monitor.core.secrets.SecretResolver`` with the
``env`` provider (tests set the variable with monkeypatch), so the cache, the refetch after a
rejected login and the SecretStr handling are the production code paths.
"""

from __future__ import annotations

import time
from typing import Any

from checks.base import CheckContext, CheckResult, Deadline
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config
from monitor.config import ClusterRef
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import SecretResolver
from monitor.core.state.memory import MemoryStateStore
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.fakes import NoClients
from tests.hs2_fixtures import USERNAME

PASSWORD_ENV = "SENTINEL_TEST_HS2_PASSWORD"  # noqa: S105 - the variable's name, not a password


def check_block(server: HiveServer2Stub | None = None, ca_file: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The YAML block an operator would write for ``server`` (TLS verified against ``ca_file``, CUSTOM auth)."""
    block: dict[str, Any] = {
        "type": "hiveserver2", "name": "hive",
        "host": "127.0.0.1", "port": server.port if server else 10000,
        "query": "SHOW DATABASES",
        "tls": {"verify": True, "ca_file": ca_file},
        "auth": "CUSTOM",
        "credentials": {"provider": "env", "username": USERNAME, "key": PASSWORD_ENV},
        "timeout_s": 5, "attempts": 1, "retry_delay_s": 0.05,
    }
    block.update(overrides)
    return block


def make_check(server: HiveServer2Stub | None = None, ca_file: str | None = None, **overrides: Any) -> HiveServer2Check:
    return HiveServer2Check(HiveServer2Config.model_validate(check_block(server, ca_file, **overrides)))


def make_ctx(*, deadline_s: float = 30.0, aliases: dict[str, str] | None = None, secrets: SecretResolver | None = None,
             host_override: str | None = None) -> CheckContext:
    clients = NoClients()  # any AWS call fails the test: the env provider needs none
    return CheckContext(
        target="prod-hive", cluster=ClusterRef(name="RC.HIVE"), clients=clients,
        secrets=secrets or SecretResolver(clients), resolver=HostResolver(aliases or {}, loopback_only=True),
        store=MemoryStateStore(), clock=SystemClock(), deadline=Deadline.after(deadline_s),
        host_override=host_override,
    )


def run_check(check: HiveServer2Check, ctx: CheckContext | None = None) -> tuple[CheckResult, float]:
    """Run the check; returns the result and the wall time in seconds (time.monotonic)."""
    ctx = ctx or make_ctx()
    started = time.monotonic()
    result = check.run(ctx)
    return result, time.monotonic() - started
