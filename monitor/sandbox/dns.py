"""Name resolution in the sandbox, the way the VPC's resolver answers in production.

A name in the sandbox's private zone follows its record in moto's Route 53, as it is *now*
(CNAME value or alias target), until it leaves the zone: ``hive.internal.example.com`` (alias)
→ the load balancer's DNS name, ``hive-master.internal.example.com`` (CNAME) → the current
master's private name. Only then does ``host_aliases`` apply, and it maps what in production
would be IP addresses: the load balancer's DNS name → the load-balancer stand-in's port, a
master's private name → its HiveServer2 stand-in. So when REPOINT rewrites a record, the next
connection through that name really goes somewhere else; and a config that re-points the name
clients use for the load balancer (DESIGN §11 "Topology") would send them to a master's
address on the listener's port here too, not to the load balancer.

TLS still verifies against the name the client dialled (:class:`~monitor.core.resolve.Endpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from monitor.core.resolve import Endpoint, HostResolver

MAX_CHAIN = 8  # CNAME/alias hops followed before giving up (a loop)


def _dns(name: str) -> str:
    return name.rstrip(".").lower()


class ZoneResolver(HostResolver):
    """:class:`HostResolver` that first follows ``zone_id``'s records (read through ``route53``,
    a boto3 client) for names under ``zone_name``, then applies ``aliases``."""

    def __init__(self, route53: Any, zone_id: str, zone_name: str, aliases: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(aliases, **kwargs)
        self._route53 = route53
        self._zone_id = zone_id
        self._zone = _dns(zone_name)

    def follow(self, host: str) -> str:
        """The name ``host`` leads to outside the zone (itself if it has no record there)."""
        name = _dns(host)
        for _ in range(MAX_CHAIN):
            target = self._record_target(name)
            if target is None:
                return name
            name = target
        return name

    def resolve(self, host: str, port: int) -> Endpoint:
        name = self.follow(host)
        if name == _dns(host):
            return super().resolve(host, port)
        return replace(super().resolve(name, port), server_hostname=host)

    def _record_target(self, name: str) -> str | None:
        if name != self._zone and not name.endswith("." + self._zone):
            return None
        sets = self._route53.list_resource_record_sets(HostedZoneId=self._zone_id)["ResourceRecordSets"]
        for rrset in sets:
            if _dns(rrset["Name"]) != name:
                continue
            alias = rrset.get("AliasTarget")
            if alias:
                return _dns(alias["DNSName"])
            if rrset["Type"] == "CNAME" and rrset.get("ResourceRecords"):
                return _dns(rrset["ResourceRecords"][0]["Value"])
        return None
