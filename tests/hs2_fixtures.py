"""The HiveServer2 stub server (monitor.sandbox.hs2_server) as pytest fixtures, with certs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.sandbox.certs import CertSet, make_certs
from monitor.sandbox.hs2_server import HiveServer2Stub

USERNAME = "rcapp"
PASSWORD = "Rc-s3cret-7451d491"  # noqa: S105 - the test server's password, not a real one

ServerFactory = Callable[..., HiveServer2Stub]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that did not sign the server's certificate (the wrong-CA scenario)."""
    return make_certs(tmp_path_factory.mktemp("other"), ca_name="someone else's CA").ca_file


@pytest.fixture
def hs2_factory(certs: CertSet) -> Iterator[ServerFactory]:
    """Start stubs with any options (``tls=False``, ``sasl=False``, ``password=""``...); all stopped at
    teardown. By default the production shape: TLS with ``certs``, SASL PLAIN, rcapp / PASSWORD."""
    servers: list[HiveServer2Stub] = []

    def start(*, tls: bool = True, **kwargs: Any) -> HiveServer2Stub:
        kwargs.setdefault("username", USERNAME)
        kwargs.setdefault("password", PASSWORD)
        if tls:
            kwargs.update(certfile=certs.cert_file, keyfile=certs.key_file)
        server = HiveServer2Stub(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def hs2(hs2_factory: ServerFactory) -> HiveServer2Stub:
    return hs2_factory()
