"""Bulk import (seed files, migrations): items written in parallel batches; the table's stream
makes the counts, as for any other write."""

from __future__ import annotations

from typing import Any

from conversions_core.repository.dynamo import Table, from_dynamo, to_dynamo
from conversions_core.repository.items import StoredConversion
from conversions_core.repository.keys import (
    Scope,
    api_key_key,
    conversion_from_item,
    conversion_item,
    conversion_key,
    entity_key,
    goal_item,
    goal_key_key,
    listed_item,
    sort_bounds,
)

WRITERS = 8


class Importer:
    def __init__(self, table: Table, retention_days: int = 0, workers: int = WRITERS):
        self.table = table
        self.retention_days = retention_days  # imported conversions expire as created ones do
        self.workers = workers

    def existing_conversion_ids(self, conversion_ids: list[int]) -> set[int]:
        found = self.table.batch_get([conversion_key(i) for i in conversion_ids], consistent=True)
        return {item["id"] for item in found}

    def edge_conversions(self, user_id: int) -> tuple[StoredConversion | None, StoredConversion | None]:
        """The user's oldest and newest conversions already stored (None when there are none)."""
        scope = Scope("USER", user_id)
        return self._edge(scope, ascending=True), self._edge(scope, ascending=False)

    def first_conversion(self, goal_id: int) -> StoredConversion | None:
        """The goal's oldest conversion already stored (None when it has none)."""
        return self._edge(Scope("GOAL", goal_id), ascending=True)

    def _edge(self, scope: Scope, ascending: bool) -> StoredConversion | None:
        low, high = sort_bounds(None, None)
        page = next(
            self.table.query(
                IndexName=scope.index,
                KeyConditionExpression=f"{scope.key_attribute} = :p AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=to_dynamo({":p": scope.partition, ":low": low, ":high": high}),
                ScanIndexForward=ascending,
                Limit=1,
            )
        )
        return conversion_from_item(from_dynamo(page["Items"][0])) if page["Items"] else None

    def write(
        self,
        users: list[tuple[dict[str, Any], str]],
        entities: list[tuple[str, dict[str, Any]]],
        conversions: list[StoredConversion],
        replaced_keys: tuple[str, ...] = (),
    ) -> None:
        """Write validated records: users (with their key, which carries the user's status and
        limit for one-read authentication), entities as given, conversions with both items. The
        keys in `replaced_keys` (hashes of keys the users had before) are deleted once the new
        ones are written."""
        items: list[dict[str, Any]] = []
        for user, key_hash in users:
            items.append({**entity_key("USER", user["user_id"]), **user, "api_key_hash": key_hash})
            access = {name: user.get(name) for name in ("user_id", "status", "rate_limit_per_minute")}
            items.append({**api_key_key(key_hash), **access})
        for kind, fields in entities:
            if kind == "GOAL":
                items += [
                    goal_item(fields),
                    {**goal_key_key(fields["website_id"], fields["key"]), "goal_id": fields["goal_id"]},
                ]
            else:
                items.append({**entity_key(kind, fields[f"{kind.lower()}_id"]), **fields})
        self.table.batch_write(items, self.workers)
        for key_hash in replaced_keys:
            self.table.delete(api_key_key(key_hash))
        conversion_items = [
            item for c in conversions for item in (conversion_item(c, 1, self.retention_days), listed_item(c))
        ]
        self.table.batch_write(conversion_items, self.workers)
