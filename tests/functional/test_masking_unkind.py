"""Review: secrets in command output reaching the state, pages and S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from recover import runbook
from recover.secret_keys import mask_text
from tests.fakes import Script
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    World,
    both_clients,
    moto_world,
    recovery_config,
    timed_harness,
)

SECRET = "hunter2pw"


@pytest.mark.parametrize("line", [
    # JSON with an escaped quote inside the value: the tail after \" is kept
    '{"javax.jdo.option.ConnectionPassword": "ab\\"' + SECRET + '"}',
    # command-line flag, value after a space (ps / systemctl status CGroup lines)
    "beeline -u jdbc:hive2://localhost:10000 -n hive --password " + SECRET,
    # URL user info (jdbc:mysql://user:password@host, s3a://key:secret@bucket)
    "Connecting to jdbc:mysql://hive:" + SECRET + "@db.internal:3306/hive",
    # HTTP basic/bearer credentials logged by HS2 in http transport mode
    "Authorization: Bearer " + SECRET,
])
def test_mask_text_hides_the_secret(line: str) -> None:
    assert SECRET not in mask_text(line)


@pytest.fixture
def world(fake_checks: Script) -> Iterator[World]:
    with moto_world() as w:
        yield w


class FailingRestart:
    """Every SSM command (the restart) ends Failed with ``stderr``."""

    def __init__(self, world: World, stderr: str) -> None:
        self.stderr = stderr
        self._clients = both_clients(world.clients, "ssm")
        for c in self._clients:
            c.meta.events.register("after-call", self._hook)

    def _hook(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "GetCommandInvocation":
            parsed.update(Status="Failed", StandardErrorContent=self.stderr, ResponseCode=1)

    def close(self) -> None:  # the clients outlive the test: never leave the hook behind
        for c in self._clients:
            c.meta.events.unregister("after-call", self._hook)


def test_restart_stderr_is_masked_before_it_is_kept(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed restart keeps 200 chars of the command's stderr in the incident (and the
    climbing page): it must be masked like the diagnostics output."""
    h = timed_harness(world, recovery_config(world, ladder=RESTART_THEN_REPLACE), monkeypatch)
    failing = FailingRestart(world, f"Error: metastore check failed: javax.jdo.option.ConnectionPassword={SECRET}\n")
    try:
        runbook.start(h.rctx(), h.store.get(TARGET), reason="hive CRITICAL")
        for _ in range(4):
            h.clock.advance(minutes=2)
            runbook.advance(h.rctx(), h.store.get(TARGET))
    finally:
        failing.close()
    stored = json.dumps(h.incident(), default=str)
    assert "ConnectionPassword" in stored or "metastore check failed" in stored, stored[:3000]  # the stderr was kept
    assert SECRET not in stored, stored[max(0, stored.find(SECRET) - 300):stored.find(SECRET) + 50]
