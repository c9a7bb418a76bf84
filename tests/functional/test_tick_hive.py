"""A full tick through the Lambda handler: credstash secret in moto, state in moto DynamoDB,
the HiveServer2 check against the stub server on 127.0.0.1, pages read back through SQS,
EMF metrics on stdout. And the password never appears in any output of the run."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import credstash
import pytest
import yaml
from moto import mock_aws

from monitor import handler
from monitor.core.state.dynamodb import DynamoStateStore
from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.functional.aws import Account, LambdaContext, seed_account
from tests.hs2_fixtures import PASSWORD

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hs2: HiveServer2Stub,
          certs: CertSet) -> Iterator[tuple[Account, io.StringIO]]:
    with mock_aws():
        acct = seed_account()
        kms = acct.clients.client("kms")
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/credstash", TargetKeyId=key)
        credstash.createDdbTable(region="us-east-1", table="credential-store")
        credstash.putSecret("hive.rcapp.password", PASSWORD, version="1", region="us-east-1",
                            table="credential-store", context={"env": "prod"},
                            dynamodb=acct.clients.resource("dynamodb"), kms=kms)
        raw = {
            "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
            "notify": {"page_topic_arn": acct.page_topic, "unknown_after": 2},
            "host_aliases": {"hive.internal.example.com": f"127.0.0.1:{hs2.port}"},
            "targets": [{
                "name": "prod-hive", "cluster": {"name": "RC.HIVE.ADHOC"},
                "checks": [{
                    "type": "hiveserver2", "name": "hive-via-elb", "host": "hive.internal.example.com",
                    "port": 443, "tls": {"verify": True, "ca_file": certs.ca_file}, "auth": "CUSTOM",
                    "credentials": {"provider": "credstash", "username": "rcapp", "key": "hive.rcapp.password",
                                    "table": "credential-store", "context": {"env": "prod"}},
                    "timeout_s": 1, "attempts": 2, "retry_delay_s": 0.1,
                }],
                # min_gap_s 0: these scheduled ticks run back to back on the real clock, each meant as
                # its own look (spacing: tests/unit/test_evidence.py).
                "recovery": {"enabled": False, "when": {"checks": ["hive-via-elb"], "consecutive_failures": 2,
                                                        "min_gap_s": 0}},
            }],
        }
        cfg = tmp_path / "sentinel.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("SENTINEL_CONFIG", str(cfg))
        monkeypatch.setattr(handler, "_WARM", handler._Warm())
        logs = io.StringIO()
        monkeypatch.setattr(handler.logger.registered_handler, "stream", logs)
        yield acct, logs


def tick(request_id: str) -> dict[str, Any]:
    return handler.lambda_handler(SCHEDULED, LambdaContext(request_id))


def test_full_tick_healthy_then_hung_then_recovered(world: tuple[Account, io.StringIO], hs2: HiveServer2Stub,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    acct, _ = world
    ok = tick("r1")
    check = ok["targets"][0]["checks"][0]
    assert (ok["exit_code"], check["status"]) == (0, "OK"), check["summary"]
    assert check["observed"]["tls"] == "verified" and check["observed"]["rows"] == 3

    hs2.mode = "hang_after_connect"
    r2, r3 = tick("r2"), tick("r3")
    assert r2["targets"][0]["checks"][0]["error_kind"] == "timeout"
    assert [r2["targets"][0]["decision"]["verdict"], r3["targets"][0]["decision"]["verdict"]] == ["failing", "confirmed"]
    [page] = acct.messages()
    assert "hive-via-elb CRITICAL" in page["Subject"]

    hs2.mode = "ok"
    r4 = tick("r4")
    assert r4["targets"][0]["decision"]["verdict"] == "ok"
    assert [m["MessageAttributes"]["kind"]["Value"] for m in acct.messages()] == ["resolved"]
    state = DynamoStateStore(acct.clients.client("dynamodb"), "sentinel-state").get("prod-hive")
    assert (state.consecutive_failures, state.version) == (0, 4)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m["CheckStatus"] for m in emf if "CheckStatus" in m] == [[0.0], [2.0], [2.0], [0.0]]


def test_password_never_leaves_the_process(world: tuple[Account, io.StringIO], hs2: HiveServer2Stub,
                                           capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Every log line, report and SNS message of a run, healthy and failing, grepped."""
    acct, logs = world
    reports = [tick("a")]
    hs2.password = "rotated-elsewhere"  # the stored password is now wrong: auth failures
    reports += [tick("b"), tick("c")]
    hs2.password = PASSWORD
    hs2.mode = "query_error"
    reports += [tick("d"), tick("e")]
    reports.append(handler.lambda_handler({"action": "status", "target": "prod-hive"}, LambdaContext("f")))
    messages = acct.messages()
    kinds = [m["MessageAttributes"]["kind"]["Value"] for m in messages]
    assert "unknown" in kinds and "confirmed" in kinds  # the failing paths really ran
    out = capsys.readouterr()
    everything = "\n".join([json.dumps(reports), json.dumps(messages), logs.getvalue(), out.out, out.err, caplog.text])
    assert "auth" in everything  # sanity: the texts are there
    assert PASSWORD not in everything


def test_eof_after_tls_on_a_check_that_passed_last_tick_is_critical_no_backend(
        world: tuple[Account, io.StringIO], hs2: HiveServer2Stub, certs: CertSet, tmp_path: Path) -> None:
    """No load balancer in the config, so the check only knows one from history: the tick
    hands it last tick's OK settings (from the state table), and the same EOF that would be
    UNKNOWN ``config`` on a never-healthy check is CRITICAL ``no_backend``."""
    from monitor.sandbox.elb import TlsTerminatingProxy

    registered = [True]
    elb = TlsTerminatingProxy(lambda: ("127.0.0.1", hs2.port) if registered[0] else None,
                              certfile=certs.cert_file, keyfile=certs.key_file).start()
    try:
        cfg = tmp_path / "sentinel.yaml"
        raw = yaml.safe_load(cfg.read_text())
        raw["host_aliases"] = {"hive.internal.example.com": f"127.0.0.1:{elb.port}"}
        cfg.write_text(yaml.safe_dump(raw))
        first = tick("r1")["targets"][0]["checks"][0]
        assert first["status"] == "OK", first["summary"]
        registered[0] = False  # the HiveServer2 behind it is gone
        second = tick("r2")["targets"][0]["checks"][0]
    finally:
        elb.stop()
    assert (second["status"], second["error_kind"]) == ("CRITICAL", "no_backend"), second["summary"]
    assert second["observed"]["load_balancer"] is False and second["observed"]["phase"] == "auth"
