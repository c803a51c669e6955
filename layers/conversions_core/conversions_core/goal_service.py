"""The goals API's rules around the repository's goal items: filters and order of a list, what a
create or an update makes of the fields sent (conversions_core.goals.checked_goal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conversions_core.errors import invalid_many, not_found
from conversions_core.goals import GOAL_FIELDS, GOAL_RULES, Goal, GoalListRequest, checked_goal
from conversions_core.repository import Repository
from conversions_core.repository.items import User

_REQUIRED = ("website_id", "type", "name", "is_enabled")  # a goal always has them: never cleared
_ORDER_KEYS: dict[str, Callable[[Goal], Any]] = {
    "goal_id": lambda goal: goal.id,
    "datetime": lambda goal: (goal.datetime, goal.id),
    "last_datetime": lambda goal: (goal.last_datetime or "", goal.id),
    "name": lambda goal: (goal.name.casefold(), goal.id),
}


def goal_from_stored(stored: dict[str, Any]) -> Goal:
    """The API's goal of a stored one (fields an older item lacks take their defaults)."""
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

    def make(made: dict[str, Any]) -> dict[str, Any]:
        return checked_goal({**fields, **made, "last_datetime": None}, sent)

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
        return checked_goal({**kept, **changes, "last_datetime": stamp}, set(changes), previous_type=current["type"])

    return goal_from_stored(repository.goals.update(user, goal_id, revise))


def _matches(goal: Goal, request: GoalListRequest) -> bool:
    if request.website_id is not None and goal.website_id != request.website_id:
        return False
    if request.type is not None and goal.type != request.type:
        return False
    if request.search:
        wanted = request.search.casefold()
        return any(wanted in (text or "").casefold() for text in (goal.name, goal.path, goal.key))
    return True
