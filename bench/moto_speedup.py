"""Shortcuts through moto so that a 100k-conversion run takes minutes, not hours.

moto 5 answers every Query by walking every item of the table (about 10 us an item), sorting the
matches, skipping to the ExclusiveStartKey one comparison at a time and testing the key condition
on the rest of the partition: with half a million items that is seconds per call, and the
benchmark makes hundreds. This patch hands moto's query only the items it can reach: the queried
partition (table or index, kept sorted by range key until the next write), cut by bisection to
`sk BETWEEN :low AND :high` and to what follows the ExclusiveStartKey, and ended after Limit
items or 1 MB plus the one item that makes moto stop and return a LastEvaluatedKey. moto's own
code still sorts, applies the key condition, Limit and the 1 MB page limit, and computes Count,
ScannedCount and LastEvaluatedKey, so the figures the benchmark reports are unchanged (the same
`results.md` with and without the window at N = 1,000 and 4,000).

Transactions need no shortcut here: the embedded server's TransactWriteItems
(`goals_conversions_local.moto_shortcuts`) copies no table, only the items it writes, and applies its
writes through the backend's put/update/delete, which forget the sorted partitions below.

`put_items` writes items straight into the in-process moto backend: over HTTP a write costs a
few milliseconds here, and a 100k-conversion table has over half a million items. The items
come from bench/loading.py, built with the repository's own key design (`keys.conversion_item`,
`keys.listed_item`, `keys.count_attributes`, `buckets.bucket_labels`). Only the benchmark uses this.
"""

from __future__ import annotations

import bisect
import inspect
import threading
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

_hint = threading.local()
# Partitions (of the table or of an index) sorted by range key; forgotten on every write.
_partitions: dict[tuple[Any, ...], tuple[list[str], list[Item]]] = {}
_original_query = Table.query
_original_all_items = Table.all_items
_query_signature = inspect.signature(_original_query)


@dataclass(frozen=True)
class _Hint:
    index_name: str | None
    hash_key: Any
    hash_key_conditions: Any
    between: tuple[str, str] | None  # the `sk BETWEEN :low AND :high` of every query the API makes
    start_key: str | None
    forward: bool
    limit: int | None


def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    bound = _query_signature.bind(self, *args, **kwargs).arguments
    objs = bound.get("range_objs") or []
    between = None
    if bound.get("range_comparison") == "BETWEEN" and not bound.get("filter_kwargs") and len(objs) == 2:
        between = (objs[0].value, objs[1].value)
    start = (bound.get("exclusive_start_key") or {}).get("sk")
    _hint.value = _Hint(
        bound.get("index_name"),
        bound.get("hash_key"),
        bound.get("hash_key_conditions"),
        between if all(isinstance(v, str) for v in between or ()) else None,
        start["S"] if start else None,
        bound.get("scan_index_forward", True) is not False,
        bound.get("limit"),
    )
    try:
        return _original_query(self, *args, **kwargs)
    finally:
        _hint.value = None


def _all_items(self: Table) -> list[Any]:
    """What moto's query walks: the queried partition only, and within it only the window of
    range keys the query can reach (between its bounds, past its start key, up to its Limit or
    1 MB plus the one item that tells moto to stop), in range-key order."""
    hint = getattr(_hint, "value", None)
    if hint is None:
        return _original_all_items(self)
    partition = _sorted_partition(self, hint)
    if partition is None:
        return _original_all_items(self)
    keys, items = partition
    if hint.between is None:
        return list(items)
    low = bisect.bisect_left(keys, hint.between[0])
    high = bisect.bisect_right(keys, hint.between[1])
    if hint.start_key is not None and hint.forward:
        low = max(low, bisect.bisect_right(keys, hint.start_key))
    elif hint.start_key is not None:
        high = min(high, bisect.bisect_left(keys, hint.start_key))
    reachable = items[low:high] if hint.forward else items[low:high][::-1]
    window = _up_to_a_page(reachable, hint.limit)
    return window if hint.forward else window[::-1]


def _up_to_a_page(items: list[Item], limit: int | None) -> list[Item]:
    taken, size = 0, 0
    for item in items:
        taken += 1
        size += item.size()
        if (limit is not None and taken > limit) or size > RESULT_SIZE_LIMIT:
            break
    return items[:taken]


def _sorted_partition(self: Table, hint: _Hint) -> tuple[list[str], list[Item]] | None:
    if hint.index_name is None:
        if hint.hash_key is None:
            return None
        key: tuple[Any, ...] = (id(self), None, hint.hash_key.value)
        range_name = self.range_key_attr
    else:
        if not hint.hash_key_conditions:
            return None
        key = (id(self), hint.index_name, tuple((n, v.value) for n, v in hint.hash_key_conditions))
        schema = self.get_index(hint.index_name).schema
        range_name = next(k["AttributeName"] for k in schema if k["KeyType"] == "RANGE")
    if key not in _partitions:
        if hint.index_name is None:
            found = list(self.items.get(hint.hash_key, {}).values())
        else:
            found = [
                item
                for partition in self.items.values()
                for item in partition.values()
                if all(_equal(item.attrs.get(name), value) for name, value in hint.hash_key_conditions)
            ]
        found = [item for item in found if isinstance(item.attrs.get(range_name), DynamoType)]
        found.sort(key=lambda item: item.attrs[range_name].value)
        _partitions[key] = ([item.attrs[range_name].value for item in found], found)
    return _partitions[key]


def _equal(found: Any, wanted: Any) -> bool:
    return found is not None and found == wanted


def _forgetting(write: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _partitions.clear()
        return write(*args, **kwargs)

    return wrapper


def forget() -> None:
    """Drop the sorted partitions (for a caller that replaces a table's items directly)."""
    _partitions.clear()


def install() -> None:
    backend = dynamodb_models.DynamoDBBackend
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "delete_table"):
        setattr(backend, name, _forgetting(getattr(backend, name)))
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]


def put_items(table_name: str, items: list[dict[str, Any]], region: str = "us-east-1") -> None:
    """Write plain items (None values left out) into the in-process moto table, bypassing HTTP
    (and the embedded server's one-request-at-a-time lock: call it while no request is in flight)."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]
    serializer = TypeSerializer()
    for item in items:
        backend.put_item(table_name, {k: serializer.serialize(v) for k, v in item.items() if v is not None})
