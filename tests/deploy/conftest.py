"""Shared fixtures for the deployment tests: the template (raw and SAM-translated) and one
full Lambda package build per session (the slow part; its dependency tree is cached under
build/cache, so only the first run on a machine downloads anything)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy import build, cfn_yaml, iam

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "deploy" / "template.yaml"
CODE_BUCKET = "sentinel-artifacts"
CODE_KEY = "sentinel-lambda.zip"

# What SAM adds to the function role (AWSLambdaBasicExecutionRole for logs, VPC access for
# the ENIs); the real loader asks IAM, the stub answers offline.
SAM_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}


class ManagedPolicyLoaderStub:
    def load(self) -> dict[str, str]:
        return dict(SAM_MANAGED_POLICIES)


def load_template() -> dict[str, Any]:
    return cfn_yaml.load(TEMPLATE_PATH)


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` + the Serverless transform make of the template, offline."""
    from samtranslator.translator.transform import transform

    tpl = copy.deepcopy(template)
    tpl["Resources"][iam.FUNCTION_RESOURCE]["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    return dict(transform(tpl, {}, ManagedPolicyLoaderStub()))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return translate(template)


@dataclass
class Package:
    result: build.BuildResult
    zip_path: Path
    task_root: Path  # the zip extracted, as Lambda's /var/task
    python312: str


@pytest.fixture(scope="session")
def python312() -> str:
    try:
        return build.find_python312()
    except build.BuildError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def package(python312: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Package]:
    """One full build (bundled boto3, .pyc for 3.12) into a temp dir, extracted once."""
    out = tmp_path_factory.mktemp("pkg") / "sentinel-lambda.zip"
    opts = build.BuildOptions(out=out, python312=python312)
    try:
        result = build.build(opts)
    except build.DependencyDownloadError as exc:
        if os.environ.get("SENTINEL_REQUIRE_PACKAGE") == "1":
            raise
        pytest.skip(f"offline and the dependency tree is not cached under build/cache: {exc}")
    with build.extracted(out) as task_root:
        yield Package(result, out, task_root, python312)
