"""The naive list, the benchmark's baseline: how the upstream service gets a page (COUNT over
the whole range, then OFFSET by reading past every earlier item). Benchmark-only code: the API
never lists this way. It reads the same listed items, by the same keys, as the repository."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from conversions_core.models import ListRequest, Page, User
from conversions_core.repository import Repository
from conversions_core.repository.dynamo import Table, from_dynamo, to_dynamo
from conversions_core.repository.keys import Scope, conversion_from_item, sort_bounds
from conversions_core.values import DATETIME_FORMAT


def naive_page(repository: Repository, user: User, request: ListRequest, total: int | None = None) -> Page:
    """The page `request` asks for, and the total. `total` skips the COUNT when the caller has
    already made it for these filters and range."""
    scope = repository.conversions.scope_for(user, request.goal_id, request.website_id)
    if scope is None:
        return Page([], 0)
    table = repository.conversions.table
    low, high = sort_bounds(_stamp(request.start), _stamp(request.end))
    if total is None:
        total = sum(page["Count"] for page in _range(table, scope, low, high, Select="COUNT"))
    skip = (request.page - 1) * request.results_per_page
    if skip >= total:
        return Page([], total)
    after: dict[str, Any] = {}
    order = {"ScanIndexForward": request.ascending}
    while skip:  # OFFSET: read past `skip` items (counted, not returned, to spare the wire)
        read = next(_range(table, scope, low, high, Select="COUNT", Limit=skip, **order, **after))
        skip -= read["Count"]
        after = {"ExclusiveStartKey": read["LastEvaluatedKey"]}
    items: list[dict[str, Any]] = []
    wanted = request.results_per_page
    for page in _range(table, scope, low, high, Limit=wanted, **order, **after):
        items += page["Items"]
        if len(items) >= wanted:
            break
    return Page([conversion_from_item(from_dynamo(i)) for i in items[:wanted]], total)


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT) if moment else None


def _range(table: Table, scope: Scope, low: str, high: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Pages of the scope's listed items between two sort keys (the website's own list read
    strongly consistent, as the repository reads it)."""
    if scope.index:
        kwargs["IndexName"] = scope.index
    else:
        kwargs["ConsistentRead"] = True
    return table.query(
        KeyConditionExpression="#p = :p AND sk BETWEEN :low AND :high",
        ExpressionAttributeNames={"#p": scope.key_attribute},
        ExpressionAttributeValues=to_dynamo({":p": scope.partition, ":low": low, ":high": high}),
        **kwargs,
    )
