"""An in-memory store with the DynamoDB store's semantics, for unit tests and dry runs."""

from __future__ import annotations

import copy
import threading
from datetime import datetime
from typing import Any

from monitor.core.errors import ConflictError, LeaseHeld
from monitor.core.state.base import Event, Lease, StateStore, TargetState


class MemoryStateStore(StateStore):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._states: dict[str, tuple[int, str]] = {}
        self._leases: dict[str, Lease] = {}
        self._events: dict[str, list[tuple[str, Event]]] = {}
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._seq = 0

    def get(self, target: str) -> TargetState:
        with self._lock:
            stored = self._states.get(target)
        if stored is None:
            return TargetState()
        return TargetState.from_json(stored[1], stored[0])

    def active_incidents(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            stored = dict(self._states)
        out = {}
        for target, (version, text) in stored.items():
            active = TargetState.from_json(text, version).active_incident
            if active:
                out[target] = active
        return out

    def _check_fence(self, target: str, lease: Lease | None) -> None:
        if lease is None:
            return
        current = self._leases.get(target)
        if current is None or current.token != lease.token or current.owner != lease.owner:
            raise ConflictError(f"{target}: lease token {lease.token} is no longer current")

    def put(self, target: str, state: TargetState, *, lease: Lease | None,
            events: list[Event] | None = None, now: datetime) -> TargetState:
        with self._lock:
            self._check_fence(target, lease)
            stored_version = self._states.get(target, (0, ""))[0]
            if stored_version != state.version:
                raise ConflictError(f"{target}: state version is {stored_version}, expected {state.version}")
            new_version = state.version + 1
            self._states[target] = (new_version, state.to_json())
            for event in events or []:
                self._seq += 1
                self._events.setdefault(target, []).append((f"{event.at}#{self._seq:06d}", copy.deepcopy(event)))
        result = copy.deepcopy(state)
        result.version = new_version
        return result

    def acquire_lease(self, target: str, owner: str, ttl_s: float, now: datetime) -> Lease:
        ts = now.timestamp()
        with self._lock:
            current = self._leases.get(target)
            if current is not None and current.expires_at > ts and current.owner != owner:
                raise LeaseHeld(f"{target}: lease held by {current.owner} until {current.expires_at:.0f}")
            token = (current.token if current else 0) + 1
            lease = Lease(target, owner, token, ts + ttl_s)
            self._leases[target] = lease
            return copy.copy(lease)

    def release_lease(self, lease: Lease) -> None:
        with self._lock:
            current = self._leases.get(lease.target)
            if current is not None and current.token == lease.token and current.owner == lease.owner:
                self._leases[lease.target] = Lease(lease.target, lease.owner, lease.token, 0.0)

    def events(self, target: str, limit: int = 50) -> list[Event]:
        with self._lock:
            items = sorted(self._events.get(target, []), key=lambda pair: pair[0], reverse=True)
        return [copy.deepcopy(e) for _, e in items[:limit]]

    def get_item(self, target: str, sk: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get((target, sk))
        return copy.deepcopy(item) if item is not None else None

    def put_item(self, target: str, sk: str, data: dict[str, Any], *, lease: Lease | None) -> None:
        with self._lock:
            self._check_fence(target, lease)
            self._items[(target, sk)] = copy.deepcopy(data)
