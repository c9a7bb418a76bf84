"""Pytest fixtures for the HiveServer2 test server. Import them explicitly in a test module:

    from tests.hs2.fixtures import hs2_factory_fixture, hs2_pki_fixture, hs2_server_fixture  # noqa: F401

and ask for them as ``hs2_server``, ``hs2_factory``, ``hs2_pki`` (a conftest under tests/hs2
would not reach tests/unit or tests/functional; the ``_fixture`` function names keep the
imports from shadowing the test arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hs2.certs import Pki, make_pki
from tests.hs2.server import HiveServer2TestServer

HS2_USER = "rcapp"
HS2_PASSWORD = "Rc-app.test-pw-7f3a"  # noqa: S105 - a throw-away test password (tests assert it never leaks)

ServerFactory = Callable[..., HiveServer2TestServer]


@pytest.fixture(scope="session", name="hs2_pki")
def hs2_pki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1 it signed, and an unrelated CA."""
    return make_pki(Path(tmp_path_factory.mktemp("hs2-pki")))


@pytest.fixture(name="hs2_factory")
def hs2_factory_fixture(hs2_pki: Pki) -> Iterator[ServerFactory]:
    """Start servers with any options (``tls=False``, ``auth="NOSASL"``...); all stopped at teardown."""
    servers: list[HiveServer2TestServer] = []

    def start(**kwargs: Any) -> HiveServer2TestServer:
        kwargs.setdefault("username", HS2_USER)
        kwargs.setdefault("password", HS2_PASSWORD)
        server = HiveServer2TestServer(hs2_pki, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(name="hs2_server")
def hs2_server_fixture(hs2_factory: ServerFactory) -> HiveServer2TestServer:
    """The production shape: TLS (cert signed by ``hs2_pki.ca_pem``) + SASL PLAIN, user rcapp, mode ``ok``."""
    return hs2_factory()
