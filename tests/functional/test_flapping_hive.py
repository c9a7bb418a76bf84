"""Issue 19 item 8 end to end with the real HiveServer2 check against the stub server on
127.0.0.1 (TLS + SASL PLAIN): a HiveServer2 that fails every other look never makes two
consecutive failures, so before flap detection it was never paged and `status` showed OK
half the time. Now it is paged once as flapping, never relaunched, shown in `status`, and
cleared with an info message when it is steady again."""

from __future__ import annotations

from typing import Any

import pytest

from checks.base import Deadline, Status
from monitor import actions
from monitor.config import parse_config
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.runtime import new_invocation
from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.fakes import FakeClock, services
from tests.hs2_fixtures import PASSWORD

TARGET = "prod-hive"


def config(hs2: HiveServer2Stub, certs: CertSet) -> Any:
    return parse_config({
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages"},
        "host_aliases": {"hive.internal.example.com": f"127.0.0.1:{hs2.port}"},
        "targets": [{
            "name": TARGET, "cluster": {"name": "RC.HIVE.ADHOC"},
            "checks": [{
                "type": "hiveserver2", "name": "hive-via-elb", "host": "hive.internal.example.com", "port": 443,
                "tls": {"verify": True, "ca_file": certs.ca_file}, "auth": "CUSTOM",
                "credentials": {"provider": "env", "username": "rcapp", "key": "SENTINEL_TEST_HIVE_PASSWORD"},
                "timeout_s": 2, "attempts": 1,
            }],
            "recovery": {
                "enabled": True, "when": {"checks": ["hive-via-elb"], "consecutive_failures": 2},
                "routing": {"route53": {"zone_id": "Z1", "record": "hive-master.internal.example.com"}},
                "verify": {"checks": ["hive-via-elb"]},
            },
        }],
    })


def test_a_hiveserver2_failing_every_other_look_is_paged_once_as_flapping_and_never_relaunched(
        hs2: HiveServer2Stub, certs: CertSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_TEST_HIVE_PASSWORD", PASSWORD)
    clock = FakeClock()
    svc = services(config(hs2, certs), store=MemoryStateStore(), clock=clock)

    def look(mode: str) -> tuple[Any, list[Any]]:
        hs2.mode = mode
        inv = new_invocation(svc)
        report = run_tick(inv, deadline=Deadline.after(30))
        clock.advance(minutes=5)  # probes' pace: every look is spaced beyond min_gap_s
        return report.targets[0], list(inv.notifier.sent)

    sent: list[Any] = []
    statuses: list[Status] = []
    for i in range(24):
        t, msgs = look("query_error" if i % 2 == 0 else "ok")
        sent += msgs
        statuses.append(t.checks[0].status)
        assert t.recovery is None and t.decision and t.decision["recover"] is False, i
        assert t.decision["consecutive_failures"] <= 1
    assert statuses[:4] == [Status.CRITICAL, Status.OK, Status.CRITICAL, Status.OK]
    assert [m.kind for m in sent] == ["flapping"]
    assert "hive-via-elb flapping" in sent[0].subject and sent[0].severity == "page"
    status = actions.status(new_invocation(svc), [TARGET]).data
    assert status and list(status["targets"][TARGET]["flapping"]) == ["hive-via-elb"]
    assert svc.store.get(TARGET).recoveries == []

    cleared: list[Any] = []
    for _ in range(21):
        _, msgs = look("ok")
        cleared += msgs
    assert [(m.kind, m.severity) for m in cleared] == [("flapping-cleared", "info")]
    status = actions.status(new_invocation(svc), [TARGET]).data
    assert status and status["targets"][TARGET]["flapping"] == {}
