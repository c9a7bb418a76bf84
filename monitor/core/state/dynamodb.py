"""The DynamoDB single-table state store (layout in :mod:`monitor.core.state.base`).

State writes are one ``TransactWriteItems``: a ``ConditionCheck`` that the lease token is
still ours (fencing), a conditional ``Put`` on the version, and the audit events, so a state
change and its event land together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from monitor.core.aws import error_code
from monitor.core.errors import ConflictError, LeaseHeld, StateError
from monitor.core.state.base import EVENT_TTL_DAYS, Event, Lease, StateStore, TargetState

PERMISSIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:Scan",  # active_incidents: incidents of targets removed from the config
    "dynamodb:ConditionCheckItem",
)


def _pk(target: str) -> dict[str, str]:
    return {"S": f"target#{target}"}


class DynamoStateStore(StateStore):
    def __init__(self, client: Any, table: str) -> None:
        self._ddb = client
        self.table = table

    # ------------------------------------------------------------ helpers
    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._ddb, op)(TableName=self.table, **kwargs)
        except Exception as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                raise ConflictError(f"{op}: condition failed") from exc
            raise StateError(f"state table {self.table!r}: {op} failed ({code})") from exc

    def _fence(self, lease: Lease) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"pk": _pk(lease.target), "sk": {"S": "lease"}},
                "ConditionExpression": "#t = :t AND #o = :o",
                "ExpressionAttributeNames": {"#t": "token", "#o": "owner"},
                "ExpressionAttributeValues": {":t": {"N": str(lease.token)}, ":o": {"S": lease.owner}},
            }
        }

    # ------------------------------------------------------------ state
    def get(self, target: str) -> TargetState:
        resp = self._call("get_item", Key={"pk": _pk(target), "sk": {"S": "state"}}, ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return TargetState()
        try:
            return TargetState.from_json(item["data"]["S"], int(item["version"]["N"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise StateError(f"state of {target!r} is unreadable ({type(exc).__name__})") from exc

    def put(self, target: str, state: TargetState, *, lease: Lease | None,
            events: list[Event] | None = None, now: datetime) -> TargetState:
        new_version = state.version + 1
        condition = "attribute_not_exists(pk)" if state.version == 0 else "#v = :v"
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                "pk": _pk(target), "sk": {"S": "state"},
                "version": {"N": str(new_version)}, "data": {"S": state.to_json()},
            },
            "ConditionExpression": condition,
        }
        active = state.active_incident
        if active:  # a small top-level attribute, so finding running incidents needs no JSON
            put["Item"]["active_incident"] = {"S": json.dumps(active, default=str)}
        if state.version:
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":v": {"N": str(state.version)}}
        items: list[dict[str, Any]] = [{"Put": put}]
        if lease is not None:
            items.insert(0, self._fence(lease))
        expires = int((now + timedelta(days=EVENT_TTL_DAYS)).timestamp())
        for seq, event in enumerate(events or []):
            items.append({"Put": {"TableName": self.table, "Item": {
                "pk": _pk(target), "sk": {"S": f"event#{event.at}#{time.time_ns():020d}{seq:04d}{uuid.uuid4().hex[:4]}"},
                "data": {"S": json.dumps(event.to_dict(), default=str)},
                "expires_at": {"N": str(expires)},
            }}})
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except Exception as exc:
            code = error_code(exc)
            if code == "TransactionCanceledException":
                raise ConflictError(f"{target}: state version or lease moved on") from exc
            raise StateError(f"state table {self.table!r}: write failed ({code})") from exc
        return TargetState.from_json(state.to_json(), new_version)

    def active_incidents(self) -> dict[str, dict[str, Any]]:
        """A filtered Scan: only state items of targets with a running incident come back
        (it still reads the table; fine at one call per scheduled tick)."""
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"FilterExpression": "attribute_exists(active_incident)",
                                  "ProjectionExpression": "pk, active_incident"}
        while True:
            resp = self._call("scan", **kwargs)
            for item in resp.get("Items", []):
                pk = str(item["pk"]["S"])
                try:
                    out[pk.removeprefix("target#")] = dict(json.loads(item["active_incident"]["S"]))
                except (KeyError, ValueError, TypeError):
                    out[pk.removeprefix("target#")] = {"id": None, "phase": "unreadable"}
            if not resp.get("LastEvaluatedKey"):
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # ------------------------------------------------------------ lease
    def acquire_lease(self, target: str, owner: str, ttl_s: float, now: datetime) -> Lease:
        ts = now.timestamp()
        try:
            resp = self._call(
                "update_item",
                Key={"pk": _pk(target), "sk": {"S": "lease"}},
                UpdateExpression="SET #o = :o, expires_at = :e, #t = if_not_exists(#t, :zero) + :one",
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #o = :o",
                ExpressionAttributeNames={"#o": "owner", "#t": "token"},
                ExpressionAttributeValues={
                    ":o": {"S": owner}, ":e": {"N": repr(ts + ttl_s)}, ":now": {"N": repr(ts)},
                    ":zero": {"N": "0"}, ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
            )
        except ConflictError:
            raise LeaseHeld(f"{target}: lease held by another invocation") from None
        attrs = resp["Attributes"]
        return Lease(target, owner, int(attrs["token"]["N"]), float(attrs["expires_at"]["N"]))

    def release_lease(self, lease: Lease) -> None:
        """Expire our lease now (the token stays, so the next holder's token is higher)."""
        with contextlib.suppress(ConflictError):  # somebody else holds it: nothing of ours to release
            self._call(
                "update_item",
                Key={"pk": _pk(lease.target), "sk": {"S": "lease"}},
                UpdateExpression="SET expires_at = :zero",
                ConditionExpression="#t = :t AND #o = :o",
                ExpressionAttributeNames={"#o": "owner", "#t": "token"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":t": {"N": str(lease.token)},
                                           ":o": {"S": lease.owner}},
            )

    # ------------------------------------------------------------ events and items
    def events(self, target: str, limit: int = 50) -> list[Event]:
        resp = self._call(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": _pk(target), ":p": {"S": "event#"}},
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
        out = []
        for item in resp.get("Items", []):
            data = json.loads(item["data"]["S"])
            out.append(Event(**data))
        return out

    def get_item(self, target: str, sk: str) -> dict[str, Any] | None:
        resp = self._call("get_item", Key={"pk": _pk(target), "sk": {"S": sk}}, ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return None
        try:
            data = json.loads(item["data"]["S"])
        except (KeyError, ValueError) as exc:
            raise StateError(f"{target}/{sk} is unreadable") from exc
        return dict(data)

    def put_item(self, target: str, sk: str, data: dict[str, Any], *, lease: Lease | None) -> None:
        put = {"TableName": self.table, "Item": {
            "pk": _pk(target), "sk": {"S": sk}, "data": {"S": json.dumps(data, default=str)}}}
        if lease is None:
            self._call("put_item", Item=put["Item"])
            return
        try:
            self._ddb.transact_write_items(TransactItems=[self._fence(lease), {"Put": put}])
        except Exception as exc:
            code = error_code(exc)
            if code == "TransactionCanceledException":
                raise ConflictError(f"{target}: lease moved on") from exc
            raise StateError(f"state table {self.table!r}: write failed ({code})") from exc


def create_table(client: Any, table: str) -> None:
    """Create the table as the SAM template does (for tests, the sandbox and first runs)."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
