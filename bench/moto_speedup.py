"""Two shortcuts through moto so that a 100k-conversion run takes minutes, not hours.

moto 5 answers every Query by walking every item of the table (about 10 us an item): with half a
million items that is seconds per call, and the benchmark makes hundreds. This patch narrows the
items moto walks to those whose partition (table or index) is the one queried (an index's
partitions are remembered until the next write); moto's own code
still sorts, applies the key condition, Limit, the 1 MB page limit and computes Count and
ScannedCount, so the figures the benchmark reports are unchanged.

TransactWriteItems in moto deep-copies the whole table once per action (for a rollback): 11
actions on a 500k-item table take minutes. The patch keeps the table as it is instead, so a
cancelled transaction is not rolled back; the benchmark's writes all succeed.

`put_items` writes items straight into the in-process moto backend: over HTTP a write costs a
few milliseconds here, and a 100k-conversion table has over half a million items. The items
themselves come from the repository (`Repository.fresh_table_items`). Only the benchmark uses this.
"""

from __future__ import annotations

import copy
import inspect
import threading
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table

_hint = threading.local()
# Index partitions found so far; forgotten on every write (see `_forgetting`).
_index_partitions: dict[tuple[Any, ...], list[Any]] = {}
_original_query = Table.query
_original_all_items = Table.all_items
_query_signature = inspect.signature(_original_query)


def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    bound = _query_signature.bind(self, *args, **kwargs).arguments
    _hint.value = (bound.get("index_name"), bound.get("hash_key"), bound.get("hash_key_conditions"))
    try:
        return _original_query(self, *args, **kwargs)
    finally:
        _hint.value = None


def _all_items(self: Table) -> list[Any]:
    hint = getattr(_hint, "value", None)
    if hint is None:
        return _original_all_items(self)
    index_name, hash_key, conditions = hint
    if index_name is None:
        return list(self.items.get(hash_key, {}).values()) if hash_key is not None else []
    if not conditions:
        return _original_all_items(self)
    key = (id(self), index_name, tuple(conditions))
    if key not in _index_partitions:
        _index_partitions[key] = [
            item
            for partition in self.items.values()
            for item in partition.values()
            if all(_equal(item.attrs.get(name), value) for name, value in conditions)
        ]
    return list(_index_partitions[key])


def _equal(found: Any, wanted: Any) -> bool:
    return found is not None and found == wanted


class _CopyExceptTables:
    """Stands in for the `copy` module inside moto.dynamodb.models: tables are not copied."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _forgetting(write: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _index_partitions.clear()
        return write(*args, **kwargs)

    return wrapper


def install() -> None:
    dynamodb_models.copy = _CopyExceptTables  # type: ignore[attr-defined]
    backend = dynamodb_models.DynamoDBBackend
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "delete_table"):
        setattr(backend, name, _forgetting(getattr(backend, name)))
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]


def put_items(table_name: str, items: list[dict[str, Any]], region: str = "us-east-1") -> None:
    """Write plain items (None values left out) into the in-process moto table, bypassing HTTP."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]
    serializer = TypeSerializer()
    for item in items:
        backend.put_item(table_name, {k: serializer.serialize(v) for k, v in item.items() if v is not None})
