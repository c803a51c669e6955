"""Looking at the tables directly: snapshots, and the audit that every count matches the items."""

from __future__ import annotations

import json
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from conftest import local_server, own_tables  # noqa: F401  (re-exported for the test modules)
from conversions_core.auth import hash_api_key
from conversions_core.models import ListRequest
from conversions_core.repository import Repository

_deserializer = TypeDeserializer()


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
    return items


def snapshot(client: Any, *tables: str) -> dict[tuple[str, str], str]:
    """Every item of the tables, keyed by (table, primary key), as canonical JSON."""
    result = {}
    for table in tables:
        for item in scan(client, table):
            key = json.dumps({k: str(item[k]) for k in ("pk", "sk", "id") if k in item}, sort_keys=True)
            result[(table, key)] = json.dumps(item, sort_keys=True, default=str)
    return result


def changed(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> set[tuple[str, str]]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def audit(repository: Repository, client: Any, table: str, tenant: Any) -> dict[str, int]:
    """Checks one tenant's conversions: each stored once by id and once listed, with the same
    fields, and every total (user, each website, each goal) equal to the items stored.
    Returns the number of conversions per scope."""
    items = scan(client, table)
    mine = [i for i in items if i.get("user_id") == tenant.user_id]
    by_id = {i["id"]: i for i in mine if i["pk"].startswith("CONVERSION#")}
    listed = [i for i in mine if i["pk"].endswith("#CONVERSIONS")]
    listed_ids = [i["id"] for i in listed]
    assert len(listed_ids) == len(set(listed_ids)), "a conversion is listed twice"
    assert set(listed_ids) == set(by_id), "listed items and by-id items differ (orphans)"
    fields = ("goal_id", "website_id", "user_id", "visitor_id", "session_id", "event_id", "datetime")
    for item in listed:
        assert all(item.get(f) == by_id[item["id"]].get(f) for f in fields), f"conversion {item['id']} differs"
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    assert user is not None
    totals = {"user": repository.conversions.list(user, ListRequest(results_per_page=10)).total}
    assert totals["user"] == len(by_id), "the user's total is not the number of conversions stored"
    for website_id in {i["website_id"] for i in by_id.values()} | {tenant.website_id}:
        total = repository.conversions.list(user, ListRequest(website_id=website_id)).total
        assert total == sum(1 for i in by_id.values() if i["website_id"] == website_id), f"website {website_id}"
        totals[f"website {website_id}"] = total
    for goal_id in {i["goal_id"] for i in by_id.values()} | {tenant.goal_id, tenant.second_goal_id}:
        total = repository.conversions.list(user, ListRequest(goal_id=goal_id)).total
        assert total == sum(1 for i in by_id.values() if i["goal_id"] == goal_id), f"goal {goal_id}"
        totals[f"goal {goal_id}"] = total
    return totals


def audit_feed(client: Any, table: str, tenant: Any) -> list[tuple[str, int]]:
    """Checks one tenant's changes feed: entries numbered 1 to the head with no gap, and each
    conversion's changes a creation (or a first change seen), updates, and at most one deletion,
    last. Returns (change, conversion id) in the feed's order."""
    items = [i for i in scan(client, table) if i["pk"] == f"CHANGES#{tenant.user_id}"]
    head = [i for i in items if i["sk"] == "HEAD"]
    entries = sorted((i for i in items if i["sk"] != "HEAD"), key=lambda i: i["sk"])
    if not entries:
        assert not head or head[0]["sequence"] == 0
        return []
    assert [int(i["sk"]) for i in entries] == list(range(1, len(entries) + 1)), "the feed has a gap"
    assert head and int(head[0]["sequence"]) == len(entries), "the head is not the last entry"
    changes = [(i["change"], int(i["id"])) for i in entries]
    for conversion_id in {c for _, c in changes}:
        kinds = [k for k, c in changes if c == conversion_id]
        assert kinds.count("created") <= 1 and kinds.count("deleted") <= 1, (conversion_id, kinds)
        assert "created" not in kinds or kinds[0] == "created", (conversion_id, kinds)
        assert "deleted" not in kinds or kinds[-1] == "deleted", (conversion_id, kinds)
    return changes
