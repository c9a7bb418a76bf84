"""A store view that reads through and drops writes: ``check`` and ``--dry-run`` run the
same code as a tick without changing state."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from monitor.core.state.base import Event, Lease, StateStore, TargetState


class ReadOnlyStore(StateStore):
    def __init__(self, inner: StateStore) -> None:
        self._inner = inner
        self.dropped: list[str] = []

    def get(self, target: str) -> TargetState:
        return self._inner.get(target)

    def put(self, target: str, state: TargetState, *, lease: Lease | None,
            events: list[Event] | None = None, now: datetime) -> TargetState:
        self.dropped.append(f"put state {target}")
        return copy.deepcopy(state)

    def acquire_lease(self, target: str, owner: str, ttl_s: float, now: datetime) -> Lease:
        return Lease(target, owner, 0, now.timestamp() + ttl_s)

    def release_lease(self, lease: Lease) -> None:
        return None

    def events(self, target: str, limit: int = 50) -> list[Event]:
        return self._inner.events(target, limit)

    def active_incidents(self) -> dict[str, dict[str, Any]]:
        return self._inner.active_incidents()

    def get_item(self, target: str, sk: str) -> dict[str, Any] | None:
        return self._inner.get_item(target, sk)

    def put_item(self, target: str, sk: str, data: dict[str, Any], *, lease: Lease | None) -> None:
        self.dropped.append(f"put {target}/{sk}")
