"""The HiveServer2 check in the production topology, on loopback: client → "ELB" (TLS
terminated with the load balancer's certificate, :class:`TlsTerminatingProxy`) → master
(HiveServer2 stub on another port, its own certificate for ``*.ec2.internal`` from another
CA). What a dead backend looks like through it, what stays UNKNOWN, VERIFY_NEW's endpoint,
and name resolution as a phase of its own."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.base import CheckContext, CheckResult, Deadline, EndpointOverride, Status
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config
from monitor.core.clock import SystemClock
from monitor.core.resolve import MAX_STUCK_LOOKUPS, HostResolver
from monitor.core.state.memory import MemoryStateStore
from monitor.sandbox.certs import CertSet, make_certs
from monitor.sandbox.elb import TlsTerminatingProxy
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.fakes import NoClients
from tests.functional.test_hs2_check import Secrets
from tests.hs2_fixtures import PASSWORD, USERNAME

RECORD = "hive.internal.example.com"
MASTER = "ip-10-0-1-23.ec2.internal"


@pytest.fixture(scope="module")
def elb_certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("elb"), names=(RECORD, "localhost"), ca_name="ELB CA", prefix="elb-")


@pytest.fixture(scope="module")
def master_certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("master"), names=("*.ec2.internal",), ca_name="EMR master CA",
                      prefix="master-")


class Topology:
    """The master, the "ELB" in front of it, and whether the master is registered."""

    elb: TlsTerminatingProxy

    def __init__(self, master: HiveServer2Stub) -> None:
        self.master = master
        self.registered = True

    def backend(self) -> tuple[str, int] | None:
        return ("127.0.0.1", self.master.port) if self.registered else None


@pytest.fixture
def topo(elb_certs: CertSet, master_certs: CertSet) -> Iterator[Topology]:
    master = HiveServer2Stub(username=USERNAME, password=PASSWORD, certfile=master_certs.cert_file,
                             keyfile=master_certs.key_file).start()
    topo = Topology(master)
    topo.elb = TlsTerminatingProxy(topo.backend, certfile=elb_certs.cert_file, keyfile=elb_certs.key_file).start()
    yield topo
    topo.elb.stop()
    master.stop()


def elb_check(elb_certs: CertSet, **over: Any) -> HiveServer2Config:
    raw: dict[str, Any] = {
        "type": "hiveserver2", "name": "hive-via-elb", "host": RECORD, "port": 443,
        "tls": {"ca_file": elb_certs.ca_file},
        "credentials": {"provider": "env", "username": USERNAME, "key": "HIVE_PW"}, "timeout_s": 2.0,
    }
    raw.update(over)
    return HiveServer2Config.model_validate(raw)


def run(cfg: HiveServer2Config, resolver: HostResolver, **ctx_over: Any) -> CheckResult:
    ctx = CheckContext(target="prod-hive", cluster=None, clients=NoClients(), secrets=Secrets(PASSWORD),
                       resolver=resolver, store=MemoryStateStore(), clock=SystemClock(),
                       deadline=Deadline.after(20), **ctx_over)
    return HiveServer2Check(cfg).run(ctx)


def via_elb(topo: Topology) -> HostResolver:
    return HostResolver({RECORD: f"127.0.0.1:{topo.elb.port}", "ip-10-*.ec2.internal": "127.0.0.1"})


def test_through_the_tls_terminating_lb_the_check_sees_the_lb_certificate_and_passes(
        topo: Topology, elb_certs: CertSet) -> None:
    r = run(elb_check(elb_certs), via_elb(topo), behind_load_balancer=True)
    assert r.status is Status.OK, r.summary
    assert topo.master.counters.queries >= 1


@pytest.mark.parametrize("how", ["deregistered", "process_gone", "reset"])
def test_dead_backend_behind_the_lb_is_critical_no_backend(topo: Topology, elb_certs: CertSet, how: str) -> None:
    if how == "deregistered":
        topo.registered = False
    elif how == "process_gone":
        topo.master.stop()
    else:
        topo.registered, topo.elb.reset = False, True
    r = run(elb_check(elb_certs), via_elb(topo), behind_load_balancer=True)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "no_backend"), r.summary
    assert r.observed["phase"] == "auth"  # TLS completed (with the ELB), closed before the SASL reply
    assert topo.elb.closed_without_backend >= 1


def test_first_time_sasl_eof_without_a_load_balancer_stays_unknown_config(topo: Topology, elb_certs: CertSet) -> None:
    topo.registered = False
    r = run(elb_check(elb_certs), via_elb(topo))  # never passed, no LB known
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config"), r.summary


def test_config_key_load_balancer_false_wins_over_the_routing(topo: Topology, elb_certs: CertSet) -> None:
    topo.registered = False
    r = run(elb_check(elb_certs, load_balancer=False), via_elb(topo), behind_load_balancer=True)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")
    r = run(elb_check(elb_certs, load_balancer=True), via_elb(topo))
    assert (r.status, r.error_kind) == (Status.CRITICAL, "no_backend")


def test_eof_on_a_check_that_passed_before_with_the_same_settings_is_no_backend(
        topo: Topology, elb_certs: CertSet) -> None:
    cfg = elb_check(elb_certs)
    ok = run(cfg, via_elb(topo))
    assert ok.status is Status.OK
    topo.registered = False
    r = run(cfg, via_elb(topo), last_ok_settings={cfg.name: ok.observed["settings"]})
    assert (r.status, r.error_kind) == (Status.CRITICAL, "no_backend")
    # Other settings than the ones that passed (here: another user): a mismatch is possible, UNKNOWN.
    other = elb_check(elb_certs, credentials={"provider": "env", "username": "someone", "key": "HIVE_PW"})
    r = run(other, via_elb(topo), last_ok_settings={cfg.name: ok.observed["settings"]})
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")


def test_verify_new_reaches_the_master_on_its_own_port_and_certificate(
        topo: Topology, elb_certs: CertSet, master_certs: CertSet) -> None:
    endpoint = EndpointOverride(host=MASTER, port=topo.master.port,
                                tls={"ca_file": master_certs.ca_file, "server_hostname": "*.ec2.internal"})
    r = run(elb_check(elb_certs), via_elb(topo), endpoint=endpoint, behind_load_balancer=True)
    assert r.status is Status.OK, r.summary
    assert r.observed["connected_to"] == f"127.0.0.1:{topo.master.port}"  # the master's port, not the ELB's
    assert r.observed["server_hostname"] == MASTER  # verified against the name connected to
    assert r.observed["load_balancer"] is False
    # The ELB's TLS settings against the master: its certificate is not the ELB's.
    wrong = EndpointOverride(host=MASTER, port=topo.master.port)
    r = run(elb_check(elb_certs), via_elb(topo), endpoint=wrong)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "tls")


def test_verify_new_against_a_dead_master_is_refused_not_no_backend(
        topo: Topology, elb_certs: CertSet, master_certs: CertSet) -> None:
    topo.master.stop()
    endpoint = EndpointOverride(host=MASTER, port=topo.master.port,
                                tls={"ca_file": master_certs.ca_file, "server_hostname": "*.ec2.internal"})
    r = run(elb_check(elb_certs), via_elb(topo), endpoint=endpoint, behind_load_balancer=True)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "refused")


def test_wildcard_server_hostname_that_does_not_match_the_host_is_unknown_config(
        topo: Topology, elb_certs: CertSet, master_certs: CertSet) -> None:
    endpoint = EndpointOverride(host="master.example.org", port=topo.master.port,
                                tls={"ca_file": master_certs.ca_file, "server_hostname": "*.ec2.internal"})
    resolver = HostResolver({"master.example.org": "127.0.0.1"})
    r = run(elb_check(elb_certs), resolver, endpoint=endpoint)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")
    assert topo.master.counters.connections == 0


# ---------------------------------------------------------------------- name resolution
def test_nxdomain_is_critical_dns_and_never_connects(elb_certs: CertSet) -> None:
    def nxdomain(host: str, port: int, **_: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolver = HostResolver({RECORD: "hive-gone.internal"}, loopback_only=False, lookup=nxdomain)
    r = run(elb_check(elb_certs), resolver)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "dns"), r.summary
    assert r.observed["attempts"] == []


def test_a_hanging_resolver_is_critical_dns_within_the_timeout(elb_certs: CertSet) -> None:
    release = threading.Event()
    stuck: list[threading.Thread] = []

    def hang(host: str, port: int, **_: Any) -> list[Any]:
        stuck.append(threading.current_thread())
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    resolver = HostResolver({RECORD: "hive.internal"}, loopback_only=False, lookup=hang)
    started = time.monotonic()
    try:
        r = run(elb_check(elb_certs, timeout_s=1.0), resolver)
        took = time.monotonic() - started
    finally:
        release.set()
    assert (r.status, r.error_kind) == (Status.CRITICAL, "dns"), r.summary
    assert took < 1.0 + 1.0  # the check's timeout, generous slack
    for t in stuck:  # the abandoned lookup ends with the resolver (daemon, holds nothing of ours)
        t.join(5)
        assert not t.is_alive()


def test_stuck_lookups_are_bounded(tmp_path: Path) -> None:
    release = threading.Event()
    started_lookups = []

    def hang(host: str, port: int, **_: Any) -> list[Any]:
        started_lookups.append(host)
        release.wait(30)
        return []

    from monitor.core.resolve import Endpoint, ResolutionError

    resolver = HostResolver(loopback_only=False, lookup=hang)
    try:
        for _ in range(MAX_STUCK_LOOKUPS + 2):
            with pytest.raises(ResolutionError):
                resolver.addresses(Endpoint("hive.internal", 443, "hive.internal", False), 0.05)
    finally:
        release.set()
    assert len(started_lookups) == MAX_STUCK_LOOKUPS  # no thread started past the bound


def test_every_resolved_address_is_tried_in_order(topo: Topology, master_certs: CertSet) -> None:
    """A name with several addresses (localhost: ::1 and 127.0.0.1) connects to the first one
    that accepts, as socket.create_connection would; here 127.0.0.2 refuses."""
    def two_addresses(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("127.0.0.2", "127.0.0.1")]

    cfg = HiveServer2Config.model_validate({
        "type": "hiveserver2", "name": "hive", "host": MASTER, "port": topo.master.port,
        "tls": {"ca_file": master_certs.ca_file},
        "credentials": {"provider": "env", "username": USERNAME, "key": "HIVE_PW"}, "timeout_s": 2.0})
    r = run(cfg, HostResolver({MASTER: "master.local"}, loopback_only=False, lookup=two_addresses))
    assert r.status is Status.OK, r.summary
    assert r.observed["addresses"] == ["127.0.0.2", "127.0.0.1"]
