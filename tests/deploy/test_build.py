"""The Lambda zip: deterministic, only 3.12 bytecode, imports in a bare Python 3.12 and runs a
real tick there against a moto server (moto itself stays in this 3.11 test process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from deploy import build
from monitor.core.state.dynamodb import create_table
from tests.deploy.conftest import Package

# ------------------------------------------------------------------ fast: the zip step


def _tree(root: Path) -> Path:
    for rel, text in {"b/mod.py": "x = 1\n", "a.py": "y = 2\n", "b/data/z.json": "{}", "c/run.sh": "#!/bin/sh\n"}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "c" / "run.sh").chmod(0o755)
    return root


def test_zip_is_byte_identical_whatever_the_mtimes_and_modes(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    first = build.write_zip(build.collect([tree]), tmp_path / "one.zip")
    for i, p in enumerate(sorted(tree.rglob("*"))):
        if p.is_file():
            os.utime(p, (1_700_000_000 + i * 977, 1_700_000_000 + i * 977))
            p.chmod(0o600)
    second = build.write_zip(build.collect([tree]), tmp_path / "two.zip")
    assert first == second == build.sha256_file(tmp_path / "two.zip")
    with zipfile.ZipFile(tmp_path / "two.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["a.py", "b/data/z.json", "b/mod.py", "c/run.sh"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}
    assert {i.create_system for i in infos} == {3}


def test_two_trees_may_not_shadow_each_other(tmp_path: Path) -> None:
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    with pytest.raises(build.BuildError, match="a.py is in both"):
        build.collect([a, b])


def test_dependency_cache_key_follows_requirements_and_options(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("boto3>=1.34\n")
    base = build.BuildOptions(requirements=req)
    key = build.deps_key(base)
    assert key == build.deps_key(build.BuildOptions(requirements=req))
    assert key != build.deps_key(build.BuildOptions(requirements=req, bundle_boto3=False))
    req.write_text("boto3>=1.35\n")
    assert key != build.deps_key(base)


def test_sources_are_staged_without_the_sandbox_or_host_bytecode(tmp_path: Path, python312: str) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    config = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"
    include = tmp_path / "certs"
    include.mkdir()
    (include / "ca.pem").write_text("PEM")
    opts = build.BuildOptions(python312=python312, config=config, include=(include,))
    build.stage_sources(opts, stage, python312)
    names = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()}
    assert "monitor/handler.py" in names and "checks/registry.py" in names and "recover/permissions.py" in names
    assert "sentinel.yaml" in names and "certs/ca.pem" in names
    assert not any(n.startswith("monitor/sandbox/") for n in names)
    pyc = [n for n in names if n.endswith(".pyc")]
    assert pyc and all(n.endswith(".cpython-312.pyc") for n in pyc)
    assert len(pyc) == len([n for n in names if n.endswith(".py")])


def test_an_invalid_packaged_config_fails_the_build(tmp_path: Path, python312: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nregion: nowhere\n")
    opts = build.BuildOptions(python312=python312, config=bad, compile_pyc=False)
    with pytest.raises(build.BuildError, match="invalid"):
        build.stage_sources(opts, tmp_path, python312)


# ------------------------------------------------------------------ slow: one full build per session


def _magic312(python312: str) -> bytes:
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    out = subprocess.run([python312, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    return bytes.fromhex(out)


@pytest.mark.slow
def test_package_holds_only_python312_bytecode(package: Package) -> None:
    magic = _magic312(package.python312)
    with zipfile.ZipFile(package.zip_path) as zf:
        names = zf.namelist()
        pyc = [n for n in names if n.endswith(".pyc")]
        assert pyc, "the zip should carry .pyc compiled for 3.12"
        assert all(n.endswith(".cpython-312.pyc") for n in pyc)
        for name in pyc[:: max(1, len(pyc) // 50)]:
            header = zf.read(name)[:8]
            assert header[:4] == magic, name
            assert int.from_bytes(header[4:8], "little") == 0b01, f"{name}: not unchecked-hash"
    assert not any(n.startswith(("bin/", "monitor/sandbox/")) for n in names)
    assert {"monitor/handler.py", "checks/registry.py", "recover/runbook.py", "pyhive/hive.py", "puresasl/client.py",
            "boto3/session.py", "aws_lambda_powertools/__init__.py"} <= set(names)
    assert any(n.startswith("cryptography/") and n.endswith(".abi3.so") for n in names)  # manylinux wheel
    assert not any(".cpython-311" in n for n in names)


@pytest.mark.slow
def test_package_fits_the_lambda_limits(package: Package) -> None:
    r = package.result
    assert r.zipped_bytes < build.MAX_ZIPPED and r.unzipped_bytes < build.MAX_UNZIPPED
    assert r.versions["pyhive"] == "0.7.0" and r.versions["pure-sasl"] == "0.6.2"
    manifest = json.loads(package.zip_path.with_suffix(".json").read_text())
    assert manifest["sha256"] == r.sha256 == build.sha256_file(package.zip_path)


@pytest.mark.slow
def test_rebuilding_gives_the_same_zip(package: Package, tmp_path: Path) -> None:
    again = build.build(build.BuildOptions(out=tmp_path / "again.zip", python312=package.python312))
    assert again.deps_cached
    assert again.sha256 == package.result.sha256


@pytest.mark.slow
def test_an_independent_cold_build_gives_the_same_zip(package: Package, tmp_path: Path) -> None:
    """Fresh dependency install, fresh compile in another directory: still the same bytes
    (catches .pyc that depend on the compiling process's history, e.g. ``compileall -j``)."""
    opts = build.BuildOptions(out=tmp_path / "cold.zip", python312=package.python312, cache_dir=tmp_path / "cache")
    try:
        cold = build.build(opts)
    except build.DependencyDownloadError as exc:
        pytest.skip(f"offline: {exc}")
    assert not cold.deps_cached
    assert cold.sha256 == package.result.sha256


def test_only_the_service_models_the_code_uses_are_kept(tmp_path: Path) -> None:
    files = {n: tmp_path / n for n in ("botocore/data/endpoints.json", "botocore/data/sqs/2012-11-05/service-2.json.gz",
                                        "botocore/data/ec2/2016-11-15/service-2.json.gz", "boto3/data/ec2/2015/r.json",
                                        "boto3/data/dynamodb/2012/r.json", "botocore/client.py")}
    kept = build.prune_service_models(files, {"sqs", "dynamodb"})
    assert sorted(kept) == ["boto3/data/dynamodb/2012/r.json", "botocore/client.py", "botocore/data/endpoints.json",
                            "botocore/data/sqs/2012-11-05/service-2.json.gz"]


def test_the_kept_services_follow_the_declared_permissions_and_the_clients_made() -> None:
    from deploy import iam

    needed = build.needed_services()
    assert {"emr", "elbv2", "elb", "route53", "sns", "sqs", "dynamodb", "kms", "ssm", "secretsmanager", "cloudwatch",
            "sts"} <= needed
    prefixes = {a.partition(":")[0] for a in iam.declared_actions()}
    assert all(iam.IAM_PREFIX.get(s, s) in prefixes or s in build.SDK_SERVICES for s in needed)
    assert "ec2" not in needed
    assert "s3" in needed  # recovery.diagnostics writes its masked output with s3:PutObject (recover/facades.py)


@pytest.mark.slow
def test_package_ships_only_the_needed_service_models(package: Package) -> None:
    with zipfile.ZipFile(package.zip_path) as zf:
        models = {n.split("/")[2] for n in zf.namelist() if n.startswith("botocore/data/") and n.count("/") > 2}
    assert models == build.needed_services() and package.result.service_models == sorted(models)
    assert package.result.zipped_bytes <= 25 * 1024 * 1024


@pytest.mark.slow
def test_handler_imports_in_a_bare_python312(package: Package) -> None:
    seconds = build.import_check(package.task_root, package.python312)
    assert seconds < 10
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import monitor.handler, botocore, pydantic_core; "
            "print(monitor.handler.__file__, botocore.__file__, pydantic_core.__file__, sys.version_info[:2])")
    out = subprocess.run([package.python312, "-I", "-c", code, str(package.task_root)], capture_output=True,
                         text=True, check=True).stdout
    assert out.count(str(package.task_root)) == 3, out  # nothing from this venv
    assert "(3, 12)" in out
    lazy = ("import sys; sys.path.insert(0, sys.argv[1]); import monitor.handler; "
            "print(sorted(m for m in ('pyhive', 'thrift', 'credstash', 'recover.runbook') if m in sys.modules))")
    out = subprocess.run([package.python312, "-I", "-c", lazy, str(package.task_root)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"  # drivers load only when a check of that type runs


# ------------------------------------------------------------------ slow: a tick under 3.12 against moto


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_server() -> Iterator[str]:
    pytest.importorskip("flask", reason="ThreadedMotoServer needs moto[server] (flask, flask-cors)")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


ENV = "pkgtest"
STATE_TABLE = f"sentinel-{ENV}-state"
CONFIG: dict[str, Any] = {
    "version": 1, "region": "us-east-1", "state_table": STATE_TABLE,
    "notify": {"page_topic_arn": f"arn:aws:sns:us-east-1:123456789012:sentinel-{ENV}-pages"},
    "metrics_namespace": "Sentinel",
    "targets": [{"name": "pkg-hive", "cluster": {"name": "RC.HIVE.PKG"},
                 "checks": [{"type": "emr_state", "name": "cluster-state"}]}],
}

RUNNER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from monitor.handler import lambda_handler

    class Context:
        function_name = "sentinel-{env}"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentinel-{env}"
        aws_request_id = "req-py312"
        def get_remaining_time_in_millis(self):
            return 60000

    event = {{"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {{}}}}
    dispatched = lambda_handler(event, Context())  # dispatch: queue (the template's default)
    # What the event-source mapping does: receive, hand the message over as an SQS record.
    import boto3, os
    sqs = boto3.client("sqs")
    [msg] = sqs.receive_message(QueueUrl=os.environ["SENTINEL_QUEUE_URL"], MessageAttributeNames=["All"],
                                AttributeNames=["All"])["Messages"]
    record = {{"messageId": msg["MessageId"], "receiptHandle": msg["ReceiptHandle"], "body": msg["Body"],
              "attributes": msg["Attributes"], "eventSource": "aws:sqs", "awsRegion": "us-east-1",
              "messageAttributes": {{k: {{"stringValue": v["StringValue"], "dataType": v["DataType"]}}
                                    for k, v in msg["MessageAttributes"].items()}}}}
    Context.aws_request_id = "req-py312-worker"
    batch = lambda_handler({{"Records": [record]}}, Context())
    report = dict(lambda_handler({{"action": "status", "target": "pkg-hive"}}, Context()))
    import botocore
    with open(sys.argv[2], "w") as f:
        json.dump({{"dispatched": dispatched, "batch": batch, "report": report, "python": list(sys.version_info[:2]),
                   "botocore": botocore.__file__}}, f)
""").format(env=ENV)


def _seed(endpoint: str) -> None:
    def client(service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint)

    create_table(client("dynamodb"), STATE_TABLE)
    client("sns").create_topic(Name=f"sentinel-{ENV}-pages")
    client("sqs").create_queue(QueueName=f"sentinel-{ENV}-ticks")
    client("ssm").put_parameter(Name=f"/sentinel/{ENV}/config", Type="String", Value=yaml.safe_dump(CONFIG))
    client("emr").run_job_flow(
        Name="RC.HIVE.PKG", ReleaseLabel="emr-6.15.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"InstanceGroups": [{"Name": "master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                                       "InstanceCount": 1}], "KeepJobFlowAliveWhenNoSteps": True})


@pytest.mark.slow
def test_packaged_handler_ticks_under_python312_against_moto(
    package: Package, moto_server: str, tmp_path: Path, translated: dict[str, Any],
) -> None:
    _seed(moto_server)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    out = tmp_path / "out.json"
    # What the template sets (Environment=pkgtest, ConfigSource=ssm), plus Lambda's own variables.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",  # noqa: S106
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_server,
        "AWS_LAMBDA_FUNCTION_NAME": f"sentinel-{ENV}", "LAMBDA_TASK_ROOT": str(package.task_root),
        "SENTINEL_CONFIG": f"ssm:/sentinel/{ENV}/config", "POWERTOOLS_SERVICE_NAME": f"sentinel-{ENV}",
        "POWERTOOLS_METRICS_NAMESPACE": "Sentinel", "POWERTOOLS_LOG_LEVEL": "INFO", "SENTINEL_LOOPBACK_ONLY": "1",
        "SENTINEL_DISPATCH": "queue", "SENTINEL_SCHEDULE_S": "600",
        "SENTINEL_QUEUE_URL": f"{moto_server}/123456789012/sentinel-{ENV}-ticks",
        "SENTINEL_DEPLOYMENT": f"sentinel-{ENV}@us-east-1",
    }
    template_env = translated["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert set(template_env) <= set(env)
    started = time.monotonic()
    proc = subprocess.run([package.python312, "-I", str(runner), str(package.task_root), str(out)],
                          capture_output=True, text=True, env=env, cwd=package.task_root, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 60
    result = json.loads(out.read_text())
    assert result["python"] == [3, 12]
    assert result["botocore"].startswith(str(package.task_root))
    assert result["dispatched"]["data"]["enqueued"] == 1 and result["dispatched"]["targets"] == []
    assert result["batch"] == {"batchItemFailures": []}
    report = result["report"]
    assert report["exit_code"] == 0, json.dumps(report, indent=1)
    state = report["data"]["targets"]["pkg-hive"]
    assert state["verdict"] == "ok" and state["last_tick_at"], json.dumps(state, indent=1)

    # The EMF lines on stdout carry what the heartbeat alarm watches (namespace, name, dimensions).
    emf = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"_aws"')]
    heartbeat = [e for e in emf if "Heartbeat" in e]
    assert len(heartbeat) == 1
    meta = heartbeat[0]["_aws"]["CloudWatchMetrics"][0]
    alarm = translated["Resources"]["HeartbeatAlarm"]["Properties"]
    assert meta["Namespace"] == "Sentinel" and meta["Dimensions"] == [[d["Name"] for d in alarm["Dimensions"]]]
    assert heartbeat[0]["service"] == f"sentinel-{ENV}"
    status = [e for e in emf if "TargetStatus" in e]
    assert status and sorted(status[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["service", "target"]

    # ... and the tick's state went to the moto server's table.
    item = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server).get_item(
        TableName=STATE_TABLE, Key={"pk": {"S": "target#pkg-hive"}, "sk": {"S": "state"}})
    assert "Item" in item

