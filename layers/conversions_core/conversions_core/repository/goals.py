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
from typing import Any

from conversions_core.errors import ConflictError, Problem, invalid_many, not_found
from conversions_core.goals import GOAL_FIELDS, GOAL_RULES, Goal, GoalListRequest, checked_goal
from conversions_core.models import User
from conversions_core.repository import ids
from conversions_core.repository.accounts import Accounts
from conversions_core.repository.dynamo import Cancelled, Table, from_dynamo, retry_on_conflict, to_dynamo
from conversions_core.repository.keys import USER_INDEX, entity_key, goal_item, goal_key_key, goals_partition
from conversions_core.values import DATETIME_FORMAT

_DRAWS = 5
_REQUIRED = ("website_id", "type", "name", "is_enabled")  # a goal always has them: never cleared
_ORDER_KEYS: dict[str, Callable[[Goal], Any]] = {
    "goal_id": lambda goal: goal.id,
    "datetime": lambda goal: (goal.datetime, goal.id),
    "last_datetime": lambda goal: (goal.last_datetime or "", goal.id),
    "name": lambda goal: (goal.name.casefold(), goal.id),
}


def goal_from_item(item: dict[str, Any]) -> Goal:
    return Goal(
        id=item["goal_id"],
        website_id=item["website_id"],
        user_id=item["user_id"],
        type=item.get("type", "custom"),
        name=item.get("name", ""),
        path=item.get("path"),
        key=item.get("key", ""),
        scroll_percentage=item.get("scroll_percentage"),
        is_enabled=item.get("is_enabled", True),
        datetime=item.get("datetime", ""),
        last_datetime=item.get("last_datetime"),
    )


def _matches(goal: Goal, request: GoalListRequest) -> bool:
    if request.website_id is not None and goal.website_id != request.website_id:
        return False
    if request.type is not None and goal.type != request.type:
        return False
    if request.search:
        wanted = request.search.casefold()
        return any(wanted in (text or "").casefold() for text in (goal.name, goal.path, goal.key))
    return True


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

    def get(self, user: User, goal_id: int) -> Goal:
        """One of the user's goals (read after any write of it); NotFoundError otherwise."""
        return goal_from_item(self._item(user, goal_id))

    def key_owner(self, website_id: int, key: str) -> int | None:
        """The goal whose key `key` is on the website, if any."""
        item = self.table.get(goal_key_key(website_id, key), consistent=True)
        return item["goal_id"] if item else None

    def list(self, user: User, request: GoalListRequest) -> tuple[list[Goal], int]:
        """A page of the user's goals matching the filters, and how many match. A user's goals
        are read whole (one Query of the ByUser index), then filtered, ordered and cut."""
        goals = [goal for goal in map(goal_from_item, self._all(user)) if _matches(goal, request)]
        goals.sort(key=_ORDER_KEYS[request.order_by], reverse=not request.ascending)
        skip = (request.page - 1) * request.results_per_page
        return goals[skip : skip + request.results_per_page], len(goals)

    def _all(self, user: User) -> list[dict[str, Any]]:
        pages = self.table.query(
            IndexName=USER_INDEX,
            KeyConditionExpression="user_pk = :p",
            ExpressionAttributeValues=to_dynamo({":p": goals_partition(user.user_id)}),
        )
        return [from_dynamo(item) for page in pages for item in page["Items"]]

    def create(self, user: User, fields: dict[str, Any], sent: set[str]) -> Goal:
        """A new goal on one of the user's websites; its key, when sent, must be free there."""
        if self.accounts.owned(user, "WEBSITE", fields["website_id"]) is None:
            raise not_found("Website", "website_id")
        for _ in range(_DRAWS):
            now = self._clock()
            made = {"goal_id": ids.new_id(now), "user_id": user.user_id, "datetime": _stamp(now)}
            goal = checked_goal({**fields, **made, "last_datetime": None}, sent)
            try:
                retry_on_conflict(partial(self.table.transact, [_put_goal(goal, None), _take_key(goal)]))
                return goal_from_item(goal)
            except Cancelled as cancelled:
                if cancelled.reasons[1:2] == ["ConditionalCheckFailed"] and "key" in sent:
                    raise _key_taken() from None
                if "ConditionalCheckFailed" not in cancelled.reasons:
                    raise _busy() from None
                # the id or a generated key was taken: draw again
        raise _busy()

    def update(self, user: User, goal_id: int, changes: dict[str, Any]) -> Goal:
        """Apply the sent fields; the goal must still follow the rules of its (new) type."""
        emptied = [name for name in _REQUIRED if name in changes and changes[name] is None]
        if emptied:
            raise invalid_many((name, GOAL_RULES[name]) for name in emptied)
        website_id = changes.get("website_id")
        if website_id is not None and self.accounts.owned(user, "WEBSITE", website_id) is None:
            raise not_found("Website", "website_id")

        def attempt() -> Goal:
            item = self._item(user, goal_id)
            current = {name: item.get(name) for name in (*GOAL_FIELDS, "goal_id", "user_id", "datetime")}
            stamp = {"last_datetime": _stamp(self._clock())}
            goal = checked_goal({**current, **changes, **stamp}, set(changes), previous_type=item["type"])
            operations = [_put_goal(goal, item.get("version", 0))]
            if (goal["website_id"], goal["key"]) != (item["website_id"], item.get("key")):
                operations += [_take_key(goal), _free_key(item["website_id"], item.get("key"))]
            try:
                self.table.transact(operations)
            except Cancelled as cancelled:
                if cancelled.reasons[1:2] == ["ConditionalCheckFailed"]:
                    raise _key_taken() from None
                raise
            return goal_from_item(goal)

        return _changing(attempt)

    def delete(self, user: User, goal_id: int) -> None:
        """Delete the goal and free its key; its conversions go in the background."""

        def attempt() -> None:
            item = self._item(user, goal_id)
            delete = {"Key": to_dynamo(entity_key("GOAL", goal_id)), **_same_version(item.get("version", 0))}
            self.table.transact([{"Delete": delete}, _free_key(item["website_id"], item.get("key"))])

        _changing(attempt)


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


def _changing(attempt: Callable[[], Any]) -> Any:
    """A read-then-write of one goal, again from the read when another request changed it."""
    for _ in range(3):
        try:
            return retry_on_conflict(attempt)
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
