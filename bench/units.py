"""DynamoDB request units, computed from item sizes as DynamoDB bills them on demand.

moto's ConsumedCapacity is not realistic (1.0 for any query), so a botocore hook records every
call a client makes on the embedded database and prices it here, looking at the items in the
in-process moto backend before and after each write:
- a write costs 1 unit per KB (each item rounded up to 1 KB) of the larger of the item before
  and after it; in a TransactWriteItems, 2 units per KB (a ConditionCheck too, on its item);
- each global secondary index whose entry a write adds, changes or removes costs a standard
  write of the entry (1 unit per KB); one whose key changes costs 2 (the old entry out, the new
  in); every index of this table projects ALL, so an entry is the item's size;
- a read costs 1 unit per 4 KB strongly consistent, half that eventually consistent (a global
  index is always eventually consistent): GetItem and BatchGetItem per item asked (a missing
  item costs the minimum too), Query per call on the total size of the items it reads (whatever
  its ProjectionExpression or Select=COUNT keeps: the query is run again, unrecorded, for them).
Item size: each attribute's name plus its value (strings their UTF-8 bytes, numbers 1 byte per
two significant digits plus 1, sets the sum of their members, maps and lists 3 bytes plus 1 per
element).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from goals_conversions_local.embedded import REQUEST_LOCK

KB, READ_BLOCK = 1024, 4096
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
# Item kinds named by the words of their partition key (keys.py); other tables by their name.
TABLE_KINDS = {"RateLimitTable": "rate-limit counter", "IdempotencyTable": "idempotency record"}


def value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(str(data).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def blocks(size: int, block: int) -> int:
    """Request units of `size` bytes in `block`-byte units, at least one."""
    return max(1, math.ceil(size / block))


def kind_of(table: str, key: dict[str, Any]) -> str:
    """A readable name for an item: 'conversion', 'listed conversion', 'count bucket'..."""
    if table in TABLE_KINDS:
        return TABLE_KINDS[table]
    words = [w for w in key["pk"]["S"].split("#") if w.isalpha() and w.isupper()]
    if len(words) > 1:  # an index partition: WEBSITE#1#CONVERSIONS, USER#1#GOALS
        return f"listed {words[-1].lower().removesuffix('s')}"
    return {"APIKEY": "API key", "COUNT": "count bucket", "GOALKEY": "goal key"}.get(words[0], words[0].lower())


@dataclass
class Call:
    """One DynamoDB call and what it costs."""

    operation: str
    consistency: str  # strong, eventual, standard, transactional
    items: list[str]  # the kinds of the items read or written, one entry per item
    read_units: float = 0.0
    write_units: float = 0.0
    arithmetic: str = ""

    def items_text(self) -> str:
        counted: dict[str, int] = {}
        for kind in self.items:
            counted[kind] = counted.get(kind, 0) + 1
        return ", ".join(
            f"{n} {kind}" + ("s" if n > 1 and not kind.endswith("s") else "") for kind, n in counted.items()
        )


class Recorder:
    """Every DynamoDB call of the clients it is attached to, priced in request units."""

    def __init__(self, region: str | None = None):
        self.region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self.backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region]
        self.calls: list[Call] = []
        self.overhead = 0.0  # CPU seconds its hooks spent in the calling thread (to leave out of timings)
        self._shadow: Any = None

    def attach(self, client: Any) -> Any:
        client.meta.events.register("provide-client-params.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)
        if self._shadow is None:  # re-runs queries, unrecorded, to see the items they read
            self._shadow = boto3.client("dynamodb", endpoint_url=client.meta.endpoint_url, region_name=self.region)
        return client

    def take(self) -> list[Call]:
        calls, self.calls = self.calls, []
        return calls

    # -- hooks ------------------------------------------------------------------------------------

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        started = time.thread_time()
        context["bench_params"] = dict(params)
        if model.name in WRITES:
            targets = self._targets(model.name, params)
            context["bench_before"] = [(kind, table, key, self._image(table, key)) for kind, table, key in targets]
        self.overhead += time.thread_time() - started

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        started = time.thread_time()
        self._record(parsed, model, context)
        self.overhead += time.thread_time() - started

    def _record(self, parsed: dict[str, Any], model: Any, context: dict[str, Any]) -> None:
        params = context.get("bench_params", {})
        name = model.name
        if name in WRITES:
            self.calls.append(self._write(name, context["bench_before"]))
        elif name == "GetItem":
            self.calls.append(self._get(params["TableName"], [params["Key"]], params, [parsed.get("Item")]))
        elif name == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = {self._key_text(table, i): i for i in parsed.get("Responses", {}).get(table, [])}
                items = [found.get(self._key_text(table, k)) for k in request["Keys"]]
                self.calls.append(self._get(table, request["Keys"], request, items, name))
        elif name == "Query":
            self.calls.append(self._query(params, parsed))
        else:
            self.calls.append(Call(name, "-", []))

    # -- writes -----------------------------------------------------------------------------------

    def _targets(self, name: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        """(action, table, key) of every item the write touches."""
        if name == "TransactWriteItems":
            actions = [next(iter(a.items())) for a in params["TransactItems"]]
        elif name == "BatchWriteItem":
            actions = [
                ("Put", {"TableName": t, **r["PutRequest"]})
                if "PutRequest" in r
                else ("Delete", {"TableName": t, **r["DeleteRequest"]})
                for t, requests in params["RequestItems"].items()
                for r in requests
            ]
        else:
            actions = [(name.removesuffix("Item"), params)]
        return [
            (kind, body["TableName"], body.get("Key") or self._key(body["TableName"], body["Item"]))
            for kind, body in actions
        ]

    def _write(self, name: str, before: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]]) -> Call:
        factor = 2 if name == "TransactWriteItems" else 1
        call = Call(name, "transactional" if factor == 2 else "standard", [])
        parts = []
        for kind, table, key, old in before:
            new = self._image(table, key)
            size = max(item_size(old), item_size(new))
            units = factor * blocks(size, KB)
            call.items.append(kind_of(table, key))
            index_units, index_parts = self._index_writes(table, old, new) if kind != "ConditionCheck" else (0, [])
            call.write_units += units + index_units
            parts.append(f"{factor} x {blocks(size, KB)} KB ({call.items[-1]}, {size} B)" + "".join(index_parts))
        call.arithmetic = " + ".join(parts) + f" = {call.write_units:g}"
        return call

    def _index_writes(
        self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> tuple[int, list[str]]:
        units, parts = 0, []
        for index in self.backend.get_table(table).global_indexes:
            names = [k["AttributeName"] for k in index.schema]
            old_key = tuple(str(old.get(n)) for n in names) if old and all(n in old for n in names) else None
            new_key = tuple(str(new.get(n)) for n in names) if new and all(n in new for n in names) else None
            if old_key is None and new_key is None or (old_key == new_key and old == new):
                continue
            writes = 2 if old_key and new_key and old_key != new_key else 1
            size = blocks(max(item_size(old) if old_key else 0, item_size(new) if new_key else 0), KB)
            units += writes * size
            parts.append(f" + {index.name} {writes} x {size}")
        return units, parts

    # -- reads ------------------------------------------------------------------------------------

    def _get(
        self, table: str, keys: list[dict[str, Any]], request: dict[str, Any], items: list[Any], name: str = "GetItem"
    ) -> Call:
        strong = bool(request.get("ConsistentRead"))
        block_units = [blocks(item_size(item), READ_BLOCK) for item in items]
        units = sum(block_units) * (1 if strong else 0.5)
        missing = sum(item is None for item in items)
        arithmetic = f"{len(keys)} x {'1' if strong else '0.5'}" + (f" ({missing} missing)" if missing else "")
        kinds = [kind_of(table, key) for key in keys]
        return Call(name, "strong" if strong else "eventual", kinds, read_units=units, arithmetic=arithmetic)

    def _query(self, params: dict[str, Any], parsed: dict[str, Any]) -> Call:
        strong = bool(params.get("ConsistentRead")) and "IndexName" not in params
        full = {k: v for k, v in params.items() if k not in ("Select", "ProjectionExpression")}
        used = " ".join(str(full.get(k, "")) for k in ("KeyConditionExpression", "FilterExpression"))
        names = {k: v for k, v in params.get("ExpressionAttributeNames", {}).items() if k in used}
        full.pop("ExpressionAttributeNames", None)
        if names:
            full["ExpressionAttributeNames"] = names
        items = self._shadow.query(**full)["Items"]
        size = sum(item_size(i) for i in items)
        units = blocks(size, READ_BLOCK) * (1 if strong else 0.5)
        table = params["TableName"]
        values = params.get("ExpressionAttributeValues", {})
        partition = next((v for k, v in values.items() if k in (":p", ":pk")), None)
        kind = kind_of(table, {"pk": partition}) if partition else "item"
        kinds = [kind] * parsed.get("ScannedCount", len(items))
        where = f" on {params['IndexName']}" if "IndexName" in params else ""
        arithmetic = f"{len(items)} items, {size:,} B{where}: {blocks(size, READ_BLOCK)} x {'1' if strong else '0.5'}"
        return Call("Query", "strong" if strong else "eventual", kinds, read_units=units, arithmetic=arithmetic)

    # -- moto's backend ---------------------------------------------------------------------------

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        moto_table = self.backend.get_table(table)
        names = [n for n in (moto_table.hash_key_attr, moto_table.range_key_attr) if n]
        return {n: item[n] for n in names}

    def _key_text(self, table: str, item: dict[str, Any]) -> str:
        return str(sorted(self._key(table, item).items()))

    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        with REQUEST_LOCK:
            item = self.backend.get_item(table, key)
            return item.to_json()["Attributes"] if item is not None else None
