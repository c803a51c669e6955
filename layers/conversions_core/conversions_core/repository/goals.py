"""Goals: get, list, create, update and delete a user's goals.

A goal's key is held by a key item per website, written in the same transaction as the goal,
so no two goals of a website share a key. Moving a goal to another website, or deleting it,
changes its conversions in the background: the table's stream hands the goal's change to the
counting function, which moves or deletes them (see cascade.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from conversions_core.errors import ConflictError, Problem, not_found
from conversions_core.repository import ids
from conversions_core.repository.accounts import Accounts
from conversions_core.repository.dynamo import Cancelled, Table, from_dynamo, to_dynamo
from conversions_core.repository.items import DATETIME_FORMAT, User
from conversions_core.repository.keys import USER_INDEX, entity_key, goal_item, goal_key_key, goals_partition

T = TypeVar("T")

_DRAWS = 5
# What a goal item holds besides its keys and version: the goal's fields.
STORED_FIELDS: tuple[str, ...] = ("goal_id", "user_id", "website_id", "type", "name", "path", "key")
STORED_FIELDS += ("scroll_percentage", "is_enabled", "value", "currency", "datetime", "last_datetime")


def stored_goal(item: dict[str, Any]) -> dict[str, Any]:
    """A goal item's fields, without its keys and version."""
    return {name: item.get(name) for name in STORED_FIELDS}


class Goals:
    def __init__(self, table: Table, accounts: Accounts, clock: Callable[[], datetime] | None = None):
        self.table = table
        self.accounts = accounts
        self._clock = clock or (lambda: datetime.now(UTC))

    def _item(self, user: User, goal_id: int) -> dict[str, Any]:
        item = self.table.get(entity_key("GOAL", goal_id), consistent=True)
        if item is None or item.get("user_id") != user.user_id:
            raise not_found("Goal")
        return item

    def get(self, user: User, goal_id: int) -> dict[str, Any]:
        """One of the user's goals (read after any write of it); NotFoundError otherwise."""
        return stored_goal(self._item(user, goal_id))

    def key_owner(self, website_id: int, key: str) -> int | None:
        """The goal whose key `key` is on the website, if any."""
        item = self.table.get(goal_key_key(website_id, key), consistent=True)
        return item["goal_id"] if item else None

    def all(self, user: User) -> list[dict[str, Any]]:
        """Every goal of the user: one Query of the ByUser index."""
        pages = self.table.query(
            IndexName=USER_INDEX,
            KeyConditionExpression="user_pk = :p",
            ExpressionAttributeValues=to_dynamo({":p": goals_partition(user.user_id)}),
        )
        return [stored_goal(from_dynamo(item)) for page in pages for item in page["Items"]]

    def create(self, user: User, make: Callable[[dict[str, Any]], dict[str, Any]], key_sent: bool) -> dict[str, Any]:
        """A new goal of the user's, as `make` completes it from its id, owner and datetime; its
        key must be free on its website (a generated key is drawn again when taken)."""
        for _ in range(_DRAWS):
            now = self._clock()
            goal = make({"goal_id": ids.new_id(now), "user_id": user.user_id, "datetime": _stamp(now)})
            try:
                self.table.retry_on_conflict(partial(self.table.transact, [_put_goal(goal, None), _take_key(goal)]))
                return goal
            except Cancelled as cancelled:
                if cancelled.reasons[1:2] == ["ConditionalCheckFailed"] and key_sent:
                    raise _key_taken() from None
                if "ConditionalCheckFailed" not in cancelled.reasons:
                    raise _busy() from None
                # the id or a generated key was taken: draw again
        raise _busy()

    def update(
        self, user: User, goal_id: int, revise: Callable[[dict[str, Any], str], dict[str, Any]]
    ) -> dict[str, Any]:
        """Change one of the user's goals to what `revise` makes of it as stored (and of the
        update's datetime); read and revised again when another request changed it meanwhile."""

        def attempt() -> dict[str, Any]:
            item = self._item(user, goal_id)
            goal = revise(stored_goal(item), _stamp(self._clock()))
            operations = [_put_goal(goal, item.get("version", 0))]
            if (goal["website_id"], goal["key"]) != (item["website_id"], item.get("key")):
                operations += [_take_key(goal), _free_key(item["website_id"], item.get("key"))]
            try:
                self.table.transact(operations)
            except Cancelled as cancelled:
                if cancelled.reasons[1:2] == ["ConditionalCheckFailed"]:
                    raise _key_taken() from None
                raise
            return goal

        return _changing(self.table, attempt)

    def delete(self, user: User, goal_id: int) -> None:
        """Delete the goal and free its key; its conversions go in the background."""

        def attempt() -> None:
            item = self._item(user, goal_id)
            delete = {"Key": to_dynamo(entity_key("GOAL", goal_id)), **_same_version(item.get("version", 0))}
            self.table.transact([{"Delete": delete}, _free_key(item["website_id"], item.get("key"))])

        _changing(self.table, attempt)


def _put_goal(goal: dict[str, Any], version: int | None) -> dict[str, Any]:
    """The goal's Put: a new goal's id must be free; a changed goal unchanged since it was read."""
    if version is None:
        guard = {"ConditionExpression": "attribute_not_exists(pk)"}
        version = 0
    else:
        guard = _same_version(version)
    item = goal_item({**goal, "version": version + 1})
    return {"Put": {"Item": to_dynamo(item), **guard}}


def _same_version(version: int) -> dict[str, Any]:
    if not version:
        return {"ConditionExpression": "attribute_not_exists(version)"}
    return {"ConditionExpression": "version = :v", "ExpressionAttributeValues": to_dynamo({":v": version})}


def _take_key(goal: dict[str, Any]) -> dict[str, Any]:
    item = {**goal_key_key(goal["website_id"], goal["key"]), "goal_id": goal["goal_id"]}
    return {"Put": {"Item": to_dynamo(item), "ConditionExpression": "attribute_not_exists(pk)"}}


def _free_key(website_id: int, key: str | None) -> dict[str, Any]:
    return {"Delete": {"Key": to_dynamo(goal_key_key(website_id, key or ""))}}


def _changing(table: Table, attempt: Callable[[], T]) -> T:
    """A read-then-write of one goal, again from the read when another request changed it."""
    for _ in range(3):
        try:
            return table.retry_on_conflict(attempt)
        except Cancelled as cancelled:
            if cancelled.reasons[:1] != ["ConditionalCheckFailed"]:
                break
    raise ConflictError(Problem("The goal is being changed by another request; retry"))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def _key_taken() -> ConflictError:
    return ConflictError(Problem("key is already the key of another goal of this website", "key"))


def _busy() -> ConflictError:
    return ConflictError(Problem("The goal could not be created because of a concurrent change; retry"))
