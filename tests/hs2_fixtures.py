"""The HiveServer2 stub server (monitor.sandbox.hs2_server) as pytest fixtures, with certs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.sandbox.certs import CertSet, make_certs
from monitor.sandbox.hs2_server import HiveServer2Stub

PASSWORD = "Rc-s3cret-7451d491"  # noqa: S105 - the test server's password, not a real one


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that did not sign the server's certificate (the wrong-CA scenario)."""
    return make_certs(tmp_path_factory.mktemp("other"), ca_name="someone else's CA").ca_file


@pytest.fixture
def hs2(certs: CertSet) -> Iterator[HiveServer2Stub]:
    server = HiveServer2Stub(username="rcapp", password=PASSWORD, certfile=certs.cert_file, keyfile=certs.key_file)
    with server:
        yield server


def ca_path(certs: CertSet) -> str:
    return str(Path(certs.ca_file))
