"""The sandbox resolves names as the VPC would: through the zone's records as they are now,
then host_aliases for what would be addresses (monitor/sandbox/dns.py)."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.core.errors import ConnectionPolicyError
from monitor.sandbox.dns import MAX_CHAIN, ZoneResolver

LB_DNS = "hive-1.us-east-1.elb.amazonaws.com"
OLD = "ip-10-0-1-5.ec2.internal"
NEW = "ip-10-0-1-9.ec2.internal"


class FakeRoute53:
    """``list_resource_record_sets`` of one zone; ``records`` may change between calls."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.calls = 0

    def list_resource_record_sets(self, HostedZoneId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        assert HostedZoneId == "Z1"
        self.calls += 1
        return {"ResourceRecordSets": self.records}


def cname(name: str, value: str) -> dict[str, Any]:
    return {"Name": name + ".", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": value}]}


def world() -> tuple[FakeRoute53, ZoneResolver]:
    r53 = FakeRoute53([
        {"Name": "hive.internal.example.com.", "Type": "A",
         "AliasTarget": {"HostedZoneId": "Z2P70J7EXAMPLE", "DNSName": LB_DNS + ".", "EvaluateTargetHealth": False}},
        cname("hive-master.internal.example.com", OLD),
    ])
    aliases = {LB_DNS: "127.0.0.1:8443", OLD: "127.0.0.1:10001", "ip-*.ec2.internal": "127.0.0.1"}
    return r53, ZoneResolver(r53, "Z1", "internal.example.com", aliases, loopback_only=True)


def test_the_load_balancers_name_reaches_the_load_balancer_through_its_alias_record() -> None:
    _, resolver = world()
    ep = resolver.resolve("hive.internal.example.com", 443)
    assert (ep.host, ep.port) == ("127.0.0.1", 8443)
    assert ep.server_hostname == "hive.internal.example.com"  # TLS verifies the name dialled


def test_the_masters_record_follows_a_repoint() -> None:
    r53, resolver = world()
    assert resolver.resolve("Hive-Master.Internal.Example.com.", 10000).port == 10001  # the old master
    r53.records[1] = cname("hive-master.internal.example.com", NEW)  # what REPOINT's UPSERT does
    ep = resolver.resolve("hive-master.internal.example.com", 10000)
    assert (ep.host, ep.port, ep.server_hostname) == ("127.0.0.1", 10000, "hive-master.internal.example.com")


def test_repointing_the_load_balancers_name_really_bypasses_the_load_balancer() -> None:
    """The wrong topology is not masked: once the clients' name is a CNAME to a master, the
    listener's port goes to the master's address, not to the load-balancer stand-in."""
    r53, resolver = world()
    r53.records[0] = cname("hive.internal.example.com", NEW)
    ep = resolver.resolve("hive.internal.example.com", 443)
    assert (ep.host, ep.port) == ("127.0.0.1", 443)


def test_a_name_outside_the_zone_is_not_looked_up() -> None:
    r53, resolver = world()
    assert resolver.resolve(OLD, 10000).port == 10001
    assert r53.calls == 0
    with pytest.raises(ConnectionPolicyError):
        resolver.resolve("billing.example.org", 443)  # no record, no alias: loopback only refuses it


def test_a_cname_loop_ends() -> None:
    r53, resolver = world()
    r53.records = [cname("a.internal.example.com", "b.internal.example.com"),
                   cname("b.internal.example.com", "a.internal.example.com")]
    assert resolver.follow("a.internal.example.com") in ("a.internal.example.com", "b.internal.example.com")
    assert r53.calls == MAX_CHAIN
