"""The goals API's models and rules: what a goal is, and what makes one valid.

A goal is a pageview goal (a path visited), a custom goal (an event sent with its key) or a
scroll goal (a path scrolled down to a percentage). The rules apply to the goal as it ends up
after a create or an update, so changing a goal's type asks for what the new type needs.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict, WithJsonSchema

from conversions_core.errors import Problem, invalid_many
from conversions_core.money import CURRENCY_RULE, VALUE_RULE, CurrencyCode, ValueText
from conversions_core.values import MAX_ID, RESULTS_PER_PAGE, ListBody, PositiveId, RequestBody

__all__ = [
    "GoalOrderBy",
    "GoalType",
    "GOAL_FIELDS",
    "GOAL_LIST_PARAMETERS",
    "GOAL_RULES",
    "Goal",
    "GoalBody",
    "GoalCreate",
    "GoalListBody",
    "GoalListRequest",
    "GoalUpdate",
    "checked_goal",
    "new_key",
]

GoalType = Literal["pageview", "custom", "scroll"]
GoalOrderBy = Literal["goal_id", "datetime", "last_datetime", "name"]
NAME_LENGTH = 32
KEY_LENGTH = 64  # a key sent by the client; generated keys have GENERATED_KEY_LENGTH
GENERATED_KEY_LENGTH = 16
PATH_LENGTH = 2048
_SLUG = re.compile(r"[a-z0-9_-]+")
_KEY_ALPHABET = string.ascii_lowercase + string.digits
GOAL_FIELDS = ("website_id", "type", "name", "path", "key", "scroll_percentage", "is_enabled", "value", "currency")
# The list's parameters that its links carry (with `page`).
GOAL_LIST_PARAMETERS = ("website_id", "type", "search", "order_by", "order_type", "results_per_page")
GOAL_RULES = {
    "goal_id": "goal_id must be a positive integer",
    "website_id": "website_id must be a positive integer",
    "type": "type must be one of pageview, custom, scroll",
    "name": f"name must be 1 to {NAME_LENGTH} characters",
    "path": f"path must be a text of 1 to {PATH_LENGTH} characters",
    "key": f"key must be a slug of 1 to {KEY_LENGTH} characters: a-z, 0-9, - and _",
    "scroll_percentage": "scroll_percentage must be an integer from 1 to 100",
    "is_enabled": "is_enabled must be true or false (in a form: true, false, 1 or 0, in any letter case)",
    "value": VALUE_RULE,
    "currency": CURRENCY_RULE,
    "search": "search must be a text of at most 100 characters",
    "order_by": "order_by must be one of goal_id, datetime, last_datetime, name",
    "order_type": "order_type must be ASC or DESC",
    "page": "page must be a whole number of 1 or more, in digits",
    "results_per_page": "results_per_page must be one of " + ", ".join(map(str, RESULTS_PER_PAGE)),
}

Name = Annotated[str, Strict(), Field(min_length=1, max_length=NAME_LENGTH)]
GoalPath = Annotated[str, Strict(), Field(min_length=1, max_length=PATH_LENGTH)]
Key = Annotated[str, Strict(), Field(min_length=1, max_length=KEY_LENGTH, pattern=r"^[a-z0-9_-]+$")]
ScrollPercentage = Annotated[int, Strict(), Field(ge=1, le=100)]
Enabled = Annotated[bool, Strict()]


class GoalCreate(RequestBody):
    """Body of POST /api/goals (multipart, urlencoded or JSON)."""

    website_id: PositiveId
    type: GoalType
    name: Name
    path: GoalPath | None = None
    key: Key | None = None
    scroll_percentage: ScrollPercentage | None = None
    is_enabled: Enabled = True
    value: ValueText = None
    currency: CurrencyCode = None


def _sent_not_null(schema: dict[str, Any]) -> Any:
    """A field an update may leave out but not clear: documented without null (the repository
    says why a null is refused)."""
    return WithJsonSchema(schema)


class GoalUpdate(RequestBody):
    """Body of POST /api/goals/{goal_id}: only the fields sent change (an empty or null path,
    key or scroll_percentage clears it)."""

    website_id: Annotated[PositiveId | None, _sent_not_null({"type": "integer", "minimum": 1, "maximum": MAX_ID})] = (
        None
    )
    type: Annotated[GoalType | None, _sent_not_null({"enum": ["pageview", "custom", "scroll"], "type": "string"})] = (
        None
    )
    name: Annotated[Name | None, _sent_not_null({"type": "string", "minLength": 1, "maxLength": NAME_LENGTH})] = None
    path: GoalPath | None = None
    key: Key | None = None
    scroll_percentage: ScrollPercentage | None = None
    is_enabled: Annotated[Enabled | None, _sent_not_null({"type": "boolean"})] = None
    value: ValueText = None
    currency: CurrencyCode = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GOAL_FIELDS if name in self.model_fields_set}


class Goal(BaseModel):
    """A goal as the API returns it."""

    id: int
    website_id: int
    user_id: int
    type: GoalType
    name: str
    path: str | None
    key: str
    scroll_percentage: int | None
    is_enabled: bool
    value: str | None = Field(description="The default value of the goal's conversions", examples=["19.90"])
    currency: str | None = Field(description="The currency of the default value (ISO 4217)", examples=["EUR"])
    datetime: str
    last_datetime: str | None


class GoalBody(BaseModel):
    data: Goal


class GoalListBody(ListBody):
    data: list[Goal]


@dataclass(frozen=True, kw_only=True)
class GoalListRequest:
    """The validated query of GET /api/goals (by keyword: several fields are ints)."""

    website_id: int | None = None
    type: str | None = None
    search: str | None = None
    order_by: str = "goal_id"
    ascending: bool = False
    page: int = 1
    results_per_page: int = 25


def new_key() -> str:
    """A generated key: 16 random lower-case letters and digits."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(GENERATED_KEY_LENGTH))


def checked_goal(fields: dict[str, Any], sent: set[str], previous_type: str | None = None) -> dict[str, Any]:
    """The goal `fields` describe, made whole by the rules (a path gets its leading /, a
    pageview or scroll goal a generated key), or the contract's 400 listing what is wrong.
    `sent` names the fields the client sent, which are held to the rules of the goal's type;
    fields it did not send that the type does not take are cleared. `previous_type` is the
    type of the goal an update changes: a custom goal's own key does not stay when it becomes a
    pageview or scroll goal, whose keys are generated."""
    goal = dict(fields)
    kind, problems = goal["type"], []
    if previous_type == "custom" and kind != "custom" and "key" not in sent:
        goal["key"] = None
    if kind == "custom":
        if goal.get("path") is not None and "path" in sent:
            problems.append(Problem("path is only for pageview and scroll goals", "path"))
        goal["path"] = None
    elif not goal.get("path"):
        problems.append(Problem(f"path is required for {kind} goals", "path"))
    elif not goal["path"].startswith("/"):
        goal["path"] = "/" + goal["path"]
        if len(goal["path"]) > PATH_LENGTH:  # the rule holds for the path as stored
            problems.append(Problem(GOAL_RULES["path"], "path"))
    if kind == "scroll" and goal.get("scroll_percentage") is None:
        problems.append(Problem("scroll_percentage (1 to 100) is required for scroll goals", "scroll_percentage"))
    if kind != "scroll":
        if goal.get("scroll_percentage") is not None and "scroll_percentage" in sent:
            problems.append(Problem("scroll_percentage is only for scroll goals", "scroll_percentage"))
        goal["scroll_percentage"] = None
    if kind != "custom" and "key" in sent and goal.get("key") is not None:
        problems.append(Problem(f"key is generated for {kind} goals; send a key for custom goals only", "key"))
    if not goal.get("key"):
        goal["key"] = new_key()
    if problems:
        raise invalid_many((p.parameter or "", p.title) for p in problems)
    return goal


def is_slug(key: str) -> bool:
    return bool(_SLUG.fullmatch(key)) and len(key) <= KEY_LENGTH
