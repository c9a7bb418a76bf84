"""moto's in-process backends are not thread-safe: two concurrent ``TransactWriteItems``
can raise ``RuntimeError`` inside moto (which sentinel, rightly, treats as an unreadable
state table). Where the sandbox, benchmarks and race tests call moto from many threads,
they serialise the calls *into moto* with this lock; sentinel's own concurrency (leases,
conditional writes) is still what decides the outcome. Real AWS needs no such lock."""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.RLock()
_HELD = threading.local()


def _acquire(**_: Any) -> None:
    _LOCK.acquire()
    _HELD.n = getattr(_HELD, "n", 0) + 1


def _release(**_: Any) -> None:
    if getattr(_HELD, "n", 0):
        _HELD.n -= 1
        _LOCK.release()


def serialize(client: Any) -> Any:
    """Hold the lock from sending a request to receiving its response (``needs-retry``
    fires once per response, success or error)."""
    events = client.meta.events
    events.register("before-send.*.*", _acquire, unique_id="sentinel-moto-lock-acquire")
    events.register("needs-retry.*.*", _release, unique_id="sentinel-moto-lock-release")
    return client


def serialize_all(clients: Any, services: tuple[str, ...] = ("dynamodb", "emr", "elbv2", "elb", "route53",
                                                             "sns", "sqs", "kms", "ec2")) -> None:
    for name in services:
        serialize(clients.client(name))
