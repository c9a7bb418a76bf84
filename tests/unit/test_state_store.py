"""Both state stores, one contract: versioned writes, lease + fencing, events, items."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from monitor.core.errors import ConflictError, LeaseHeld, StateError
from monitor.core.state.base import Event, StateStore, TargetState
from monitor.core.state.dynamodb import DynamoStateStore, create_table
from monitor.core.state.memory import MemoryStateStore
from monitor.sandbox.motolock import serialize

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    with mock_aws():
        client = serialize(boto3.client("dynamodb", region_name="us-east-1"))  # moto is not thread-safe
        create_table(client, "sentinel-state")
        yield DynamoStateStore(client, "sentinel-state")


def test_absent_state_is_version_zero(store: StateStore) -> None:
    assert store.get("t") == TargetState()


def test_versioned_write_and_stale_write_conflict(store: StateStore) -> None:
    s0 = store.get("t")
    s1 = store.put("t", TargetState(version=s0.version, consecutive_failures=1), lease=None, now=NOW)
    assert s1.version == 1
    assert store.get("t").consecutive_failures == 1
    with pytest.raises(ConflictError):  # a writer still holding version 0 loses
        store.put("t", TargetState(version=0, consecutive_failures=9), lease=None, now=NOW)
    s2 = store.put("t", TargetState(version=1, consecutive_failures=2), lease=None, now=NOW)
    assert (s2.version, store.get("t").consecutive_failures) == (2, 2)


def test_concurrent_writers_exactly_one_wins(store: StateStore) -> None:
    base = store.put("t", TargetState(), lease=None, now=NOW)
    wins, losses = [], []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            store.put("t", TargetState(version=base.version, consecutive_failures=i), lease=None, now=NOW)
            wins.append(i)
        except ConflictError:
            losses.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert store.get("t").consecutive_failures == wins[0]


def test_lease_excludes_others_until_expiry(store: StateStore) -> None:
    a = store.acquire_lease("t", "a", 60, NOW)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("t", "b", 60, NOW + timedelta(seconds=30))
    b = store.acquire_lease("t", "b", 60, NOW + timedelta(seconds=61))
    assert b.token > a.token


def test_lease_reacquired_by_owner_and_released(store: StateStore) -> None:
    a = store.acquire_lease("t", "a", 60, NOW)
    a2 = store.acquire_lease("t", "a", 60, NOW)
    assert a2.token > a.token
    store.release_lease(a2)
    b = store.acquire_lease("t", "b", 60, NOW)
    assert b.token > a2.token


def test_fencing_rejects_writes_from_a_lost_lease(store: StateStore) -> None:
    old = store.acquire_lease("t", "a", 1, NOW)
    new = store.acquire_lease("t", "b", 60, NOW + timedelta(seconds=5))  # a's lease expired
    with pytest.raises(ConflictError):
        store.put("t", TargetState(), lease=old, now=NOW)
    with pytest.raises(ConflictError):
        store.put_item("t", "sample#x", {"v": 1}, lease=old)
    assert store.get("t").version == 0
    assert store.put("t", TargetState(), lease=new, now=NOW).version == 1
    store.put_item("t", "sample#x", {"v": 2}, lease=new)
    assert store.get_sample("t", "x") == {"v": 2}


def test_release_by_a_stale_owner_does_not_free_the_new_lease(store: StateStore) -> None:
    old = store.acquire_lease("t", "a", 1, NOW)
    store.acquire_lease("t", "b", 60, NOW + timedelta(seconds=5))
    store.release_lease(old)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("t", "c", 60, NOW + timedelta(seconds=6))


def test_events_written_with_state_newest_first(store: StateStore) -> None:
    s = store.put("t", TargetState(), lease=None, now=NOW,
                  events=[Event(at="2026-11-23T06:00:00.000000Z", kind="verdict", message="new -> ok")])
    store.put("t", s, lease=None, now=NOW,
              events=[Event(at="2026-11-23T06:10:00.000000Z", kind="verdict", message="ok -> failing")])
    events = store.events("t")
    assert [e.message for e in events] == ["ok -> failing", "new -> ok"]
    assert store.events("other") == []


def test_conflicting_write_records_no_event(store: StateStore) -> None:
    store.put("t", TargetState(), lease=None, now=NOW)
    with pytest.raises(ConflictError):
        store.put("t", TargetState(version=0), lease=None, now=NOW,
                  events=[Event(at="2026-11-23T06:00:00.000000Z", kind="x", message="lost")])
    assert store.events("t") == []


def test_items_roundtrip(store: StateStore) -> None:
    assert store.get_spec("t") is None
    store.put_spec("t", {"Name": "c", "Instances": {"x": [1, 2]}}, lease=None)
    assert store.get_spec("t") == {"Name": "c", "Instances": {"x": [1, 2]}}


def test_dynamodb_unreachable_table_is_state_error() -> None:
    with mock_aws():
        store = DynamoStateStore(boto3.client("dynamodb", region_name="us-east-1"), "no-such-table")
        with pytest.raises(StateError):
            store.get("t")
        with pytest.raises(StateError):
            store.acquire_lease("t", "a", 60, NOW)


def test_dynamodb_corrupt_state_is_state_error() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "s")
        client.put_item(TableName="s", Item={"pk": {"S": "target#t"}, "sk": {"S": "state"},
                                             "version": {"N": "1"}, "data": {"S": "{not json"}})
        with pytest.raises(StateError):
            DynamoStateStore(client, "s").get("t")


def test_dynamodb_events_carry_ttl() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "s")
        DynamoStateStore(client, "s").put("t", TargetState(), lease=None, now=NOW,
                                          events=[Event(at="2026-11-23T06:00:00.000000Z", kind="k", message="m")])
        items = client.scan(TableName="s")["Items"]
        event = next(i for i in items if i["sk"]["S"].startswith("event#2026-11-23T06:00:00.000000Z#"))
        assert int(event["expires_at"]["N"]) == int((NOW + timedelta(days=90)).timestamp())
        ttl = client.describe_time_to_live(TableName="s")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
