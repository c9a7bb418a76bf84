"""A real HiveServer2 (pyspark's Spark Thrift Server on Java 17) for the integration suite.

Why a real server: the production incident was a HiveServer2 that stopped answering, and
the things a fake cannot reproduce faithfully are exactly the ones that matter — Hive's SASL
error on a bad password, a TLS handshake against a keystore made by ``keytool``, a frozen JVM
whose kernel still accepts connections. Starting one costs 10–30 s, so there is one server
per pytest session (``real_hs2``) and each test gets it back healthy (``hs2``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.realhs2.server import RealHiveServer2, ServerUnavailable, java_tools, spark_dist

# Import both fixtures into a test module to use them (named ``real_hs2`` and ``hs2`` there).
__all__ = ["RealHiveServer2", "ServerUnavailable", "hs2_fixture", "real_hs2_fixture"]


@pytest.fixture(scope="session", name="real_hs2")
def real_hs2_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHiveServer2]:
    """Start the server once per session; always stopped by PID, even after a failed test.

    Skips (a fixture skip, which CI's SENTINEL_REQUIRE_INTEGRATION=1 hook turns into a failure;
    a module-level importorskip would escape it) only when pyspark or Java 17 is missing.
    """
    pytest.importorskip("pyspark", reason="real HiveServer2 suite needs pyspark: run `make install-integration` "
                                          "(pip install -r requirements-integration.txt) and a JDK 17")
    try:
        java_tools()
        spark_dist()
    except ServerUnavailable as exc:
        pytest.skip(f"real HiveServer2 suite: {exc} (set it up: `make install-integration` for pyspark, "
                    "apt-get install openjdk-17-jdk-headless for Java; .ci/run does both)")
    server = RealHiveServer2(tmp_path_factory.mktemp("realhs2"))
    try:
        took = server.start()
        print(f"\nreal HiveServer2 up in {took:.1f} s on {server.host}:{server.port} (pid {server.pid}, "
              f"RSS {server.rss_mb() or 0:.0f} MB, logs {server.log_path})")
        yield server
    finally:
        server.stop()


@pytest.fixture(name="hs2")
def hs2_fixture(real_hs2: RealHiveServer2) -> Iterator[RealHiveServer2]:
    """The session server, running and not frozen, before and after every test."""
    if not real_hs2.alive():
        real_hs2.start()
    real_hs2.thaw()
    try:
        yield real_hs2
    finally:
        real_hs2.thaw()  # a frozen JVM would block teardown and every later test
