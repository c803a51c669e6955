"""The goals API's rules around the repository's goal items: filters and order of a list, what a
create or an update makes of the fields sent (conversions_core.goals.checked_goal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conversions_core.errors import invalid_many, not_found
from conversions_core.goals import GOAL_FIELDS, GOAL_RULES, Goal, GoalListRequest, checked_goal
from conversions_core.money import Worth, resolve
from conversions_core.repository import Repository
from conversions_core.repository.items import User

_WORTH = ("value", "currency")
_REQUIRED = ("website_id", "type", "name", "is_enabled")  # a goal always has them: never cleared
_ORDER_KEYS: dict[str, Callable[[Goal], Any]] = {
    "goal_id": lambda goal: goal.id,
    "datetime": lambda goal: (goal.datetime, goal.id),
    "last_datetime": lambda goal: (goal.last_datetime or "", goal.id),
    "name": lambda goal: (goal.name.casefold(), goal.id),
}


def goal_from_stored(stored: dict[str, Any]) -> Goal:
    """The API's goal of a stored one (fields an older item lacks take their defaults)."""
    worth = Worth.stored(stored.get("value"), stored.get("currency"))
    return Goal(
        id=stored["goal_id"],
        website_id=stored["website_id"],
        user_id=stored["user_id"],
        type=stored.get("type") or "custom",
        name=stored.get("name") or "",
        path=stored.get("path"),
        key=stored.get("key") or "",
        scroll_percentage=stored.get("scroll_percentage"),
        is_enabled=stored.get("is_enabled") is not False,
        value=worth.text() if worth else None,
        currency=worth.currency if worth else None,
        datetime=stored.get("datetime") or "",
        last_datetime=stored.get("last_datetime"),
    )


def get(repository: Repository, user: User, goal_id: int) -> Goal:
    return goal_from_stored(repository.goals.get(user, goal_id))


def list_goals(repository: Repository, user: User, request: GoalListRequest) -> tuple[list[Goal], int]:
    """A page of the user's goals matching the filters, and how many match. A user's goals are
    read whole (one Query), then filtered, ordered and cut."""
    goals = [goal for goal in map(goal_from_stored, repository.goals.all(user)) if _matches(goal, request)]
    goals.sort(key=_ORDER_KEYS[request.order_by], reverse=not request.ascending)
    skip = (request.page - 1) * request.results_per_page
    return goals[skip : skip + request.results_per_page], len(goals)


def create(repository: Repository, user: User, fields: dict[str, Any], sent: set[str]) -> Goal:
    """A new goal on one of the user's websites; its key, when sent, must be free there."""
    if repository.accounts.owned(user, "WEBSITE", fields["website_id"]) is None:
        raise not_found("Website", "website_id")

    worth = _worth(resolve({name: fields.get(name) for name in _WORTH}, None, None, creating=True))

    def make(made: dict[str, Any]) -> dict[str, Any]:
        return checked_goal({**fields, **worth, **made, "last_datetime": None}, sent)

    return goal_from_stored(repository.goals.create(user, make, "key" in sent))


def update(repository: Repository, user: User, goal_id: int, changes: dict[str, Any]) -> Goal:
    """Apply the sent fields; the goal must still follow the rules of its (new) type."""
    emptied = [name for name in _REQUIRED if name in changes and changes[name] is None]
    if emptied:
        raise invalid_many((name, GOAL_RULES[name]) for name in emptied)
    website_id = changes.get("website_id")
    if website_id is not None and repository.accounts.owned(user, "WEBSITE", website_id) is None:
        raise not_found("Website", "website_id")

    def revise(current: dict[str, Any], stamp: str) -> dict[str, Any]:
        kept = {name: current.get(name) for name in (*GOAL_FIELDS, "goal_id", "user_id", "datetime")}
        sent = {name: changes[name] for name in _WORTH if name in changes}
        worth = _worth(resolve(sent, Worth.stored(current.get("value"), current.get("currency")), None, creating=False))
        fields = {**kept, **changes, **worth, "last_datetime": stamp}
        return checked_goal(fields, set(changes), previous_type=current["type"])

    return goal_from_stored(repository.goals.update(user, goal_id, revise))


def _worth(worth: Worth | None) -> dict[str, Any]:
    """A goal's default value and currency as stored (None values are not written)."""
    return {"value": worth.value if worth else None, "currency": worth.currency if worth else None}


def _matches(goal: Goal, request: GoalListRequest) -> bool:
    if request.website_id is not None and goal.website_id != request.website_id:
        return False
    if request.type is not None and goal.type != request.type:
        return False
    if request.search:
        wanted = request.search.casefold()
        return any(wanted in (text or "").casefold() for text in (goal.name, goal.path, goal.key))
    return True
