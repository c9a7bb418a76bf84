"""Secret configuration properties (recover/sealed.py): the rule, sealing and unsealing, and
a whole recovery on moto after which no output and no stored item holds the clear value,
while the relaunched cluster got it.

Two secrets are planted in the cluster's hive-site: the metastore password (caught by the
name rule) and an opaque property caught only by ``recovery.spec.secret_properties``.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.base import Status
from monitor import handler
from monitor.cli import main
from monitor.core.state.dynamodb import DynamoStateStore, create_table
from monitor.core.state.memory import MemoryStateStore
from recover import runbook
from recover.calls import AwsCalls
from recover.emr import NotOwned, require_owned
from recover.plan import mask as plan_mask
from recover.sealed import SealError, seal_spec, secret_labels, unseal_spec
from recover.secret_keys import MASK, REF_PREFIX, SEALED_PREFIX, is_secret_key, mask
from recover.spec import capture_last_known_good
from tests.fakes import Script
from tests.functional.aws import LambdaContext
from tests.recover_fixtures import (
    METASTORE_PASSWORD,
    SEED_REQUEST,
    TARGET,
    Harness,
    World,
    cli_services,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    recovery_raw,
    set_steps,
)

OPAQUE_KEY = "rc.metastore.opaque"  # no secret word in its name: only the explicit list catches it
OPAQUE = "opaque-s3kr1t-value-77"
SECRETS = (METASTORE_PASSWORD, OPAQUE)


def planted_request() -> dict[str, Any]:
    request = json.loads(json.dumps(SEED_REQUEST))
    request["Configurations"][0]["Properties"][OPAQUE_KEY] = OPAQUE
    return request


def leaks(text: str) -> list[str]:
    """The secrets found in ``text``, in any of the encodings an output might use."""
    found = []
    for secret in SECRETS:
        forms = {secret, base64.b64encode(secret.encode()).decode(), urllib.parse.quote(secret),
                 secret.encode().hex(), json.dumps(secret)[1:-1]}
        if any(form in text for form in forms):
            found.append(secret)
    return found


def hive_site(request_or_cluster: dict[str, Any]) -> dict[str, str]:
    return next(c["Properties"] for c in request_or_cluster["Configurations"] if c.get("Classification") == "hive-site")


# ------------------------------------------------------------------ the rule


@pytest.mark.parametrize("key", [
    "javax.jdo.option.ConnectionPassword", "ssl.server.keystore.keypassword", "ssl.server.truststore.password",
    "fs.s3a.secret.key", "fs.s3a.access.key", "fs.azure.account.key.acct.blob.core.windows.net",
    "hive.metastore.token.signature", "ldap.bind.pw", "api_token", "KdcAdminPassword", "hadoop.ssl.passphrase",
    "oozie.service.credentials",
])
def test_secret_looking_property_names_are_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "hive.server2.authentication", "ssl.server.keystore.type", "ssl.server.keystore.location",
    "hadoop.security.credential.provider.path", "hadoop.http.authentication.signature.secret.file",
    "dfs.encryption.key.provider.uri", "hive.metastore.keytab.file", "hive.server2.enable.doAs",
    "hive.metastore.kerberos.principal", "mapreduce.job.queuename", "JAVA_HOME", "Ec2KeyName",
    "LogEncryptionKmsKeyId", "NextToken", "Key", "keystore",
])
def test_harmless_property_names_are_not(key: str) -> None:
    assert not is_secret_key(key)


def test_the_explicit_list_adds_names_the_rule_misses() -> None:
    assert not is_secret_key(OPAQUE_KEY)
    assert is_secret_key(OPAQUE_KEY, [OPAQUE_KEY])
    assert secret_labels(planted_request(), [OPAQUE_KEY]) == [
        "hive-site/javax.jdo.option.ConnectionPassword", f"hive-site/{OPAQUE_KEY}"]


def test_masking_reports_uses_the_same_rule_and_keeps_sealed_values() -> None:
    data = {"Configurations": [{"Classification": "hive-site", "Properties": {
        "javax.jdo.option.ConnectionPassword": METASTORE_PASSWORD, "ssl.server.keystore.type": "jks",
        "ssl.server.keystore.password": SEALED_PREFIX + "prod-hive:AAAA"}}],
        "Tags": [{"Key": "api-token", "Value": "t"}, {"Key": "team", "Value": "rc"}],
        "not_copied": [{"field": "KerberosAttributes.KdcAdminPassword", "reason": "a secret"}]}
    shown = mask(data)
    assert shown == plan_mask(data)  # one rule: the plan's mask is this one
    props = shown["Configurations"][0]["Properties"]
    assert props == {"javax.jdo.option.ConnectionPassword": MASK, "ssl.server.keystore.type": "jks",
                     "ssl.server.keystore.password": SEALED_PREFIX + "prod-hive:AAAA"}
    assert shown["Tags"] == [{"Key": "api-token", "Value": MASK}, {"Key": "team", "Value": "rc"}]
    assert shown["not_copied"] == data["not_copied"]


def test_call_records_are_masked_and_run_job_flow_records_what_it_is_told(world: World) -> None:
    aws = AwsCalls(world.clients, dry_run=True)
    aws.call("emr", "run_job_flow", planted_request(), record_params={"Name": "sealed form"})
    aws.call("emr", "add_tags", {"ResourceId": "j-1", "Tags": [{"Key": "db-password", "Value": METASTORE_PASSWORD}]})
    assert aws.records[0].params == {"Name": "sealed form"}
    assert aws.records[1].params["Tags"] == [{"Key": "db-password", "Value": MASK}]
    assert leaks(json.dumps([r.to_dict() for r in aws.records])) == []


# ------------------------------------------------------------------ seal and unseal


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world(request=planted_request()) as w:
        yield w


def kms_key(world: World) -> str:
    return str(world.clients.client("kms").create_key(Description="sentinel specs")["KeyMetadata"]["Arn"])


def test_sealed_with_kms_bound_to_the_target_and_opened_only_for_launch(world: World) -> None:
    key = kms_key(world)
    kms = world.clients.client("kms")
    sealed = seal_spec(kms, planted_request(), target=TARGET, secret_properties=[OPAQUE_KEY], key_id=key)
    props = hive_site(sealed)
    assert props["javax.jdo.option.ConnectionPassword"].startswith(f"{SEALED_PREFIX}{TARGET}:")
    assert props[OPAQUE_KEY].startswith(SEALED_PREFIX) and props["hive.server2.authentication"] == "CUSTOM"
    assert leaks(json.dumps(sealed)) == []
    assert seal_spec(kms, sealed, target=TARGET, key_id=key) == sealed  # sealing twice changes nothing
    clear = unseal_spec(AwsCalls(world.clients), sealed)
    assert clear == planted_request()
    assert unseal_spec(AwsCalls(world.clients, dry_run=True), sealed) == sealed  # a dry run sends nothing
    # the ciphertext is bound to its target (encryption context): moved to another target, it does not open
    stolen = json.loads(json.dumps(sealed).replace(f"{SEALED_PREFIX}{TARGET}:", f"{SEALED_PREFIX}other-hive:"))
    with pytest.raises(SealError, match="KMS Decrypt failed") as err:
        unseal_spec(AwsCalls(world.clients), stolen)
    assert leaks(str(err.value)) == []


def test_without_a_key_the_spec_refers_to_its_source_and_launch_reads_it_again(world: World,
                                                                                tmp_path: Path) -> None:
    sealed = seal_spec(None, planted_request(), target=TARGET, secret_properties=[OPAQUE_KEY],
                       source_cluster_id=world.cluster_id)
    assert hive_site(sealed)["javax.jdo.option.ConnectionPassword"] == REF_PREFIX + world.cluster_id
    aws = AwsCalls(world.clients)
    assert hive_site(unseal_spec(aws, sealed))[OPAQUE_KEY] == OPAQUE
    assert [r.op for r in aws.records] == ["describe_cluster"]  # one recorded read, nothing else
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(planted_request()))
    from_file = seal_spec(None, planted_request(), target=TARGET, source_file=str(spec_file))
    assert hive_site(from_file)["javax.jdo.option.ConnectionPassword"] == f"{REF_PREFIX}file:{spec_file}"
    assert hive_site(unseal_spec(AwsCalls(world.clients), from_file)) == hive_site(planted_request())
    with pytest.raises(SealError, match="recovery.spec.kms_key_id") as err:
        seal_spec(None, planted_request(), target=TARGET)  # nowhere to refer to: refused, not stored in clear
    assert leaks(str(err.value)) == []
    assert hive_site(seal_spec(None, planted_request(), target=TARGET, dry_run=True))[
        "javax.jdo.option.ConnectionPassword"] == MASK
    with pytest.raises(SealError, match="masked"):
        unseal_spec(AwsCalls(world.clients), seal_spec(None, planted_request(), target=TARGET, dry_run=True))
    literal = planted_request()
    hive_site(literal)["javax.jdo.option.ConnectionPassword"] = MASK  # a real value that looks like the mask
    assert hive_site(seal_spec(None, literal, target=TARGET, source_cluster_id="j-1"))[
        "javax.jdo.option.ConnectionPassword"] == REF_PREFIX + "j-1"


def test_a_cluster_without_the_ownership_tag_is_refused_with_the_command_that_fixes_it() -> None:
    require_owned({"Id": "j-1", "Tags": [{"Key": "sentinel:target", "Value": TARGET}]}, TARGET)
    require_owned({"cluster_id": "j-1", "owner": TARGET}, TARGET)  # an incident's old record
    with pytest.raises(NotOwned, match="aws emr add-tags --resource-id j-2 --tags sentinel:target=prod-hive"):
        require_owned({"Id": "j-2", "Tags": [{"Key": "team", "Value": "rc"}]}, TARGET)
    with pytest.raises(NotOwned, match="tagged sentinel:target=other-hive"):
        require_owned({"cluster_id": "j-3", "owner": "other-hive"}, TARGET)


def test_recovery_without_a_key_stores_references_and_launches_with_the_clear_value(
        world: World, fake_checks: Script) -> None:
    h = Harness(world, recovery_config(world, spec={"source": "clone", "secret_properties": [OPAQUE_KEY]}),
                MemoryStateStore(), real_now_clock())
    assert capture_last_known_good(h.rctx())["captured"]
    stored = h.store.get_spec(TARGET) or {}
    assert hive_site(stored["request"])[OPAQUE_KEY] == REF_PREFIX + world.cluster_id
    report = runbook.start(h.rctx(), h.store.get(TARGET), reason="test").report
    assert report["phase"] == "WAIT_READY", report["summary"]
    inc = h.store.get(TARGET).incident or {}
    assert hive_site(inc["spec"])["javax.jdo.option.ConnectionPassword"] == REF_PREFIX + world.cluster_id
    [new] = new_clusters(world)
    launched = world.emr().describe_cluster(ClusterId=new)["Cluster"]
    assert hive_site(launched)["javax.jdo.option.ConnectionPassword"] == METASTORE_PASSWORD
    assert hive_site(launched)[OPAQUE_KEY] == OPAQUE
    assert leaks(json.dumps([inc, stored, report], default=str)) == []


# ------------------------------------------------------------------ a whole recovery, every output grepped


def test_no_output_or_stored_item_holds_a_planted_secret_and_the_new_cluster_gets_it(
        world: World, fake_checks: Script, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)  # the Lambda's default level, for every logger (botocore included)
    for name in ("sentinel", "monitor", "recover", "checks"):  # ours: everything, DEBUG included
        caplog.set_level(logging.DEBUG, logger=name)
    key = kms_key(world)
    ddb = world.clients.client("dynamodb")
    create_table(ddb, "sentinel-state")
    store = DynamoStateStore(ddb, "sentinel-state")
    raw = recovery_raw(world, spec={"source": "clone", "kms_key_id": key, "secret_properties": [OPAQUE_KEY]},
                       when={"checks": ["hive"], "consecutive_failures": 1})
    cfg = tmp_path / "sentinel.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    clock = real_now_clock()
    factory = cli_services(world, store, clock)
    outputs: list[str] = []

    def cli(*argv: str) -> int:
        code = main([argv[0], "-c", str(cfg), *argv[1:]], services_factory=factory)
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])
        return code

    assert cli("tick", "--json") == 0  # healthy: the last known good spec is captured, sealed
    spec_item = store.get_spec(TARGET) or {}
    assert hive_site(spec_item["request"])["javax.jdo.option.ConnectionPassword"].startswith(SEALED_PREFIX)
    assert cli("plan", "--target", TARGET) == 0
    assert cli("plan", "--target", TARGET, "--json") == 0
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    cli("tick", "--dry-run", "--json")  # the dry run's plan, printed
    assert new_clusters(world) == []
    cli("recover", "--target", TARGET, "--force", "--yes", "--json")  # SNAPSHOT, LAUNCH, WAIT_READY
    [new] = new_clusters(world)
    fake_checks.set("hive", Status.OK)
    set_steps(new, "COMPLETED")
    for _ in range(4):
        cli("tick", "--json")
        clock.advance(minutes=5)
        if (store.get(TARGET).incident or {}).get("phase") == "DONE":
            break
    incident = store.get(TARGET).incident or {}
    assert incident.get("phase") == "DONE", incident.get("failed") or incident.get("last_wait")
    assert hive_site(incident["spec"])["javax.jdo.option.ConnectionPassword"].startswith(SEALED_PREFIX)
    assert hive_site(incident["spec"])[OPAQUE_KEY].startswith(SEALED_PREFIX)
    cli("status", "--json")
    cli("status", "--target", TARGET)
    monkeypatch.setenv("SENTINEL_CONFIG", str(cfg))
    monkeypatch.setattr(handler, "_WARM", handler._Warm())
    lambda_status = handler.lambda_handler({"action": "status", "target": TARGET}, LambdaContext("req-status"))
    outputs.append(json.dumps(lambda_status, default=str))

    # the relaunched cluster got the clear values (LAUNCH unsealed them for RunJobFlow only)
    launched = world.emr().describe_cluster(ClusterId=new)["Cluster"]
    assert hive_site(launched)["javax.jdo.option.ConnectionPassword"] == METASTORE_PASSWORD
    assert hive_site(launched)[OPAQUE_KEY] == OPAQUE

    items = ddb.scan(TableName="sentinel-state")["Items"]
    assert {i["sk"]["S"] for i in items} >= {"state", "spec"}
    pages = world.pages()
    where = {
        "cli output": "\n".join(outputs),
        "DynamoDB items": json.dumps(items, default=str),
        "logs": caplog.text,
        "SNS messages": json.dumps(pages, default=str),
        "final stdout": capsys.readouterr().out,
    }
    assert {name: leaks(text) for name, text in where.items()} == {name: [] for name in where}
    # the greps looked at something: the plan's request, the incident, pages, the launch call
    assert "CHANGE emr.run_job_flow" in where["cli output"] and SEALED_PREFIX in where["DynamoDB items"]
    assert pages and "hive-site" in where["cli output"]
