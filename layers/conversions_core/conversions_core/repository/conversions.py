"""Conversions: get, create, update, delete and list a user's conversions.

A request writes only the conversion's own two items (the item by id and the listed item), in
one transaction: no item another request writes, so no request can cancel another's. Counts
are kept off the request path, from the table's stream (see counting.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from conversions_core.errors import ConflictError, Problem, not_found
from conversions_core.repository import ids
from conversions_core.repository.accounts import Accounts
from conversions_core.repository.dynamo import Cancelled, Table, to_dynamo
from conversions_core.repository.items import (
    DATETIME_FORMAT,
    REFERENCE_FIELDS,
    ListRequest,
    Page,
    StoredConversion,
    User,
)
from conversions_core.repository.keys import (
    Scope,
    conversion_from_item,
    conversion_item,
    conversion_key,
    listed_item,
    listed_key,
)
from conversions_core.repository.listing import Listing

T = TypeVar("T")

_ID_DRAWS = 5


class Conversions:
    def __init__(
        self,
        table: Table,
        accounts: Accounts,
        clock: Callable[[], datetime] | None = None,
        retention_days: int = 0,
    ):
        self.table = table
        self.accounts = accounts
        self.listing = Listing(table)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._retention_days = retention_days

    # -- reads ----------------------------------------------------------------------------------

    def _item(self, user: User, conversion_id: int) -> dict[str, Any]:
        item = self.table.get(conversion_key(conversion_id), consistent=True)
        if item is None or item["user_id"] != user.user_id:
            raise not_found("Conversion")
        return item

    def get(self, user: User, conversion_id: int) -> StoredConversion:
        """One of the user's conversions (read after any write of it); NotFoundError otherwise."""
        return conversion_from_item(self._item(user, conversion_id))

    def list(self, user: User, request: ListRequest) -> Page:
        """A page of the user's conversions matching the filters, and how many match."""
        scope = self.scope_for(user, request.goal_id, request.website_id)
        if scope is None:
            return Page([], 0)
        skip, wanted = (request.page - 1) * request.results_per_page, request.results_per_page
        low, high = (_naive_utc(moment) for moment in (request.start, request.end))
        items, total = self.listing.page(user.user_id, scope, low, high, request.ascending, skip, wanted)
        if scope.kind == "WEBSITE" and not self._owns_website(user, scope.scope_id, items):
            return Page([], 0)
        return Page([conversion_from_item(i) for i in items], total)

    def _owns_website(self, user: User, website_id: int, items: Sequence[dict[str, Any]]) -> bool:
        """Whether a listed website is the user's. A website's conversions carry their owner, so a
        page that has any says it; only an empty page costs a read of the website."""
        if items:
            return bool(items[0]["user_id"] == user.user_id)
        return self.accounts.owned(user, "WEBSITE", website_id) is not None

    def scope_for(self, user: User, goal_id: int | None, website_id: int | None) -> Scope | None:
        """The conversions the filters name (goal and website combine with AND), or None when
        they name no conversion of the user's (another user's goal, or a goal of another
        website). A website is not read: its conversions carry their owner, and the user's own
        count items hold none of another user's websites."""
        if goal_id is not None:
            goal = self.accounts.owned(user, "GOAL", goal_id)
            if goal is None or website_id not in (None, goal["website_id"]):
                return None
            return Scope("GOAL", goal_id)
        if website_id is not None:
            return Scope("WEBSITE", website_id)
        return Scope("USER", user.user_id)

    # -- writes ---------------------------------------------------------------------------------

    def create(
        self,
        user: User,
        goal: dict[str, Any],
        refs: dict[str, int | None],
        value: Decimal | None = None,
        currency: str | None = None,
    ) -> StoredConversion:
        """Record a conversion of one of the user's goals (checked by the caller), worth `value`
        in `currency` (both or neither): two items in one transaction."""
        for _ in range(_ID_DRAWS):
            now = self._clock()
            conversion = StoredConversion(
                id=ids.new_id(now),
                goal_id=goal["goal_id"],
                website_id=goal["website_id"],
                user_id=user.user_id,
                datetime=now.strftime(DATETIME_FORMAT),
                **{name: refs.get(name) for name in REFERENCE_FIELDS},
                value=value,
                currency=currency,
            )
            operations = [self._put_item(conversion, 1, None), _put(listed_item(conversion))]
            try:
                self.table.retry_on_conflict(partial(self.table.transact, operations))
                return conversion
            except Cancelled as cancelled:
                if cancelled.reasons[:1] != ["ConditionalCheckFailed"]:
                    raise _busy() from None
                # Another conversion drew the same id in the same millisecond: draw again.
        raise _busy()

    def update(
        self, user: User, conversion_id: int, revise: Callable[[StoredConversion], StoredConversion]
    ) -> StoredConversion:
        """Change one of the user's conversions to what `revise` makes of it as stored (read
        again, and revised again, when another request changed it in between)."""

        def attempt() -> StoredConversion:
            item = self._item(user, conversion_id)
            current = conversion_from_item(item)
            updated = revise(current)
            if updated != current:
                operations = [self._put_item(updated, item["version"] + 1, item["version"]), _put(listed_item(updated))]
                if listed_key(current) != listed_key(updated):
                    operations.append({"Delete": {"Key": to_dynamo(listed_key(current))}})
                self.table.transact(operations)
            return updated

        return _changing(self.table, attempt)

    def delete(self, user: User, conversion_id: int) -> None:
        """Delete both of the conversion's items in one transaction."""

        def attempt() -> None:
            item = self._item(user, conversion_id)
            version = {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": to_dynamo({":v": item["version"]}),
            }
            self.table.transact(
                [
                    {"Delete": {"Key": to_dynamo(conversion_key(conversion_id)), **version}},
                    {"Delete": {"Key": to_dynamo(listed_key(conversion_from_item(item)))}},
                ]
            )

        _changing(self.table, attempt)

    def _put_item(self, conversion: StoredConversion, version: int, expected: int | None) -> dict[str, Any]:
        """Put of the item by id, guarded: a new id must be free, a changed item unchanged since read."""
        put = _put(conversion_item(conversion, version, self._retention_days))
        if expected is None:
            put["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["Put"]["ConditionExpression"] = "version = :v"
            put["Put"]["ExpressionAttributeValues"] = to_dynamo({":v": expected})
        return put


def _naive_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment else None


def _put(item: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {"Item": to_dynamo(item)}}


def _changing(table: Table, attempt: Callable[[], T]) -> T:
    """Run a read-then-write of one conversion, again from the read when another request changed
    the conversion in between (its version moved, or a transaction held it)."""
    for _ in range(3):
        try:
            return table.retry_on_conflict(attempt)
        except Cancelled as cancelled:
            if "ConditionalCheckFailed" not in cancelled.reasons:
                break
    raise ConflictError(Problem("The conversion is being changed by another request; retry"))


def _busy() -> ConflictError:
    return ConflictError(Problem("The conversion could not be recorded because of a concurrent change; retry"))
